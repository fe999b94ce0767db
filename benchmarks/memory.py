"""Peak memory of `celltrail track` on 100 versus 1000 frames: tracking streams from disk.

The long sequence repeats the bundled sample's 40 frames forwards and backwards (so cells move
smoothly) as separate files on disk. Each run is a fresh process; its peak resident memory is
read with getrusage.

    python benchmarks/memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import tifffile


def make_sequence(sample: Path, out: Path, n_frames: int) -> None:
    """Write ``n_frames`` frames cycling forwards and backwards through the sample."""
    frames = [tifffile.imread(p) for p in sorted(sample.glob("t*.tif"))]
    cycle = frames + frames[-2:0:-1]
    out.mkdir(parents=True)
    for t in range(n_frames):
        tifffile.imwrite(out / f"t{t:04d}.tif", cycle[t % len(cycle)])


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Peak resident memory (MB) and wall time of a child process running ``args``."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True,
                         text=True)
    return int(out.stdout.split()[-1]) / 1024, time.perf_counter() - start


def main() -> None:
    sample = Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop" / "01"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (100, 1000):
            seq = Path(tmp) / f"seq{n}"
            make_sequence(sample, seq, n)
            mb, seconds = peak_rss_mb(["celltrail", "track", str(seq), "--out",
                                       str(Path(tmp) / f"res{n}")])
            rows.append((n, mb, seconds))
    print(f"{'frames':>7} {'peak RSS (MB)':>14} {'wall (s)':>9} {'frames/s':>9}")
    for n, mb, seconds in rows:
        print(f"{n:>7} {mb:>14.1f} {seconds:>9.1f} {n / seconds:>9.1f}")
    print(f"ratio 1000/100: {rows[1][1] / rows[0][1]:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
