"""Batch tracking: the manifest, and runs on a local dask cluster against ``celltrail track``."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import dask
import pandas as pd
import pytest
from distributed import LocalCluster
from typer.testing import CliRunner

from celltrail.batch import BatchJob, read_manifest, run_batch, run_job
from celltrail.cli import app
from celltrail.core.errors import InputError
from celltrail.io.ctc import read_result
from celltrail.models.zoo import model_names
from celltrail.simulate import SimParams, simulate

runner = CliRunner()
COLUMNS = ("input, out, method, frame_step, channel, position, pixel_size, interval, boxes, "
           "boxes_from_gt, queries_from_gt, preset, diameter, linker, backend, model, adapt, "
           "new_cells, divisions, box_frame_base, device, tta, window, min_score")


def hashes(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the files of a folder."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def stamps(folder: Path) -> list[tuple[int, int]]:
    """Inode and modification time of a folder and its files: they change when it is rewritten."""
    return [(p.stat().st_ino, p.stat().st_mtime_ns) for p in [folder, *sorted(folder.iterdir())]]


def test_manifest_rows_options_and_relative_paths(tmp_path: Path) -> None:
    manifest = tmp_path / "screen" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "\ufeffInput,out,method,preset,diameter,frame_step,boxes,box_frame_base\n"  # Excel's BOM
        "a/01, res/a ,,,12.5,,,\n"
        "\n"
        "/data/b.tif,res/b,boxtrack,dic,,2,b.csv,1\n"
    )
    first, second = read_manifest(manifest)
    folder = manifest.parent
    assert first == BatchJob(input=folder / "a" / "01", out=folder / "res" / "a",
                             options={"diameter": 12.5})
    assert second == BatchJob(input=Path("/data/b.tif"), out=folder / "res" / "b",
                              method="boxtrack", frame_step=2, prompts=folder / "b.csv",
                              options={"preset": "dic", "box_frame_base": 1})


def test_manifest_models_are_shipped_names_or_paths(tmp_path: Path) -> None:
    """A shipped model's name stays a name; anything else is a path against the manifest."""
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("input,out,method,model,tta,boxes\n"
                        "a,res/a,boxtrack,general,,b.csv\n"
                        "b,res/b,boxtrack,models/m.pt,,b.csv\n"
                        "c,res/c,embedtrack,m.pt,false,\n")
    options = [job.options for job in read_manifest(manifest)]
    assert options == [{"model": "general"}, {"model": str(tmp_path / "models" / "m.pt")},
                       {"model": str(tmp_path / "m.pt"), "tta": False}]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty manifest: expected a header row 'input,out'"),
    ("input,out\n", "no sequences: the manifest has a header but no rows"),
    ("input;out\na;b\n", "line 1: columns must be separated by commas, not semicolons "
                         "('input;out')"),
    ("input,out,diam\n", f"line 1: unknown column 'diam'; columns are {COLUMNS}"),
    ("input,out,Input\n", "line 1: column 'input' appears twice"),
    ("input,method\n", "line 1: no 'out' column; the header must name at least input,out "
                       "(comma-separated)"),
    ("input,out\na,b\n\nc,d,e\n", "line 4: expected 2 fields (input,out), found 3"),
    ("input,out\n,b\n", "line 2: empty 'input'"),
    ("input,out\na,\"b\"c\n", "line 2: ',' expected after '\"'"),
    ("input,out,diameter\na,b,big\n", "line 2: diameter must be a number, not 'big'"),
    ("input,out,diameter\na,b,0\n",
     "line 2: diameter: must be a positive finite number, not 0"),
    ("input,out,frame_step\na,b,0\n", "line 2: frame_step must be an integer >= 1, not '0'"),
    ("input,out,frame_step\na,b,1.5\n",
     "line 2: frame_step must be an integer >= 1, not '1.5'"),
    ("input,out,boxes,model\na,b,a.csv,m.pt\n",
     "line 2: boxes: applies to method boxtrack only"),
    ("input,out,model\na,b,m.pt\n",
     "line 2: model: applies to method boxtrack, embedtrack, cap or cellboxify only, not "
     "classical"),
    ("input,out,queries_from_gt\na,b,01_GT\n",
     "line 2: queries_from_gt: applies to method cap only"),
    ("input,out,method\na,b,boxtrack\n",
     "line 2: method: boxtrack needs its prompts: a column boxes or boxes_from_gt"),
    ("input,out,method,tta,boxes\na,b,boxtrack,true,b.csv\n",
     "line 2: tta: applies to method embedtrack only, not boxtrack"),
    ("input,out,method,backend,model\na,b,embedtrack,learned,m.pt\n",
     "line 2: backend: applies to method boxtrack only, not embedtrack"),
    ("input,out,method\na,b,magic\n",
     "line 2: method: unknown method 'magic'; choose one of classical, boxtrack, embedtrack, "
     "cap, cellboxify"),
    ("input,out,method,model,tta\na,b,embedtrack,m.pt,maybe\n",
     "line 2: tta must be true or false, not 'maybe'"),
    ("input,out\na,res\nb,./res/\n", "line 3: out '{folder}/res' is also the output of line 2"),
])
def test_manifest_errors(tmp_path: Path, text: str, problem: str) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(text)
    with pytest.raises(InputError) as err:
        read_manifest(manifest)
    assert str(err.value) == f"{manifest}: {problem.format(folder=tmp_path)}"


