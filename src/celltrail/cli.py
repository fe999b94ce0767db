"""The ``celltrail`` command line: track, batch, link, convert, evaluate, view, report,
simulate, train, demo."""

from __future__ import annotations

import math
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from importlib.resources import files
from pathlib import Path
from typing import Annotated, TypeVar

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from celltrail import __version__
from celltrail.core.errors import CellTrailError, InputError, OptionError
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence, open_labels, open_sequence
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import companions, frame_digits, read_result
from celltrail.io.outputs import check_output, model_input, write_json
from celltrail.io.tables import write_table
from celltrail.methods.base import Tracker
from celltrail.methods.boxtrack.backends import DEFAULT_BACKEND
from celltrail.methods.boxtrack.config import ADAPT_BY_DEFAULT
from celltrail.metrics.ctc import AOGM_PARTS, HEADLINE, evaluate
from celltrail.pipeline import (
    box_prompts,
    boxtrack_tracker,
    cap_tracker,
    cellboxify_tracker,
    embedtrack_tracker,
    save_result,
)
from celltrail.segmentation import DEFAULT_PRESET
from celltrail.summary import settings_of, summary_lines
from celltrail.viz.movie import MOVIE_SUFFIXES

app = typer.Typer(
    name="celltrail",
    help="Cell masks, tracks and lineages from 2D time-lapse microscopy.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")


#: Process-wide settings: ``debug`` (set by ``--debug``: errors show their traceback instead
#: of one line) and whether forked processes are set to restore the default signal handlers.
STATE = {"debug": False, "fork_hook": False}


class Terminated(BaseException):
    """A termination signal (SIGTERM, SIGHUP) turned into an exception, so that temporary
    outputs are removed on the way out as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def _default_signals() -> None:
    """In a process forked from the CLI (an evaluation worker), the default: a worker stopped
    by its pool ends at once, wherever it waits."""
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)


#: The signals a scheduler or ``timeout`` stops a run with, handled like Ctrl-C.
STOP_SIGNALS = tuple(name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def catch_signals() -> None:
    """Handle SIGTERM and SIGHUP like SIGINT in this process (temporary outputs are removed
    on the way out); processes forked from it keep the default behaviour."""
    if not STATE["fork_hook"] and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_default_signals)
        STATE["fork_hook"] = True
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), _raise_terminated)


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line printed for an exception that ends a command, and the exit status."""
    if isinstance(exc, CellTrailError):
        return f"error: {exc}", 1
    if isinstance(exc, KeyboardInterrupt):
        return "error: interrupted; nothing was written", 130
    if isinstance(exc, Terminated):
        return f"error: stopped by {exc}; nothing was written", 128 + exc.signum
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"error: {exc.filename}: {exc.strerror or exc}", 1
    if isinstance(exc, MemoryError):
        return "error: out of memory", 1
    return (f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} "
            f"(run again with --debug for the traceback, and please report it)", 1)


