"""Track many sequences (the positions of a screen) in parallel on a dask cluster.

A manifest is a CSV file with one sequence per row: the columns ``input`` and ``out`` (relative
paths are resolved against the manifest's folder) and, optionally, the options of
``celltrail track``: ``method``, ``preset``, ``diameter``, ``frame_step``; for boxtrack
``boxes``, ``boxes_from_gt``, ``box_frame_base``, ``backend``; for boxtrack, embedtrack, cap and
cellboxify ``model`` (a shipped model's name, else a checkpoint path; embedtrack and cellboxify
need one); for embedtrack ``tta`` (true or false); for cap ``queries_from_gt``. An empty cell
takes the default; an option of another method is an error. Each sequence is tracked as
``celltrail track`` would and written atomically, so a complete output folder is a finished
sequence: a rerun skips it and does the rest.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import dask
import pandas as pd
from distributed import Client, LocalCluster, as_completed

from celltrail.core.errors import CellTrailError, InputError
from celltrail.core.result import MaskStore
from celltrail.core.sequence import ImageSequence, open_sequence
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import frame_digits, numbered_files
from celltrail.io.outputs import check_output, model_input
from celltrail.io.tables import SUMMARY_COLUMNS
from celltrail.methods import get_tracker
from celltrail.methods.boxtrack.backends import DEFAULT_BACKEND
from celltrail.pipeline import (
    MOT_FILE,
    box_prompts,
    boxtrack_tracker,
    cap_tracker,
    cellboxify_tracker,
    embedtrack_tracker,
    save_result,
)
from celltrail.segmentation import DEFAULT_PRESET

#: The files ``celltrail track`` writes besides the masks (boxtrack adds its MOT file).
RESULT_FILES = ("res_track.txt", "tracks.csv", "tracks.parquet")


@dataclass(frozen=True)
class BatchJob:
    """One manifest row: a sequence to track and how (the options of ``celltrail track``)."""

    input: Path
    out: Path
    method: str = "classical"
    preset: str = DEFAULT_PRESET
    diameter: float | None = None
    frame_step: int = 1
    boxes: Path | None = None
    boxes_from_gt: Path | None = None
    box_frame_base: int = 0
    backend: str = DEFAULT_BACKEND
    model: str | None = None
    tta: bool = False
    queries_from_gt: Path | None = None

    def inputs(self) -> list[Path]:
        """Every file or folder the job reads (which its output may not touch)."""
        paths = (self.input, self.boxes, self.boxes_from_gt, self.queries_from_gt,
                 model_input(self.model))
        return [p for p in paths if p is not None]


REQUIRED = ("input", "out")
#: The manifest's columns: the fields of :class:`BatchJob`.
COLUMNS = tuple(f.name for f in fields(BatchJob))
#: The methods that method-specific columns apply to; the other columns apply to all.
APPLIES_TO = {"boxes": ("boxtrack",), "boxes_from_gt": ("boxtrack",),
              "box_frame_base": ("boxtrack",), "backend": ("boxtrack",),
              "model": ("boxtrack", "embedtrack", "cap", "cellboxify"), "tta": ("embedtrack",),
              "queries_from_gt": ("cap",)}
#: How a ``tta`` cell may say yes or no.
FLAGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _number(manifest: Path, line: int, column: str, text: str, kind: type, least: float) -> object:
    """``text`` as a ``kind`` (int or float) of at least ``least``, or a clear InputError."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value >= least:
        what = "an integer" if kind is int else "a number"
        raise InputError(manifest, f"line {line}: {column} must be {what} >= {least:g}, "
                                   f"not {text!r}")
    return value


def _shipped_models(method: str) -> list[str]:
    """Names of the models shipped for ``method`` (imported here: both load torch)."""
    if method == "embedtrack":
        from celltrail.methods.embedtrack import shipped_models
    elif method == "cap":
        from celltrail.methods.cap import shipped_models
    elif method == "cellboxify":
        from celltrail.methods.cellboxify import SHIPPED

        return SHIPPED.names()
    else:
        from celltrail.methods.boxtrack.learned import shipped_models
    return shipped_models()


