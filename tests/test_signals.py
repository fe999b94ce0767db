"""Stopping ``celltrail track`` as a cluster scheduler or ``timeout`` does: SIGTERM leaves no
temporary folder, SIGKILL's is removed by the next run, which completes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celltrail.io.ctc import read_result
from celltrail.simulate import SimParams, simulate

COMMAND = [sys.executable, "-c", "from celltrail.cli import app; app()"]


@pytest.fixture(scope="module")
def hundred_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated 100-frame sequence, large enough that tracking it takes seconds."""
    return simulate(tmp_path_factory.mktemp("long"),
                    SimParams(frames=100, size=256, cells=20, cell_diameter=20), seed=1)


def temporary(out: Path) -> list[Path]:
    """The temporary folders of runs writing ``out``."""
    return sorted(out.parent.glob(f".{out.name}.*.tmp"))


def start_and_stop(images: Path, out: Path, signum: int) -> subprocess.CompletedProcess:
    """Start tracking, send ``signum`` once its temporary folder holds masks, and wait."""
    process = subprocess.Popen([*COMMAND, "track", str(images), "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(any(t.glob("mask*.tif")) for t in temporary(out)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_sigterm_then_sigkill_then_a_clean_run(hundred_frames: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    stopped = start_and_stop(hundred_frames, out, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM
    assert stopped.stderr.strip().splitlines()[-1] == \
        "error: stopped by SIGTERM; nothing was written"
    assert temporary(out) == [] and not out.exists()

    killed = start_and_stop(hundred_frames, out, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert len(temporary(out)) == 1 and not out.exists()  # what a killed run leaves

    again = subprocess.run([*COMMAND, "track", str(hundred_frames), "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert temporary(out) == []
    assert "left by an interrupted run" in again.stderr
    result = read_result(out)
    assert len(result.masks) == 100 and result.errors() == []
