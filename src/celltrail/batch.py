"""Track many sequences (the positions of a screen) in parallel on a dask cluster.

A manifest is a CSV file with one sequence per row: the columns ``input`` and ``out`` (relative
paths are resolved against the manifest's folder) and, optionally, ``method``, ``frame_step``,
the prompt columns (``boxes``, ``boxes_from_gt`` for boxtrack, ``queries_from_gt`` for cap) and
a column per option of the methods (:mod:`celltrail.methods.registry`: the same names as the
options classes' fields and ``celltrail track``'s flags). An empty cell takes the default; an
option of another method is an error. Each sequence is tracked as ``celltrail track`` would and
written atomically, so a complete output folder is a finished sequence: a rerun skips it and
does the rest.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dask
import pandas as pd
from distributed import Client, LocalCluster, as_completed

from celltrail.core.errors import CellTrailError, InputError, OptionError
from celltrail.core.result import MaskStore
from celltrail.core.sequence import ImageSequence, open_sequence
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import frame_digits, numbered_files
from celltrail.io.outputs import check_output, model_input
from celltrail.io.results import EXTRA_FILES, RESULT_FILES, write_tables
from celltrail.io.tables import SUMMARY_COLUMNS
from celltrail.methods.base import make_options
from celltrail.methods.registry import (
    DEFAULT_METHOD,
    check_applies,
    either,
    fields_by_name,
    get_method,
)
from celltrail.models.zoo import model_names
from celltrail.threads import set_threads

#: The prompt columns, by the kind of prompts they give.
PROMPT_COLUMNS = {"boxes": "boxes", "boxes_from_gt": "boxes", "queries_from_gt": "queries"}


@dataclass(frozen=True)
class BatchJob:
    """One manifest row: a sequence to track, with which method, prompts and options."""

    input: Path
    out: Path
    method: str = DEFAULT_METHOD
    frame_step: int = 1
    prompts: Path | None = None
    options: dict[str, object] = field(default_factory=dict)
    #: How to read the input (as ``celltrail track``'s options of the same names).
    reading: dict[str, object] = field(default_factory=dict)

    def inputs(self) -> list[Path]:
        """Every file or folder the job reads (which its output may not touch)."""
        paths = (self.input, self.prompts, model_input(self.options.get("model")))  # type: ignore[arg-type]
        return [p for p in paths if p is not None]


REQUIRED = ("input", "out")
#: The manifest's columns: the job's own, the prompts', then every method option.
READING = ("channel", "position", "pixel_size", "interval")
COLUMNS = (*REQUIRED, "method", "frame_step", *READING, *PROMPT_COLUMNS)
#: How a true/false cell may say yes or no.
FLAGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def manifest_columns() -> tuple[str, ...]:
    """Every column a manifest may have (the method options of the registry included)."""
    return (*COLUMNS, *fields_by_name())


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


def _option(manifest: Path, line: int, name: str, text: str, method: str) -> object:
    """The value of option ``name`` written ``text`` in a cell, by the option's type."""
    kind = fields_by_name()[name][0][1].type
    if kind is bool:
        if text.lower() not in FLAGS:
            raise InputError(manifest, f"line {line}: {name} must be true or false, not "
                                       f"{text!r}")
        return FLAGS[text.lower()]
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise InputError(manifest, f"line {line}: {name} must be {what}, not "
                                       f"{text!r}") from None
    if name == "model" and text not in model_names(get_method(method).model_kind or ""):
        return os.path.abspath(manifest.parent / Path(text).expanduser())
    return text