def reports_errors(command: F) -> F:
    """Turn any error into one line on stderr and a non-zero exit status (with ``--debug``,
    the traceback)."""

    @wraps(command)
    def run(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except (Exception, KeyboardInterrupt, Terminated) as exc:
            if STATE["debug"]:
                raise
            line, status = error_line(exc)
            print(line, file=sys.stderr)
            raise typer.Exit(status) from None

    return run  # type: ignore[return-value]


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Print each warning raised inside as one line ``warning: ...`` on stderr, not as Python's
    file, line number and source line."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_: print(f"warning: {message}", file=sys.stderr)
        yield


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over frames; yields a callback taking the frame just finished."""
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(what, total=total)
        yield lambda t: progress.update(task, completed=t + 1)


Run = Callable[[MaskStore, Callable[[int], None]], TrackingResult]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output even if celltrail "
                                              "did not write it (never an input).")]


def positive(name: str, value: float | None) -> None:
    """Refuse an option value that is not a positive finite number."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise OptionError(name, f"must be a positive finite number, not {value:g}")


AllowGaps = Annotated[bool, typer.Option(help="Accept numbered frame files with numbers "
                                              "missing (t000, t002, ...), tracked as "
                                              "consecutive frames.")]
Channel = Annotated[str | None, typer.Option(help="The channel to read, by index (0, 1, ...) "
                                                  "or name, of a multichannel input (OME-TIFF, "
                                                  "OME-Zarr, CZI, ND2, LIF).")]
Position = Annotated[str | None, typer.Option(help="The position (scene, series) to read, by "
                                                   "index or name, of a file holding several.")]
PixelSize = Annotated[float | None, typer.Option(help="Pixel size in µm (instead of the "
                                                      "metadata's): tracks tables get µm.")]
Interval = Annotated[float | None, typer.Option(help="Minutes between frames (instead of the "
                                                     "metadata's): tracks tables get minutes "
                                                     "and speeds.")]
#: What INPUT may be, for the commands' help.
INPUTS = ("Images: a folder of TIFF, PNG or JPEG frames (CTC: tTTT.tif), a TIFF stack, an "
          "OME-TIFF, an OME-Zarr, or CZI, ND2, LIF (with the formats extra).")


def run_tracker(images: ImageSequence, out: Path, run: Run, mot: bool = False,
                overwrite: bool = False) -> TrackingResult:
    """Call ``run(store, on_frame)`` writing into ``out`` atomically, with a progress bar; with
    ``mot`` the folder also gets the tracks as MOT lines (``tracking_results.txt``)."""
    with atomic_dir(out, overwrite) as tmp, progress_bar(len(images), "tracking") as on_frame:
        store = MaskStore(tmp, frame_digits(len(images)), images.pixel_size, images.interval)
        result = run(store, on_frame)
        save_result(result, tmp, mot, images.pixel_size, images.interval)
    console.print(f"wrote {len(images)} frames to {out}")
    return result


@app.command()
@reports_errors
def track(
    input: Annotated[Path, typer.Argument(help=INPUTS)],
    out: Annotated[Path, typer.Option(help="Result folder (maskTTT.tif, res_track.txt, tables; "
                                           "boxtrack adds MOT lines, tracking_results.txt).")],
    method: Annotated[str, typer.Option(help="Tracking method: classical, boxtrack, "
                                             "embedtrack, cap or cellboxify.")]
    = "classical",
    preset: Annotated[str, typer.Option(help="Modality: auto (chosen from the first frame), "
                                             "fluo-nuclei, dic, phase.")] = DEFAULT_PRESET,
    diameter: Annotated[float | None, typer.Option(help="Cell diameter in pixels (estimated "
                                                         "from the images if not given).")] = None,
    frame_step: Annotated[int, typer.Option(min=1, help="Track every K-th frame only; the "
                                                        "result holds them as frames 0..n-1.")]
    = 1,
    movie: Annotated[Path | None, typer.Option(help="Also write a movie of the result with "
                                                    "track ids (.gif or .mp4).")] = None,
    boxes: Annotated[Path | None, typer.Option(help="boxtrack: one box per cell, a CSV or "
                                                    "bbox.txt of 'frame,id,x,y,w,h' rows or COCO "
                                                    "JSON.")] = None,
    boxes_from_gt: Annotated[Path | None, typer.Option(help="boxtrack: prompt with the boxes "
                                                            "of the cells of frame 0 of this "
                                                            "CTC ground truth (NN_GT).")] = None,
    box_frame_base: Annotated[int, typer.Option(help="boxtrack: number of the first frame in "
                                                     "--boxes (1 for MOT-style bbox.txt).")] = 0,
    backend: Annotated[str, typer.Option(help="boxtrack: segmenter, auto (the one whose masks "
                                              "fit the prompt boxes best: learned, adapted or "
                                              "classical with each preset), learned or "
                                              "classical (with --preset).")] = DEFAULT_BACKEND,
    adapt: Annotated[bool, typer.Option(help="boxtrack: fine-tune the learned backend on the "
                                             "prompted frame from its boxes first (up to a "
                                             "minute).")] = ADAPT_BY_DEFAULT,
    model: Annotated[str | None, typer.Option(help="boxtrack, embedtrack, cap, cellboxify: the "
                                                   "model, a shipped name (the data it was "
                                                   "trained on, e.g. Fluo-N2DH-GOWT1) or a "
                                                   "checkpoint path.")] = None,
    tta: Annotated[bool, typer.Option(help="embedtrack: test-time augmentation (8 rotations "
                                           "and flips; about 8x slower).")] = False,
    new_cells: Annotated[bool | None, typer.Option(help="boxtrack: start tracks for cells "
                                                        "nobody prompted (default: with the "
                                                        "learned backend only); cap: add the "
                                                        "cells the detector (--preset) finds "
                                                        "later (default: on).")] = None,
    divisions: Annotated[bool, typer.Option(help="boxtrack: detect cell divisions.")] = True,
    queries_from_gt: Annotated[Path | None, typer.Option(help="cap: track the cells of frame 0 "
                                                              "of this CTC ground truth (NN_GT) "
                                                              "instead of those the classical "
                                                              "detector finds (--preset).")]
    = None,
    allow_gaps: AllowGaps = False,
    channel: Channel = None,
    position: Position = None,
    pixel_size: PixelSize = None,
    interval: Interval = None,
    overwrite: Overwrite = False,
    linker: Annotated[str, typer.Option(help="classical, cellboxify: how masks are linked, "
                                             "celltrail or laptrack.")] = "celltrail",
) -> None:
    """Segment and track cells in INPUT and write a CTC result folder.

    --method boxtrack follows the cells given by one box each (--boxes or --boxes-from-gt);
    --method embedtrack needs a trained model (--model); --method cap tracks the cells of
    the first frame (found by the classical detector, or --queries-from-gt) as points;
    --method cellboxify segments with a CellBoxify model (--model) and links the masks.
    """
    from celltrail.linking import get_linker
    from celltrail.methods import get_tracker

    positive("--diameter", diameter)
    positive("--pixel-size", pixel_size)
    positive("--interval", interval)
    with one_line_warnings():
        images = open_sequence(input, allow_gaps, channel, position, pixel_size,
                               interval).every(frame_step)
    inputs = (input, boxes, boxes_from_gt, queries_from_gt, model_input(model))
    check_output(out, inputs, folder=True, overwrite=overwrite)
    if movie is not None:
        check_output(movie, (*inputs, out), suffixes=MOVIE_SUFFIXES, overwrite=overwrite)
    boxtrack, embedtrack, cap = method == "boxtrack", method == "embedtrack", method == "cap"
    cellboxify = method == "cellboxify"
    if not boxtrack and any(v is not None for v in (boxes, boxes_from_gt)):
        raise InputError(None, "--boxes and --boxes-from-gt apply to --method boxtrack only")
    if model is not None and not (boxtrack or embedtrack or cap or cellboxify):
        raise InputError(None, "--model applies to --method boxtrack, embedtrack, cap or "
                               "cellboxify only")
    if queries_from_gt is not None and not cap:
        raise InputError(None, "--queries-from-gt applies to --method cap only")
    if tta and not embedtrack:
        raise InputError(None, "--tta applies to --method embedtrack only")
    if linker != "celltrail" and method not in ("classical", "cellboxify"):
        raise InputError(None, "--linker applies to --method classical or cellboxify only")
    get_linker(linker)  # an unknown name fails here, before any work
    with one_line_warnings():
        if embedtrack:
            tracker = embedtrack_tracker(model, tta)
        elif cap:
            tracker = cap_tracker(model, queries_from_gt, preset, diameter, new_cells is not False)
        elif cellboxify:
            tracker = cellboxify_tracker(model, linker)
        elif boxtrack:
            prompts, origin = box_prompts(images, frame_step, boxes, boxes_from_gt,
                                          box_frame_base)
            console.print(f"prompts: {len(prompts)} boxes from {origin}")
            tracker = boxtrack_tracker(prompts, backend, preset, model, new_cells, divisions,
                                       adapt, console.print)
        else:
            tracker = get_tracker(method, preset=preset, diameter=diameter, linker=linker)
        result = run_tracker(images, out,
                             lambda store, on_frame: tracker.track(images, store, on_frame),
                             mot=boxtrack, overwrite=overwrite)
    for line in summary_lines(result.lineage, len(images), settings_of(tracker)):
        print(line, file=sys.stderr)
    if movie is not None:
        write_result_movie(images, out, movie)


def write_result_movie(images: ImageSequence, res: Path, movie: Path) -> None:
    """Write the overlay movie of the result folder ``res`` on ``images``, with a progress bar."""
    from celltrail.viz import write_movie

    result = read_result(res)
    with progress_bar(len(images), "movie") as on_frame:
        write_movie(images, result.masks, movie, progress=lambda done, _: on_frame(done - 1),
                    lineage=result.lineage)
    console.print(f"wrote {movie}")


train_app = typer.Typer(help="Train celltrail's models on your own CTC-layout data.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")


@contextmanager
def training_sequences(data: list[Path], out: Path, load: Callable[[Path], T],
                       simulated: bool, frames: int = 20,
                       overwrite: bool = False) -> Iterator[list[T]]:
    """The training sequences read from ``data`` (after checking ``out`` overwrites none), with
    the simulated ones of ``frames`` frames (written to a temporary folder that lives as long
    as the block)."""
    import tempfile

    from celltrail.training.simulated import simulated_sequences

    check_output(out, [p for folder in data for p in companions(folder)], suffixes=(".pt",),
                 overwrite=overwrite)
    with console.status("reading training data"):
        sequences = [load(folder) for folder in data]
    with tempfile.TemporaryDirectory() as tmp:
        if simulated:
            with console.status("simulating training sequences"):
                sequences += [load(p) for p in simulated_sequences(tmp, frames)]
        yield sequences


def check_supervision(supervision: str) -> None:
    """Refuse a --supervision other than box or mask."""
    if supervision not in ("box", "mask"):
        raise InputError(None, f"--supervision must be box or mask, not {supervision!r}")


@train_app.command("prompt-segmenter")
@reports_errors
def train_prompt_segmenter(
    data: Annotated[list[Path], typer.Option(help="CTC image folder NN with NN_GT (SEG, TRA) "
                                                  "or NN_ST beside it; repeat for more.")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt); a checkpoint is saved "
                                           "there every 250 steps.")],
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 3000,
    simulated: Annotated[bool, typer.Option(help="Mix in simulated sequences of every "
                                                 "modality.")] = True,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to continue from.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    supervision: Annotated[str, typer.Option(help="mask: learn from the cells' masks; box: "
                                                  "from their boxes alone (CellBoxify's "
                                                  "losses).")] = "mask",
    overwrite: Overwrite = False,
) -> None:
    """Retrain BoxTrack's learned backend (use it with --model PATH)."""
    from celltrail.training.prompt_segmenter import TrainParams, load_sequence, train

    check_supervision(supervision)
    with training_sequences(data, out, load_sequence, simulated,
                            overwrite=overwrite) as sequences, \
            progress_bar(steps, "training") as on_step:
        train(sequences, out, TrainParams(steps=steps, seed=seed, supervision=supervision),
              resume=resume,
              progress=lambda step, _: on_step(step))
    console.print(f"wrote {out}")