def test_cellboxify_rows_need_a_model(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("input,out,method,model\na,b,cellboxify,\nc,d,cellboxify,"
                        "Fluo-N2DH-SIM+_box\n")
    with pytest.raises(InputError) as err:
        read_manifest(manifest)
    assert str(err.value) == (
        f"{manifest}: line 2: model: cellboxify needs a model: a checkpoint path or a model by "
        f"name ({', '.join(model_names('cellboxify'))})")
    manifest.write_text("input,out,method,model\nc,d,cellboxify,Fluo-N2DH-SIM+_box\n")
    assert read_manifest(manifest)[0].options == {"model": "Fluo-N2DH-SIM+_box"}


def test_manifest_not_found(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        read_manifest(tmp_path / "manifest.csv")
    assert str(err.value) == f"{tmp_path / 'manifest.csv'}: manifest not found"


@pytest.fixture(scope="module")
def screen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny simulated positions, their manifest (plus a row whose input is missing),
    the serial ``celltrail track`` results in ``serial/`` and a first batch run's summary."""
    root = tmp_path_factory.mktemp("screen")
    params = SimParams(frames=5, size=96, cells=6, cell_diameter=16)
    rows = []
    for i in range(3):
        images = simulate(root / f"pos{i}", params, seed=i)
        result = runner.invoke(app, ["track", str(images), "--out", str(root / "serial" / f"{i}")])
        assert result.exit_code == 0, result.output
        rows.append(f"pos{i}/01,batch/{i}")
    rows.insert(1, "missing/01,batch/missing")
    (root / "manifest.csv").write_text("input,out\n" + "\n".join(rows) + "\n")
    calls = []
    environ = dict(os.environ)
    summary = run_batch(root / "manifest.csv", workers=2, progress=lambda *a: calls.append(a))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert dict(os.environ) == environ  # not dask's OMP_NUM_THREADS=1 for what runs next
    summary.to_csv(root / "summary.csv", index=False)
    return root


def test_batch_matches_serial_track(screen: Path) -> None:
    for i in range(3):
        files = hashes(screen / "batch" / f"{i}")
        assert len(files) == 5 + 4  # mask000-004.tif, res_track.txt, tracks.*, .celltrail
        assert files == hashes(screen / "serial" / f"{i}")


def test_missing_input_fails_alone(screen: Path) -> None:
    summary = pd.read_csv(screen / "summary.csv", keep_default_na=False)
    assert list(summary["status"]) == ["done", "failed", "done", "done"]
    assert list(summary["input"]) == [str(screen / p) for p in
                                      ("pos0/01", "missing/01", "pos1/01", "pos2/01")]
    failed = summary.iloc[1]
    assert failed["error"] == f"{screen / 'missing' / '01'}: no such file or folder"
    assert (failed["frames"], failed["tracks"]) == ("", "")
    done = summary.drop(index=1)
    assert list(done["frames"]) == ["5"] * 3 and set(done["error"]) == {""}
    for (_, row), i in zip(done.iterrows(), range(3), strict=True):
        track_lines = (screen / "serial" / f"{i}" / "res_track.txt").read_text().splitlines()
        assert int(row["tracks"]) == len(track_lines) > 0
    assert not (screen / "batch" / "missing").exists()


def test_rerun_skips_finished_and_redoes_incomplete(screen: Path) -> None:
    (screen / "batch" / "2" / "mask004.tif").unlink()  # as if written by hand, half-done
    ended = subprocess.Popen(["true"])
    ended.wait()  # as if a killed run (a process now gone) had been writing
    host = socket.gethostname().replace(".", "_")
    leftover = screen / "batch" / f".2.{host}-{ended.pid}.x1y2z3.tmp"
    leftover.mkdir()
    (leftover / "mask000.tif").write_bytes(b"partial")
    before = {i: stamps(screen / "batch" / f"{i}") for i in range(2)}
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:  # quick
        summary = run_batch(screen / "manifest.csv", scheduler=cluster.scheduler_address)
    assert list(summary["status"]) == ["skipped", "failed", "skipped", "done"]
    assert summary["frames"].fillna(-1).tolist() == [5, -1, 5, 5]
    for i in range(3):
        assert hashes(screen / "batch" / f"{i}") == hashes(screen / "serial" / f"{i}")
    assert before == {i: stamps(screen / "batch" / f"{i}") for i in range(2)}  # not rewritten
    assert not leftover.exists()


def test_unreachable_scheduler_and_no_workers(screen: Path) -> None:
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(InputError) as err:
        run_batch(screen / "manifest.csv", scheduler="tcp://127.0.0.1:9")
    assert str(err.value).startswith("cannot reach the dask scheduler 'tcp://127.0.0.1:9' (give "
                                     "its address, tcp://HOST:PORT): OSError: Timed out ")
    with pytest.raises(InputError) as err:
        run_batch(screen / "manifest.csv", workers=0)
    assert str(err.value) == "workers must be >= 1, not 0"


def test_boxtrack_row_matches_track_in_process(sample: Path, tmp_path: Path) -> None:
    """A boxtrack row (classical backend, boxes from the ground truth) writes what
    ``celltrail track --method boxtrack`` writes, MOT file included; then it is skipped."""
    options = ["--method", "boxtrack", "--backend", "classical", "--frame-step", "4",
               "--boxes-from-gt", str(sample / "01_GT")]
    result = runner.invoke(app, ["track", str(sample / "01"), "--out", str(tmp_path / "cli"),
                                 *options])
    assert result.exit_code == 0, result.output
    job = BatchJob(input=sample / "01", out=tmp_path / "batch", method="boxtrack",
                   frame_step=4, prompts=sample / "01_GT", options={"backend": "classical"})
    row = run_job(job)
    assert (row["status"], row["frames"], row["error"]) == ("done", 10, "")
    files = hashes(tmp_path / "batch")
    assert "tracking_results.txt" in files and files == hashes(tmp_path / "cli")
    assert run_job(job)["status"] == "skipped"
    (tmp_path / "batch" / "tracking_results.txt").unlink()
    assert run_job(job)["status"] == "done"


def test_embedtrack_row_tracks_with_a_checkpoint(tiny_embedtrack: Path, tmp_path: Path) -> None:
    """An embedtrack row (its model a path relative to the manifest, with TTA) writes a valid
    CTC result; then it is skipped."""
    images = simulate(tmp_path / "pos", SimParams(frames=4, size=64, cells=4, cell_diameter=16),
                      seed=0)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.pt").write_bytes(tiny_embedtrack.read_bytes())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("input,out,method,model,tta\n"
                        f"{images},res,embedtrack,models/tiny.pt,Yes\n")
    [job] = read_manifest(manifest)
    assert job.options == {"model": str(tmp_path / "models" / "tiny.pt"), "tta": True}
    row = run_job(job)
    assert (row["status"], row["frames"], row["error"]) == ("done", 4, "")
    result = read_result(tmp_path / "res")
    assert result.errors() == [] and len(result.masks) == 4
    assert row["tracks"] == len(result.lineage) > 0
    assert run_job(job)["status"] == "skipped"


def test_row_with_nan_boxes_fails_alone_in_one_line(sample: Path, tmp_path: Path) -> None:
    """A row whose box file holds NaN fails with the file named; nothing is written."""
    boxes = tmp_path / "nan.csv"
    boxes.write_text("frame,id,x,y,w,h\n0,1,nan,10,20,20\n")
    job = BatchJob(input=sample / "01", out=tmp_path / "out", method="boxtrack", prompts=boxes,
                   options={"backend": "classical"})
    row = run_job(job)
    assert (row["status"], row["error"]) == (
        "failed", f"{boxes}: line 2: values must be finite numbers")
    assert not (tmp_path / "out").exists()