def _either(names: tuple[str, ...]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def _check_options(manifest: Path, line: int, method: str, given: dict[str, str]) -> None:
    """Refuse options of other methods, and an embedtrack or cellboxify row without its
    model."""
    stray = [f"{c} ({_either(APPLIES_TO[c])} only)" for c in given
             if method not in APPLIES_TO.get(c, (method,))]
    if stray:
        verb = "does" if len(stray) == 1 else "do"
        raise InputError(manifest, f"line {line}: {', '.join(stray)} {verb} not apply to "
                                   f"method {method!r}")
    if method in ("embedtrack", "cellboxify") and "model" not in given:
        names = ", ".join(_shipped_models(method)) or "none"
        raise InputError(manifest, f"line {line}: method {method} needs a model: a "
                                   f"checkpoint path or a shipped model ({names})")


def _job(manifest: Path, line: int, cells: dict[str, str]) -> BatchJob:
    """The job of one manifest row; empty cells take the defaults."""
    for column in REQUIRED:
        if not cells[column]:
            raise InputError(manifest, f"line {line}: empty {column!r}")
    given = {k: v for k, v in cells.items() if v}
    method = given.get("method", BatchJob.method)
    _check_options(manifest, line, method, given)
    folder = manifest.parent
    options: dict[str, object] = {}
    for column, text in given.items():
        if column in ("input", "out", "boxes", "boxes_from_gt", "queries_from_gt"):
            # absolute: the workers of a remote cluster do not share our working folder
            options[column] = Path(os.path.abspath(folder / Path(text).expanduser()))
        elif column == "diameter":
            options[column] = _number(manifest, line, column, text, float, 1)
        elif column in ("frame_step", "box_frame_base"):
            options[column] = _number(manifest, line, column, text, int,
                                      1 if column == "frame_step" else 0)
        elif column == "model" and text not in _shipped_models(method):
            options[column] = os.path.abspath(folder / Path(text).expanduser())
        elif column == "tta":
            if text.lower() not in FLAGS:
                raise InputError(manifest, f"line {line}: tta must be true or false, not "
                                           f"{text!r}")
            options[column] = FLAGS[text.lower()]
        else:
            options[column] = text
    return BatchJob(**options)  # type: ignore[arg-type]


def read_manifest(manifest: str | Path) -> list[BatchJob]:
    """Read a CSV manifest, one job per row; a malformed one raises InputError naming its line."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise InputError(manifest, "manifest not found")
    try:
        text = manifest.read_text(encoding="utf-8-sig")  # utf-8-sig: Excel's byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(manifest, f"cannot read the manifest ({exc})") from exc
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise InputError(manifest, f"line {reader.line_num}: {exc}") from exc
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise InputError(manifest, "empty manifest: expected a header row 'input,out'")
    header_line, header = rows[0]
    columns = [name.strip().lower() for name in header]
    if len(columns) == 1 and ";" in columns[0]:
        raise InputError(manifest, f"line {header_line}: columns must be separated by commas, "
                                   f"not semicolons ({header[0]!r})")
    for i, name in enumerate(columns):
        if name not in COLUMNS:
            raise InputError(manifest, f"line {header_line}: unknown column {header[i]!r}; "
                                       f"columns are {', '.join(COLUMNS)}")
        if name in columns[:i]:
            raise InputError(manifest, f"line {header_line}: column {name!r} appears twice")
    for name in REQUIRED:
        if name not in columns:
            raise InputError(manifest, f"line {header_line}: no {name!r} column; the header "
                                       "must name at least input,out (comma-separated)")
    if len(rows) == 1:
        raise InputError(manifest, "no sequences: the manifest has a header but no rows")
    jobs: list[BatchJob] = []
    outputs: dict[Path, int] = {}
    for line, row in rows[1:]:
        if len(row) != len(columns):
            raise InputError(manifest, f"line {line}: expected {len(columns)} fields "
                                       f"({','.join(columns)}), found {len(row)}")
        job = _job(manifest, line, dict(zip(columns, (c.strip() for c in row), strict=True)))
        out = job.out.resolve()
        if out in outputs:
            raise InputError(manifest, f"line {line}: out {str(job.out)!r} is also the output "
                                       f"of line {outputs[out]}")
        outputs[out] = line
        jobs.append(job)
    return jobs


def finished(job: BatchJob, frames: int) -> int | None:
    """The number of tracks of a complete output folder of ``job`` over ``frames`` frames, or
    None when it is missing or incomplete (it is then tracked again)."""
    names = (*RESULT_FILES, MOT_FILE) if job.method == "boxtrack" else RESULT_FILES
    if not all((job.out / name).is_file() for name in names):
        return None
    if set(numbered_files(job.out, "mask")) != set(range(frames)):
        return None
    lines = (job.out / "res_track.txt").read_text().splitlines()
    return sum(1 for line in lines if line.strip())


def track_job(job: BatchJob, images: ImageSequence, overwrite: bool = False) -> int:
    """Track ``images`` as ``celltrail track`` would with the job's options and write its output
    folder atomically; returns the number of tracks."""
    check_output(job.out, job.inputs(), folder=True, overwrite=overwrite)
    boxtrack = job.method == "boxtrack"
    if boxtrack:
        prompts, _ = box_prompts(images, job.frame_step, job.boxes, job.boxes_from_gt,
                                 job.box_frame_base)
        tracker = boxtrack_tracker(prompts, job.backend, job.preset, job.model, None, True)
    elif job.method == "embedtrack":
        tracker = embedtrack_tracker(job.model, job.tta)
    elif job.method == "cap":
        tracker = cap_tracker(job.model, job.queries_from_gt, job.preset, job.diameter)
    elif job.method == "cellboxify":
        tracker = cellboxify_tracker(job.model)
    else:
        tracker = get_tracker(job.method, preset=job.preset, diameter=job.diameter)
    with atomic_dir(job.out, overwrite) as tmp:
        result = tracker.track(images, MaskStore(tmp, digits=frame_digits(len(images))))
        save_result(result, tmp, mot=boxtrack)
    return len(result.lineage)


def run_job(job: BatchJob, overwrite: bool = False) -> dict[str, object]:
    """Track one sequence unless its output folder is complete; its summary row. Whatever goes
    wrong is reported in the row (status failed) so that it spares the other sequences."""
    start = time.perf_counter()
    row: dict[str, object] = {"input": str(job.input), "out": str(job.out), "error": ""}
    try:
        images = open_sequence(job.input).every(job.frame_step)
        row["frames"] = len(images)
        tracks = finished(job, len(images))
        row["status"] = "done" if tracks is None else "skipped"
        row["tracks"] = track_job(job, images, overwrite) if tracks is None else tracks
    except Exception as exc:  # any failure is this sequence's alone
        row.update(status="failed", error=one_line(exc))
    row["seconds"] = time.perf_counter() - start
    return row


def one_line(exc: BaseException) -> str:
    """An exception as one line: the message of a celltrail error, else type and message."""
    text = str(exc) if isinstance(exc, CellTrailError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


@contextmanager
def local_cluster(workers: int) -> Iterator[LocalCluster]:
    """A dask cluster of ``workers`` single-threaded processes on this machine, for one batch.

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_`` for their workers, which pins glibc's mmap
    threshold at 128 KiB so that every frame-sized array is mapped afresh: tracking ran 1.6 times
    slower (five times the system time), so it is left out. They also set it, and
    ``OMP_NUM_THREADS=1``, in this process's environment to pass them on; that is undone after.
    """
    if workers < 1:
        raise InputError(None, f"workers must be >= 1, not {workers}")
    saved = dict(os.environ)
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        # the dashboard on any free port: batches may run side by side
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.ERROR) as cluster:
            yield cluster
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


def run_batch(
    manifest: str | Path,
    scheduler: str | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Track every sequence of ``manifest`` on a dask cluster; the summary table, one row per
    sequence in manifest order (status done, skipped or failed, with the error's line).

    ``scheduler`` is the address of a running cluster (``tcp://HOST:PORT``); without it a local
    cluster of ``workers`` single-threaded processes is started for the run. ``progress(done,
    total)`` is called as each sequence finishes. Finished output folders are skipped, so rerun
    the same manifest after an interruption to do the rest. ``overwrite`` lets a row replace
    an output folder that celltrail did not write.
    """
    jobs = read_manifest(manifest)
    rows: list[dict[str, object]] = [{} for _ in jobs]
    with ExitStack() as stack:
        if scheduler is None:
            client = stack.enter_context(Client(stack.enter_context(local_cluster(workers))))
        else:
            try:
                client = stack.enter_context(Client(scheduler))
            except Exception as exc:  # a bad address raises KeyError or ValueError, no one OSError
                raise InputError(None, f"cannot reach the dask scheduler {scheduler!r} (give "
                                       f"its address, tcp://HOST:PORT): {one_line(exc)}") from exc
        futures = {client.submit(run_job, job, overwrite, pure=False): i
                   for i, job in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), start=1):
            i = futures[future]
            try:
                rows[i] = future.result()
            except Exception as exc:  # e.g. the workers running it kept dying (KilledWorker)
                rows[i] = {"input": str(jobs[i].input), "out": str(jobs[i].out),
                           "status": "failed", "error": one_line(exc)}
            future.release()  # else a worker lost later would make dask redo it
            if progress is not None:
                progress(done, len(jobs))
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for column in ("frames", "tracks"):
        table[column] = table[column].astype("Int64")
    table["error"] = table["error"].fillna("")
    return table