@train_app.command("embedtrack")
@reports_errors
def train_embedtrack(
    data: Annotated[list[Path], typer.Option(help="CTC image folder NN with NN_GT (SEG, TRA) "
                                                  "and/or NN_ST beside it; repeat for more.")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt); a checkpoint is saved "
                                           "there every 100 steps.")],
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the crops of the "
                                                         "training frames (the paper: 15).")]
    = 15.0,
    batch: Annotated[int, typer.Option(min=1, help="Image pairs per step.")] = 2,
    simulated: Annotated[bool, typer.Option(help="Mix in simulated sequences of every "
                                                 "modality.")] = False,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to continue from, or a "
                                                     "model to fine-tune.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Train an EmbedTrack model on the first 90% of frames (the rest validates); track with
    it by --method embedtrack --model PATH."""
    from celltrail.training.embedtrack import TrainParams, load_sequence, steps_per_epoch, train

    with training_sequences(data, out, load_sequence, simulated,
                            overwrite=overwrite) as sequences:
        per_epoch = steps_per_epoch(sequences, TrainParams(batch=batch))
        steps = max(1, round(epochs * per_epoch))
        params = TrainParams(steps=steps, batch=batch, seed=seed)
        with epoch_bar(steps, per_epoch) as on_step:
            train(sequences, out, params, resume=resume, progress=lambda step, _: on_step(step))
    console.print(f"wrote {out}")


@train_app.command("cap")
@reports_errors
def train_cap(
    data: Annotated[list[Path], typer.Option(help="CTC image folder NN with NN_GT/TRA beside it "
                                                  "(tracking ground truth only); repeat for "
                                                  "more.")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt); a checkpoint is saved "
                                           "there every 100 steps.")],
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps (one window of 24 "
                                                   "frames each).")] = 1200,
    simulated: Annotated[bool, typer.Option(help="Mix in simulated sequences of every "
                                                 "modality.")] = True,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to continue from, or a "
                                                     "model to fine-tune.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Train a CAP model from cell centres and lineages (TRA markers, man_track.txt); track
    with it by --method cap --model PATH."""
    from celltrail.training.cap import TrainParams, load_sequence, train

    with training_sequences(data, out, load_sequence, simulated, frames=40,
                            overwrite=overwrite) as sequences, \
            progress_bar(steps, "training") as on_step:
        train(sequences, out, TrainParams(steps=steps, seed=seed), resume=resume,
              progress=lambda step, _: on_step(step))
    console.print(f"wrote {out}")


