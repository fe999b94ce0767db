"""The ``celltrail`` command line: track, link, evaluate, simulate, demo."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from importlib.resources import files
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from celltrail import __version__
from celltrail.core.errors import CellTrailError, InputError
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence, open_sequence
from celltrail.io.atomic import atomic_dir, atomic_file
from celltrail.io.ctc import frame_digits, read_result, write_man_track
from celltrail.io.tables import tracks_table, write_table
from celltrail.metrics.ctc import AOGM_PARTS, HEADLINE, evaluate

app = typer.Typer(
    name="celltrail",
    help="Cell masks, tracks and lineages from 2D time-lapse microscopy.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., object])


def reports_errors(command: F) -> F:
    """Turn a :class:`CellTrailError` into one line on stderr and exit status 1."""

    @wraps(command)
    def run(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except CellTrailError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None

    return run  # type: ignore[return-value]


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over frames; yields a callback taking the frame just finished."""
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(what, total=total)
        yield lambda t: progress.update(task, completed=t + 1)


def _check_out(out: Path, *inputs: Path) -> None:
    """Refuse an output folder that is, or holds, an input (inputs are never modified)."""
    out = out.resolve()
    for source in inputs:
        source = source.resolve()
        if out == source or out in source.parents or (source.is_dir() and source in out.parents):
            raise InputError(out, f"output folder overlaps the input {source}")


def save_result(result: TrackingResult, out: Path) -> None:
    """Check the result, then write the lineage and tracks tables beside its masks in ``out``."""
    table = tracks_table(result.masks, result.lineage)
    by_frame = table.groupby("frame")["id"].apply(list)
    result.validate(by_frame.get(t, []) for t in range(len(result.masks)))
    write_man_track(result.lineage, out / "res_track.txt")
    write_table(table, out / "tracks.csv")
    write_table(table, out / "tracks.parquet")


Run = Callable[[MaskStore, Callable[[int], None]], TrackingResult]


def run_tracker(images: ImageSequence, out: Path, run: Run) -> None:
    """Call ``run(store, on_frame)`` writing into ``out`` atomically, with a progress bar."""
    with atomic_dir(out) as tmp, progress_bar(len(images), "tracking") as on_frame:
        save_result(run(MaskStore(tmp, digits=frame_digits(len(images))), on_frame), tmp)
    console.print(f"wrote {len(images)} frames to {out}")


@app.command()
@reports_errors
def track(
    input: Annotated[Path, typer.Argument(help="CTC image folder (tTTT.tif) or a TIFF stack.")],
    out: Annotated[Path, typer.Option(help="Result folder (maskTTT.tif, res_track.txt, tables).")],
    method: Annotated[str, typer.Option(help="Tracking method.")] = "classical",
    preset: Annotated[str, typer.Option(help="Modality: fluo-nuclei, dic, phase.")] = "fluo-nuclei",
    diameter: Annotated[float | None, typer.Option(help="Cell diameter in pixels (estimated "
                                                         "from the images if not given).")] = None,
) -> None:
    """Segment and track cells in INPUT and write a CTC result folder."""
    from celltrail.methods import get_tracker

    images = open_sequence(input)
    _check_out(out, input)
    tracker = get_tracker(method, preset=preset, diameter=diameter)
    run_tracker(images, out, lambda store, on_frame: tracker.track(images, store, on_frame))


@app.command()
@reports_errors
def link(
    masks: Annotated[Path, typer.Argument(help="Folder or TIFF stack of label images.")],
    out: Annotated[Path, typer.Option(help="Result folder (maskTTT.tif, res_track.txt, tables).")],
    diameter: Annotated[float | None, typer.Option(help="Cell diameter in pixels (estimated "
                                                         "from the masks if not given).")] = None,
) -> None:
    """Track a segmentation you already have (e.g. from Cellpose): link its labels over time."""
    from celltrail.linking import link as link_frames

    labels = open_sequence(masks)
    if labels.dtype.kind not in "biu":
        raise InputError(masks, f"label images must be integers, found {labels.dtype}")
    _check_out(out, masks)

    def frames(on_frame: Callable[[int], None]) -> Iterator[np.ndarray]:
        for t, frame in enumerate(labels):
            on_frame(t)
            yield frame

    run_tracker(labels, out, lambda store, on_frame: link_frames(
        frames(on_frame), store=store, cell_diameter=diameter))