def _job(manifest: Path, line: int, cells: dict[str, str]) -> BatchJob:
    """The job of one manifest row; empty cells take the defaults."""
    for column in REQUIRED:
        if not cells[column]:
            raise InputError(manifest, f"line {line}: empty {column!r}")
    given = {k: v for k, v in cells.items() if v}
    try:
        method = get_method(given.get("method", DEFAULT_METHOD))
        prompts = [c for c in PROMPT_COLUMNS if c in given]
        stray = [c for c in prompts if PROMPT_COLUMNS[c] != method.prompts]
        if stray:
            raise OptionError(stray[0], f"applies to method {either(_prompted(stray[0]))} only")
        if len(prompts) > 1:
            raise OptionError(prompts[1], f"give either {' or '.join(prompts)}, not both")
        if method.needs_prompts and not prompts:
            raise OptionError("method", f"{method.name} needs its prompts: a column "
                                        f"{' or '.join(_columns_of(method.prompts))}")
        values = {k: _option(manifest, line, k, v, method.name) for k, v in given.items()
                  if k not in COLUMNS}
        check_applies(method, values)
        make_options(method.options, None, values)  # every problem found now, before the run
    except OptionError as exc:
        raise InputError(manifest, f"line {line}: {exc.name}: {exc.problem}") from None
    folder = manifest.parent
    # absolute: the workers of a remote cluster do not share our working folder
    paths = {k: Path(os.path.abspath(folder / Path(v).expanduser())) for k, v in given.items()
             if k in ("input", "out", *PROMPT_COLUMNS)}
    step = given.get("frame_step")
    reading: dict[str, object] = {k: given[k] for k in ("channel", "position") if k in given}
    for name in ("pixel_size", "interval"):
        if name in given:
            reading[name] = _number(manifest, line, name, given[name], float, 1e-12)
    return BatchJob(paths["input"], paths["out"], method.name,
                    1 if step is None else _number(manifest, line, "frame_step", step, int, 1),  # type: ignore[arg-type]
                    next((paths[c] for c in prompts), None), values, reading)


def _prompted(column: str) -> list[str]:
    """The methods a prompt column applies to."""
    from celltrail.methods.registry import METHODS

    return [m.name for m in METHODS.values() if m.prompts == PROMPT_COLUMNS[column]]


def _columns_of(kind: str | None) -> list[str]:
    return [c for c, k in PROMPT_COLUMNS.items() if k == kind]


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
    known = manifest_columns()
    for i, name in enumerate(columns):
        if name not in known:
            raise InputError(manifest, f"line {header_line}: unknown column {header[i]!r}; "
                                       f"columns are {', '.join(known)}")
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
    extra = get_method(job.method).tracker_class().outputs
    names = (*RESULT_FILES, *(EXTRA_FILES[name] for name in extra))
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
    tracker = get_method(job.method).load(**job.options)
    with atomic_dir(job.out, overwrite) as tmp:
        result = tracker.track(images, job.prompts, MaskStore(
            tmp, frame_digits(len(images)), images.pixel_size, images.interval))
        write_tables(result, tmp)
    return len(result.lineage)


def run_job(job: BatchJob, overwrite: bool = False, threads: int | None = None
            ) -> dict[str, object]:
    """Track one sequence unless its output folder is complete, with ``threads`` threads (None:
    the worker's default, :func:`celltrail.threads.default_threads`); its summary row. Whatever
    goes wrong is reported in the row (status failed) so that it spares the other sequences."""
    start = time.perf_counter()
    if threads is not None:
        set_threads(threads)
    row: dict[str, object] = {"input": str(job.input), "out": str(job.out), "error": ""}
    try:
        images = open_sequence(job.input, **job.reading).every(job.frame_step)  # type: ignore[arg-type]
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
    threads: int | None = None,
) -> pd.DataFrame:
    """Track every sequence of ``manifest`` on a dask cluster; the summary table, one row per
    sequence in manifest order (status done, skipped or failed, with the error's line).

    ``scheduler`` is the address of a running cluster (``tcp://HOST:PORT``); without it a local
    cluster of ``workers`` single-threaded processes is started for the run. ``progress(done,
    total)`` is called as each sequence finishes. Finished output folders are skipped, so rerun
    the same manifest after an interruption to do the rest. ``overwrite`` lets a row replace
    an output folder that celltrail did not write. ``threads``: each sequence's threads (None:
    each worker's default, one on a local cluster).
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
        futures = {client.submit(run_job, job, overwrite, threads, pure=False): i
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