@train_app.command("cellboxify")
@reports_errors
def train_cellboxify(
    coco: Annotated[Path, typer.Option(help="COCO JSON of the training images (LIVECell "
                                            "layout; `celltrail coco` makes one from CTC "
                                            "data).")],
    images: Annotated[Path, typer.Option(help="Folder the JSON's file names are relative to.")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt); a checkpoint is saved "
                                           "there every 100 steps.")],
    supervision: Annotated[str, typer.Option(help="box: learn masks from the boxes alone "
                                                  "(CellBoxify's losses); mask: from full "
                                                  "masks.")] = "box",
    head: Annotated[str, typer.Option(help="mask: Mask R-CNN's mask head; polygon: the "
                                           "paper's polygon head.")] = "mask",
    guide: Annotated[str, typer.Option(help="box supervision: the image the pairwise terms "
                                            "compare, intensity (fluorescence) or texture "
                                            "(DIC, phase contrast).")] = "intensity",
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps (one image each).")]
    = 1600,
    teacher: Annotated[str | None, typer.Option(help="box supervision: self-training, the "
                                                      "mask head learning the masks that this "
                                                      "box-only model (a file or a shipped "
                                                      "name) draws in the boxes.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to continue from, or a "
                                                     "model to fine-tune.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Train a CellBoxify instance segmenter; use it by `celltrail segment --method cellboxify
    --model PATH` or `celltrail track --method cellboxify --model PATH`."""
    from celltrail.models.cellboxify import HEADS, CellBoxifyConfig
    from celltrail.training.cellboxify import (
        TrainParams,
        box_only_teacher,
        train,
        training_images,
    )
    from celltrail.training.cellboxify.losses import GUIDES

    check_supervision(supervision)
    if head not in HEADS:
        raise InputError(None, f"--head must be one of {', '.join(HEADS)}, not {head!r}")
    if guide not in GUIDES:
        raise InputError(None, f"--guide must be one of {', '.join(GUIDES)}, not {guide!r}")
    check_output(out, (coco, images, model_input(teacher)), suffixes=(".pt",), overwrite=overwrite)
    drawer = None if teacher is None else box_only_teacher(teacher)
    with console.status("reading training images" + " and the teacher's masks" * bool(drawer)):
        found = training_images(coco, images, supervision, drawer)
    with progress_bar(steps, "training") as on_step:
        train(found, out, TrainParams(steps=steps, supervision=supervision, guide=guide,
                                      teacher=teacher or "", seed=seed),
              resume=resume, progress=lambda step, _: on_step(step),
              config=CellBoxifyConfig(head=head), trained_on=[coco.name])
    console.print(f"wrote {out}")


@contextmanager
def epoch_bar(steps: int, per_epoch: int) -> Iterator[Callable[[int], None]]:
    """Two progress bars: epochs, and steps within the epoch."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    epochs = -(-steps // per_epoch)
    with Progress(*columns, console=console) as progress:
        outer = progress.add_task("epochs", total=epochs)
        inner = progress.add_task("steps", total=min(per_epoch, steps))

        def update(step: int) -> None:
            epoch, within = divmod(step + 1, per_epoch)
            progress.update(outer, completed=epoch)
            if within == 0:
                progress.reset(inner, total=min(per_epoch, steps - step - 1) or per_epoch)
            else:
                progress.update(inner, completed=within)

        yield update


@app.command()
@reports_errors
def segment(
    input: Annotated[Path, typer.Argument(help=INPUTS)],
    out: Annotated[Path, typer.Option(help="Folder of label images, maskTTT.tif.")],
    method: Annotated[str, typer.Option(help="cellboxify or classical.")] = "cellboxify",
    model: Annotated[str | None, typer.Option(help="cellboxify: a shipped model's name or a "
                                                   "checkpoint path.")] = None,
    preset: Annotated[str, typer.Option(help="classical: modality, auto (chosen from the first "
                                             "frame), fluo-nuclei, dic, phase.")]
    = DEFAULT_PRESET,
    diameter: Annotated[float | None, typer.Option(help="classical: cell diameter in pixels "
                                                         "(estimated if not given).")] = None,
    allow_gaps: AllowGaps = False,
    channel: Channel = None,
    position: Position = None,
    pixel_size: PixelSize = None,
    interval: Interval = None,
    overwrite: Overwrite = False,
) -> None:
    """Segment every frame of INPUT into label images, without tracking (`celltrail link`
    tracks them later)."""
    from celltrail.methods.cellboxify import SHIPPED, CellBoxifySegmenter
    from celltrail.segmentation import Segmenter

    positive("--diameter", diameter)
    positive("--pixel-size", pixel_size)
    positive("--interval", interval)
    with one_line_warnings():
        images = open_sequence(input, allow_gaps, channel, position, pixel_size, interval)
    check_output(out, (input, model_input(model)), folder=True, overwrite=overwrite)
    if method == "cellboxify":
        if model is None:
            raise InputError(None, f"--method cellboxify needs --model: a checkpoint path or a "
                                   f"shipped model ({', '.join(SHIPPED.names())})")
        segmenter: Callable[[np.ndarray], np.ndarray] = CellBoxifySegmenter(model)
    elif method == "classical":
        if model is not None:
            raise InputError(None, "--model applies to --method cellboxify only")
        segmenter = Segmenter(preset, diameter=diameter)
    else:
        raise InputError(None, f"unknown segmentation method {method!r}; choose cellboxify or "
                               f"classical")
    with atomic_dir(out, overwrite) as tmp, \
            progress_bar(len(images), "segmenting") as on_frame:
        store = MaskStore(tmp, frame_digits(len(images)), images.pixel_size, images.interval)
        for t, image in enumerate(images):
            store.append(segmenter(np.asarray(image)))
            on_frame(t)
    console.print(f"wrote {len(images)} label images to {out}")


@app.command()
@reports_errors
def link(
    masks: Annotated[Path, typer.Argument(help="Label images: a folder of TIFF or PNG files "
                                               "(e.g. Cellpose's *_cp_masks.png), a TIFF stack, "
                                               "an OME-TIFF or an OME-Zarr.")],
    out: Annotated[Path, typer.Option(help="Result folder (maskTTT.tif, res_track.txt, tables).")],
    diameter: Annotated[float | None, typer.Option(help="Cell diameter in pixels (estimated "
                                                         "from the masks if not given).")] = None,
    allow_gaps: AllowGaps = False,
    channel: Channel = None,
    position: Position = None,
    pixel_size: PixelSize = None,
    interval: Interval = None,
    overwrite: Overwrite = False,
    linker: Annotated[str, typer.Option(help="celltrail (ours, online) or laptrack.")]
    = "celltrail",
) -> None:
    """Track a segmentation you already have (e.g. from Cellpose): link its labels over time."""
    from celltrail.linking import get_linker

    link_frames = get_linker(linker)
    positive("--diameter", diameter)
    positive("--pixel-size", pixel_size)
    positive("--interval", interval)
    with one_line_warnings():
        labels = open_labels(masks, allow_gaps, channel=channel, position=position,
                             pixel_size=pixel_size, interval=interval)
    check_output(out, (masks,), folder=True, overwrite=overwrite)

    def frames(on_frame: Callable[[int], None]) -> Iterator[np.ndarray]:
        for t, frame in enumerate(labels):
            on_frame(t)
            yield frame

    run_tracker(labels, out, lambda store, on_frame: link_frames(
        frames(on_frame), store=store, cell_diameter=diameter), overwrite=overwrite)


@app.command()
@reports_errors
def convert(
    source: Annotated[Path, typer.Argument(help="A CTC result folder (maskTTT.tif + "
                                                "res_track.txt), a CTC ground-truth folder "
                                                "(NN_GT: its TRA markers) or a GEFF store.")],
    out: Annotated[Path, typer.Argument(help="A GEFF store if the name ends in .zarr (graph + "
                                             "segmentation), else a CTC result folder.")],
    masks: Annotated[Path | None, typer.Option(help="GEFF input only: label images (folder or "
                                                    "TIFF stack) for a store without its own "
                                                    "segmentation.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Convert a tracking result between the CTC layout and GEFF (napari, motile, traccuracy)."""
    from celltrail.io.ctc import check_valid, read_tracking_gt, write_result
    from celltrail.io.geff import read_geff, write_geff

    if not source.exists():
        raise InputError(source, "not found")
    check_output(out, (source, masks), folder=True, overwrite=overwrite)
    if (source / "TRA").is_dir() or (source / "res_track.txt").is_file():
        if masks is not None:
            raise InputError(masks, "--masks applies to a GEFF input only")
        result = (check_valid(read_tracking_gt(source), source, "ground truth")
                  if (source / "TRA").is_dir()
                  else check_valid(read_result(source), source, "result"))
    else:
        result = read_geff(source, None if masks is None else open_sequence(masks))
    if out.suffix == ".zarr":
        write_geff(result, out, overwrite=overwrite)
    else:
        write_result(result, out, overwrite=overwrite)
    console.print(f"wrote {len(result.lineage)} tracks over {len(result.masks)} frames to {out}")


@app.command()
@reports_errors
def coco(
    seq: Annotated[Path, typer.Argument(help="CTC image folder NN (tTTT.tif) with NN_GT/SEG "
                                             "and/or NN_ST/SEG beside it.")],
    out: Annotated[Path, typer.Option(help="COCO JSON file to write (image file names "
                                           "relative to SEQ).")],
    truth: Annotated[str, typer.Option(help="Masks of gt (NN_GT/SEG) or st (NN_ST/SEG), or "
                                            "boxes: their boxes only (GT if present, else "
                                            "ST).")] = "gt",
    frames: Annotated[str | None, typer.Option(help="Only frames A:B, a half-open range as in "
                                                    "Python (0:58 is frames 0 to 57; A: and :B "
                                                    "leave an end open).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write the segmented frames of a CTC sequence as a COCO instance dataset (LIVECell
    layout), e.g. to train or score a cell detector."""
    from celltrail.io.coco import ctc_to_coco, load_coco

    selected = None
    if frames is not None:
        start, colon, stop = frames.partition(":")
        if not colon or not all(part.isdigit() for part in (start, stop) if part):
            raise InputError(None, f"--frames must be A:B, a half-open range of frame numbers, "
                                   f"found {frames!r}")
        selected = range(int(start or 0), int(stop) if stop else sys.maxsize)
    check_output(out, companions(seq), suffixes=(".json",), overwrite=overwrite)
    data = load_coco(ctc_to_coco(seq, out, truth, selected))
    console.print(f"wrote {len(data['images'])} images, {len(data['annotations'])} "
                  f"annotations to {out}")


def batch_table(summary: pd.DataFrame) -> Table:
    """A rich table of a batch summary, one row per sequence; failures in red."""
    table = Table(title="batch summary")
    for column in summary.columns:
        table.add_column(column, justify="right" if column in ("frames", "tracks", "seconds")
                         else "left", overflow="fold")
    for row in summary.itertuples(index=False):
        cells = ["" if pd.isna(v) else f"{v:.1f}" if isinstance(v, float) else str(v)
                 for v in row]
        table.add_row(*cells, style="red" if row.status == "failed" else None)
    return table


@app.command()
@reports_errors
def batch(
    manifest: Annotated[Path, typer.Argument(help="CSV, one sequence per row: columns input,out "
                                                  "and optionally method, preset, diameter, "
                                                  "frame_step, boxes, boxes_from_gt, "
                                                  "box_frame_base, backend, model (as for track;"
                                                  " paths relative to the manifest's folder).")],
    scheduler: Annotated[str | None, typer.Option(help="A running dask scheduler, "
                                                       "tcp://HOST:PORT (e.g. of a SLURM "
                                                       "cluster); default: a local one.")]
    = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes of the local cluster, "
                                                     "one sequence each at a time.")] = 2,
    summary: Annotated[Path | None, typer.Option(help="Also save the summary table (.csv or "
                                                      ".parquet).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Track every sequence of MANIFEST in parallel on a dask cluster.

    Outputs are those of `celltrail track`, written atomically: run the same manifest again after
    an interruption and the finished sequences are skipped. Exit status 1 if any sequence failed.
    """
    from celltrail.batch import read_manifest, run_batch  # here: keeps `celltrail --help` fast

    jobs = read_manifest(manifest)
    if summary is not None:
        check_output(summary, (manifest, *(p for job in jobs for p in job.inputs()),
                               *(job.out for job in jobs)),
                     suffixes=(".csv", ".parquet"), overwrite=overwrite)
    with progress_bar(len(jobs), "sequences") as on_done:
        table = run_batch(manifest, scheduler=scheduler, workers=workers, overwrite=overwrite,
                          progress=lambda done, _: on_done(done - 1))
    Console().print(batch_table(table))
    if summary is not None:
        write_table(table, summary)
        console.print(f"saved {summary}")
    counts = table["status"].value_counts()
    console.print(", ".join(f"{counts.get(s, 0)} {s}" for s in ("done", "skipped", "failed")))
    if counts.get("failed", 0):
        raise typer.Exit(1)


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
    overwrite: Overwrite = False,
) -> None:
    """Score a result with the CTC and MOT metrics (py-ctcmetrics)."""
    check_output(json_out, (gt, res), suffixes=(".json",), overwrite=overwrite)
    with console.status("evaluating with py-ctcmetrics"):
        scores = evaluate(gt, res)
    Console().print(metrics_table(scores, f"{res} vs {gt}"))
    write_json(scores, json_out)
    console.print(f"saved {json_out}")


@app.command()
@reports_errors
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for NN/ images and NN_GT/ ground truth.")],
    frames: Annotated[int, typer.Option(help="Number of frames.")] = 50,
    size: Annotated[int, typer.Option(help="Frame side in pixels.")] = 256,
    cells: Annotated[int, typer.Option(help="Cells in view at the start (sets density).")] = 30,
    modality: Annotated[str, typer.Option(help="fluo-nuclei, phase, dic, fluo-cells (cell "
                                                 "bodies with protrusions) or brightfield.")]
    = "fluo-nuclei",
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
    overwrite: Overwrite = False,
) -> None:
    """Write a synthetic sequence with exact ground truth, or subsample an existing one."""
    from celltrail.simulate import SimParams, subsample
    from celltrail.simulate import simulate as run_simulation

    name = sequence if source is None else source.name
    for folder in (out / name, out / f"{name}_GT"):
        check_output(folder, () if source is None else companions(source), folder=True,
                     overwrite=overwrite)
    try:
        if source is not None:
            gt = source.with_name(f"{source.name}_GT")
            written = subsample(source, gt, out, frame_step, overwrite=overwrite)
        else:
            params = SimParams(frames=frames, size=size, cells=cells, modality=modality,
                               dtype=dtype, cell_diameter=diameter, displacement=displacement,
                               division_rate=division_rate, apoptosis_rate=apoptosis_rate)
            params.validate()
            with progress_bar(frames, "simulating") as on_frame:
                written = run_simulation(out, params, seed=seed, sequence=sequence,
                                         frame_step=frame_step, overwrite=overwrite,
                                         progress=lambda done, _: on_frame(done - 1))
    except ValueError as exc:
        raise InputError(None, str(exc)) from exc
    console.print(f"wrote {written} and {written}_GT")


@app.command()
@reports_errors
def view(
    result: Annotated[Path, typer.Argument(help="CTC result folder (maskTTT.tif + "
                                                "res_track.txt).")],
    images: Annotated[Path, typer.Option(help="The images the result was tracked on (a CTC "
                                              "image folder or a TIFF stack).")],
    movie: Annotated[Path | None, typer.Option(help="Movie to write (.gif or .mp4): contours, "
                                                    "ids, trails, daughters in shades of their "
                                                    "mother's colour.")] = None,
    lineage: Annotated[Path | None, typer.Option(help="Lineage tree to write (.png or .svg), "
                                                      "in the movie's colours.")] = None,
    fps: Annotated[int, typer.Option(min=1, help="Movie frames per second.")] = 5,
    overwrite: Overwrite = False,
) -> None:
    """Draw a result: a movie of its cells over the images and/or its lineage tree."""
    from celltrail.viz.lineage import PLOT_SUFFIXES
    from celltrail.viz.report import view as draw

    if movie is None and lineage is None:
        raise InputError(None, "nothing to draw: give --movie FILE, --lineage FILE or both")
    if lineage is not None:
        check_output(lineage, (result, images, movie), suffixes=PLOT_SUFFIXES,
                     overwrite=overwrite)
    if movie is None:
        written = draw(result, images, lineage_path=lineage)
    else:
        check_output(movie, (result, images, lineage), suffixes=MOVIE_SUFFIXES,
                     overwrite=overwrite)
        with progress_bar(len(open_sequence(images)), "movie") as on_frame:
            written = draw(result, images, movie, lineage, fps,
                           progress=lambda done, _: on_frame(done - 1))
    for path in written:
        console.print(f"wrote {path}")


@app.command()
@reports_errors
def report(
    result: Annotated[Path, typer.Argument(help="CTC result folder (maskTTT.tif + "
                                                "res_track.txt).")],
    images: Annotated[Path, typer.Option(help="The images the result was tracked on.")],
    out: Annotated[Path, typer.Option(help="HTML page to write (one self-contained file).")],
    gt: Annotated[Path | None, typer.Option(help="CTC ground truth (NN_GT): adds the CTC and "
                                                 "MOT metrics.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write one HTML page about a result: metrics (with --gt) or counts, lineage tree, frames."""
    from celltrail.viz.report import write_report

    check_output(out, (result, images, gt), suffixes=(".html", ".htm"), overwrite=overwrite)
    if gt is not None:
        console.print("evaluating with py-ctcmetrics")
    with progress_bar(len(open_sequence(images)), "report") as on_frame:
        write_report(result, images, out, gt_dir=gt, progress=lambda done, _: on_frame(done - 1))
    console.print(f"wrote {out}")


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


#: The demo's runs, by the suffix of their folder and metrics file names.
DEMO_RUNS = ("", "_boxtrack", "_embedtrack", "_cap")


@app.command()
@reports_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path(
        "celltrail-demo"),
    overwrite: Overwrite = False,
) -> None:
    """Track the bundled real sample three ways, score each and draw them (under a minute).

    The classical pipeline from the raw images; BoxTrack (learned backend) from the boxes of the
    first frame's cells; EmbedTrack with the model shipped for Fluo-N2DH-GOWT1 (trained on
    sequence 01, which these frames are cut from).
    """
    from celltrail.methods import get_tracker
    from celltrail.viz import write_overlay

    sample = Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop"))
    images = open_sequence(sample / "01")
    names = [f"01_RES{n}" for n in DEMO_RUNS] + [f"metrics{n}.json" for n in DEMO_RUNS]
    for name in [*names, "overlay.png", "boxtrack.gif"]:
        check_output(out / name, (sample,), folder=name.startswith("01_RES"),
                     overwrite=overwrite)

    def run_and_score(tracker: Tracker, name: str, title: str, mot: bool = False) -> Path:
        result_dir = out / ("01_RES" + name)
        run_tracker(images, result_dir,
                    lambda store, on_frame: tracker.track(images, store, on_frame), mot=mot,
                    overwrite=overwrite)
        with console.status("evaluating with py-ctcmetrics"):
            scores = evaluate(sample / "01_GT", result_dir)
        Console().print(metrics_table(scores, title))
        write_json(scores, out / f"metrics{name}.json")
        return result_dir

    result_dir = run_and_score(get_tracker("classical", preset="fluo-nuclei"), "",
                               "classical on the bundled sample (GOWT1 01 crop)")
    last = len(images) - 1
    write_overlay(images, read_result(result_dir).masks, [0, last // 2, last],
                  out / "overlay.png")
    with one_line_warnings():
        prompts, _ = box_prompts(images, 1, None, sample / "01_GT", 0)
        boxtrack = boxtrack_tracker(prompts, "learned", "fluo-nuclei", None, None, True,
                                    adapt=False)  # the shipped model as it is, in seconds
        boxtrack_dir = run_and_score(boxtrack, "_boxtrack",
                                     "BoxTrack (learned) from first-frame boxes", mot=True)
    write_result_movie(images, boxtrack_dir, out / "boxtrack.gif")
    run_and_score(embedtrack_tracker("Fluo-N2DH-GOWT1", False), "_embedtrack",
                  "EmbedTrack (model trained on GOWT1 01)")
    run_and_score(cap_tracker(None, None, "fluo-nuclei", None), "_cap",
                  "CAP (model not trained on GOWT1; queries from the detector)")
    console.print(f"results in {out}/01_RES*, metrics in {out}/metrics*.json, pictures "
                  f"{out / 'overlay.png'} and {out / 'boxtrack.gif'}")


def _version(value: bool) -> None:
    if value:
        print(f"celltrail {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error "
                                                        "instead of one line.")] = False,
) -> None:
    """Cell masks, tracks and lineages from 2D time-lapse microscopy."""
    STATE["debug"] = debug
    catch_signals()