def metrics_table(scores: dict[str, object], title: str) -> Table:
    """A rich table of the headline metrics and the AOGM parts behind TRA."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (*HEADLINE, *AOGM_PARTS):
        value = scores.get(key)
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        else:
            table.add_row(key, "n/a" if value is None else str(value))
    return table


@app.command(name="evaluate")
@reports_errors
def evaluate_command(
    gt: Annotated[Path, typer.Option(help="CTC ground-truth folder (NN_GT).")],
    res: Annotated[Path, typer.Option(help="CTC result folder (maskTTT.tif + res_track.txt).")],
    json_out: Annotated[Path, typer.Option("--json", help="Where to save all metrics as JSON.")]
    = Path("metrics.json"),
) -> None:
    """Score a result with the CTC and MOT metrics (py-ctcmetrics)."""
    with console.status("evaluating with py-ctcmetrics"):
        scores = evaluate(gt, res)
    Console().print(metrics_table(scores, f"{res} vs {gt}"))
    with atomic_file(json_out) as tmp:
        tmp.write_text(json.dumps(scores, indent=2))
    console.print(f"saved {json_out}")


@app.command()
@reports_errors
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for NN/ images and NN_GT/ ground truth.")],
    frames: Annotated[int, typer.Option(help="Number of frames.")] = 50,
    size: Annotated[int, typer.Option(help="Frame side in pixels.")] = 256,
    cells: Annotated[int, typer.Option(help="Cells in view at the start (sets density).")] = 30,
    modality: Annotated[str, typer.Option(help="fluo-nuclei, phase or dic.")] = "fluo-nuclei",
    dtype: Annotated[str, typer.Option(help="uint8 or uint16.")] = "uint8",
    diameter: Annotated[float, typer.Option(help="Mean cell diameter in pixels.")] = 24.0,
    displacement: Annotated[float, typer.Option(help="Mean motion per frame, in diameters.")]
    = 0.1,
    division_rate: Annotated[float, typer.Option(help="Mitoses per cell per frame.")] = 0.01,
    apoptosis_rate: Annotated[float, typer.Option(help="Deaths per cell per frame.")] = 0.002,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")]
    = 0,
    sequence: Annotated[str, typer.Option(help="Sequence folder name.")] = "01",
    frame_step: Annotated[int, typer.Option(help="Keep every N-th time step (with --source: "
                                                 "every N-th frame of that sequence).")] = 1,
    source: Annotated[Path | None, typer.Option(help="Subsample this existing CTC image folder "
                                                     "(its NN_GT beside it) instead of "
                                                     "simulating.")] = None,
) -> None:
    """Write a synthetic sequence with exact ground truth, or subsample an existing one."""
    from celltrail.simulate import SimParams, subsample
    from celltrail.simulate import simulate as run_simulation

    try:
        if source is not None:
            gt = source.with_name(f"{source.name}_GT")
            _check_out(out / source.name, source, gt)
            written = subsample(source, gt, out, frame_step)
        else:
            params = SimParams(frames=frames, size=size, cells=cells, modality=modality,
                               dtype=dtype, cell_diameter=diameter, displacement=displacement,
                               division_rate=division_rate, apoptosis_rate=apoptosis_rate)
            params.validate()
            with progress_bar(frames, "simulating") as on_frame:
                written = run_simulation(out, params, seed=seed, sequence=sequence,
                                         frame_step=frame_step,
                                         progress=lambda done, _: on_frame(done - 1))
    except ValueError as exc:
        raise InputError(None, str(exc)) from exc
    console.print(f"wrote {written} and {written}_GT")


@app.command()
@reports_errors
def validate(
    res: Annotated[Path, typer.Argument(help="CTC result folder (maskTTT.tif + res_track.txt).")],
) -> None:
    """Check a result folder against the CTC invariants."""
    errors = read_result(res).errors()
    for error in errors:
        print(f"{res}: {error}")
    if errors:
        raise typer.Exit(1)
    print(f"{res}: valid")


@app.command()
@reports_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path(
        "celltrail-demo"),
) -> None:
    """Track the bundled real sample, score it and draw an overlay (about a minute)."""
    from celltrail.methods import get_tracker
    from celltrail.viz import write_overlay

    sample = Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop"))
    images = open_sequence(sample / "01")
    result_dir = out / "01_RES"
    tracker = get_tracker("classical", preset="fluo-nuclei")
    run_tracker(images, result_dir, lambda store, on_frame: tracker.track(images, store, on_frame))
    with console.status("evaluating with py-ctcmetrics"):
        scores = evaluate(sample / "01_GT", result_dir)
    Console().print(metrics_table(scores, "bundled sample: Fluo-N2DH-GOWT1 01 crop"))
    with atomic_file(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(scores, indent=2))
    result = read_result(result_dir)
    last = len(images) - 1
    write_overlay(images, result.masks, [0, last // 2, last], out / "overlay.png")
    console.print(f"results in {result_dir}, metrics in {out / 'metrics.json'}, "
                  f"overlay in {out / 'overlay.png'}")


def _version(value: bool) -> None:
    if value:
        print(f"celltrail {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Cell masks, tracks and lineages from 2D time-lapse microscopy."""
