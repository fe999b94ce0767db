"""``celltrail train``: training each method's model on the user's data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from celltrail.cli.common import (
    Overwrite,
    console,
    progress_bar,
)
from celltrail.cli.errors import reports_errors
from celltrail.core.errors import InputError
from celltrail.io.ctc import companions
from celltrail.io.outputs import check_output, model_input

if TYPE_CHECKING:
    import numpy as np

    from celltrail.training.prompt_segmenter import TrainSequence

T = TypeVar("T")
#: ``--from``: the model a training run fine-tunes, shared by every ``train`` command.
FromModel = Annotated[str | None, typer.Option(
    "--from", help="Fine-tune this model (a shipped name from `celltrail models`, or a .pt "
                   "path) on your data instead of training from scratch.")]


@contextmanager
def training_sequences(data: list[Path], out: Path, load: Callable[[Path], T],
                       simulated: bool, frames: int = 20,
                       overwrite: bool = False) -> Iterator[list[T]]:
    """The training sequences read from ``data`` (after checking ``out`` overwrites none), with
    the simulated ones of ``frames`` frames (written to a temporary folder that lives as long
    as the block)."""
    import tempfile

    from celltrail.threads import use_torch_threads
    from celltrail.training.simulated import simulated_sequences

    use_torch_threads()  # the command line's --threads
    check_output(out, [p for folder in data for p in companions(folder)], suffixes=(".pt",),
                 overwrite=overwrite)
    with console.status("reading training data"):
        sequences = [load(folder) for folder in data]
    with tempfile.TemporaryDirectory() as tmp:
        if simulated:
            with console.status("simulating training sequences"):
                sequences += [load(p) for p in simulated_sequences(tmp, frames)]
        yield sequences


def given(**values: object) -> dict[str, object]:
    """The values that were given (not None): the others keep the library's defaults."""
    return {k: v for k, v in values.items() if v is not None}


def check_supervision(supervision: str) -> None:
    """Refuse a --supervision other than box or mask."""
    if supervision not in ("box", "mask"):
        raise InputError(None, f"--supervision must be box or mask, not {supervision!r}")


def starting_model(kind: str, start: str | None, resume: Path | None) -> Path | None:
    """The file of the model ``--from`` names (None without it); refused beside --resume."""
    from celltrail.models.zoo import model_path

    if start is not None and resume is not None:
        raise InputError(None, "--from and --resume: give one (--resume continues a run, "
                               "--from fine-tunes a finished model)")
    return None if start is None else model_path(kind, start)


def train_app() -> typer.Typer:
    """The ``celltrail train`` command group."""
    app = typer.Typer(help="Train celltrail's models on your own CTC-layout data.",
                      no_args_is_help=True)
    app.command("prompt-segmenter")(train_prompt_segmenter)
    app.command("embedtrack")(train_embedtrack)
    app.command("cap")(train_cap)
    app.command("cellboxify")(train_cellboxify)
    return app


@reports_errors
def train_prompt_segmenter(
    data: Annotated[list[Path], typer.Option(help="CTC image folder NN with NN_GT (SEG, TRA) "
                                                  "or NN_ST beside it; repeat for more.")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt); a checkpoint is saved "
                                           "there every 250 steps.")],
    steps: Annotated[int | None, typer.Option(min=1, help="Optimisation steps (default: "
                                                           "TrainParams.steps, 3000; with "
                                                           "--from FINE_TUNE_STEPS, 300).")]
    = None,
    simulated: Annotated[bool | None, typer.Option(help="Mix in simulated sequences of every "
                                                        "modality (default: on, off with "
                                                        "--from).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to continue from.")] = None,
    base: FromModel = None,
    frames: Annotated[int | None, typer.Option(min=1, help="Learn from the first N annotated "
                                                           "frames of each --data only.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    supervision: Annotated[str, typer.Option(help="mask: learn from the cells' masks; box: "
                                                  "from their boxes alone (CellBoxify's "
                                                  "losses).")] = "mask",
    overwrite: Overwrite = False,
) -> None:
    """Retrain BoxTrack's learned backend (use it with --model PATH); with --from, fine-tune a
    model and score it before and after on an annotated frame it did not learn from."""
    from celltrail.training.prompt_segmenter import (
        FINE_TUNE_LR,
        FINE_TUNE_STEPS,
        TrainParams,
        train,
    )

    check_supervision(supervision)
    start = starting_model("prompt_segmenter", base, resume)
    tuning = {} if start is None else {"steps": FINE_TUNE_STEPS, "lr": FINE_TUNE_LR}
    params = TrainParams(**(tuning | given(steps=steps)), seed=seed, supervision=supervision)
    chosen = {folder: _first_frames(folder, frames) for folder in data}
    with training_sequences(data, out, lambda folder: _load_frames(folder, chosen[folder]),
                            start is None if simulated is None else simulated,
                            overwrite=overwrite) as sequences, \
            progress_bar(params.steps, "training") as on_step:
        train(sequences, out, params, resume=start or resume,
              progress=lambda step, _: on_step(step))
    console.print(f"wrote {out}")
    if start is not None:
        _report_held_out(chosen, start, out, _prompted_seg, "SEG from its true boxes")


def _first_frames(folder: Path, frames: int | None) -> list[int] | None:
    """The first ``frames`` annotated frames of ``folder`` (None: all of them)."""
    from celltrail.io.ctc import annotated_frames

    if frames is None:
        return None
    found = annotated_frames(folder)
    if len(found) < frames:
        raise InputError(folder, f"--frames {frames}: only {len(found)} frames have masks")
    return found[:frames]


def _load_frames(folder: Path, frames: list[int] | None) -> TrainSequence:
    """The prompt segmenter's training data of ``folder``: the ``frames`` given, or all."""
    from celltrail.training.prompt_segmenter import load_sequence

    return load_sequence(folder, frames)


def _report_held_out(chosen: dict[Path, list[int] | None], before: Path, after: Path,
                     score: Callable[[Path, Path, np.ndarray, np.ndarray], float],
                     what: str) -> None:
    """Print, for each sequence, ``what`` (``score(model, folder, image, truth)``) on its last
    annotated frame not learnt from, with the starting model and the fine-tuned one."""
    from celltrail.core.sequence import open_sequence, read_tiff
    from celltrail.io.ctc import training_truth

    for folder, used in chosen.items():
        files = training_truth(folder)[1]
        left = [t for t in sorted(files) if used is not None and t not in used]
        if not left:
            console.print(f"{folder}: no annotated frame left out to score on (give --frames "
                          f"below {len(files)})")
            continue
        image, truth = open_sequence(folder)[left[-1]], read_tiff(files[left[-1]])
        seg = [score(model, folder, image, truth) for model in (before, after)]
        console.print(f"{folder}, held-out frame {left[-1]}: {what} {seg[0]:.3f} before "
                      f"({before.stem}), {seg[1]:.3f} after fine-tuning")
        if seg[1] < seg[0]:
            console.print(f"warning: fine-tuning made it worse on {folder}'s held-out frame: "
                          f"keep {before.stem}, or give more annotated frames")


def _prompted_seg(model: Path, folder: Path, image: np.ndarray, truth: np.ndarray) -> float:
    """SEG of the masks a prompt segmenter paints from the true cells' boxes."""
    from celltrail.methods.boxtrack.heldout import prompted_seg
    from celltrail.methods.boxtrack.learned import LearnedPromptSegmenter

    return prompted_seg(LearnedPromptSegmenter.load(model), image, truth)


@reports_errors
def train_embedtrack(
    data: Annotated[list[Path], typer.Option(help="CTC image folder NN with NN_GT (SEG, TRA) "
                                                  "and/or NN_ST beside it; repeat for more.")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt); a checkpoint is saved "
                                           "there every 100 steps.")],
    epochs: Annotated[float | None, typer.Option(min=0.01, help="Passes over the crops of the "
                                                                "training frames (default: "
                                                                "15, the paper's; with --from "
                                                                "FINE_TUNE_STEPS, 300 "
                                                                "steps).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Image pairs per step.")] = 2,
    simulated: Annotated[bool, typer.Option(help="Mix in simulated sequences of every "
                                                 "modality.")] = False,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to continue from.")] = None,
    base: FromModel = None,
    frames: Annotated[int | None, typer.Option(min=1, help="Learn from the masks of the first "
                                                           "N annotated frames of each --data "
                                                           "only.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Train an EmbedTrack model on the first 90% of frames (the rest validates); with --from,
    fine-tune a model and score it before and after on an annotated frame it did not learn
    from. Track with it by --method embedtrack --model PATH."""
    from celltrail.methods.embedtrack.heldout import held_out_seg
    from celltrail.training.embedtrack import (
        EPOCHS,
        TrainParams,
        fine_tune_params,
        load_sequence,
        steps_per_epoch,
        train,
    )

    start = starting_model("embedtrack", base, resume)
    chosen = {folder: _first_frames(folder, frames) for folder in data}
    with training_sequences(data, out, lambda folder: load_sequence(folder, chosen[folder]),
                            simulated, overwrite=overwrite) as sequences:
        per_epoch = steps_per_epoch(sequences, TrainParams(batch=batch))
        if start is None:
            steps = max(1, round((epochs or EPOCHS) * per_epoch))
            params = TrainParams(steps=steps, batch=batch, seed=seed)
        else:  # FINE_TUNE_STEPS unless --epochs is given
            steps = None if epochs is None else max(1, round(epochs * per_epoch))
            params = fine_tune_params(start, steps, batch, seed)
        diameters = {folder: seq.diameter for folder, seq in zip(data, sequences, strict=False)}
        with epoch_bar(params.steps, per_epoch) as on_step:
            train(sequences, out, params, resume=start or resume,
                  progress=lambda step, _: on_step(step))
    console.print(f"wrote {out}")
    if start is not None:
        _report_held_out(chosen, start, out, lambda model, folder, image, truth: held_out_seg(
            model, image, truth, diameters[folder]), "SEG")


@reports_errors
def train_cap(
    data: Annotated[list[Path], typer.Option(help="CTC image folder NN with NN_GT/TRA beside it "
                                                  "(tracking ground truth only); repeat for "
                                                  "more.")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt); a checkpoint is saved "
                                           "there every 100 steps.")],
    steps: Annotated[int | None, typer.Option(min=1, help="Optimisation steps (one window of "
                                                          "24 frames each) (default: "
                                                          "TrainParams.steps, 1200).")] = None,
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

    params = TrainParams(**given(steps=steps), seed=seed)
    with training_sequences(data, out, load_sequence, simulated, frames=40,
                            overwrite=overwrite) as sequences, \
            progress_bar(params.steps, "training") as on_step:
        train(sequences, out, params, resume=resume, progress=lambda step, _: on_step(step))
    console.print(f"wrote {out}")


def _cellboxify_start(supervision: str, head: str, guide: str, start: str | None,
                      resume: Path | None) -> Path | None:
    """Check CellBoxify's training choices; the model to start from (None: from scratch)."""
    from celltrail.models.cellboxify import HEADS
    from celltrail.training.cellboxify.losses import GUIDES

    check_supervision(supervision)
    if head not in HEADS:
        raise InputError(None, f"--head must be one of {', '.join(HEADS)}, not {head!r}")
    if guide not in GUIDES:
        raise InputError(None, f"--guide must be one of {', '.join(GUIDES)}, not {guide!r}")
    return starting_model("cellboxify", start, resume) or resume


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
    steps: Annotated[int | None, typer.Option(min=1, help="Optimisation steps (one image each) "
                                                          "(default: TrainParams.steps, "
                                                          "1600).")] = None,
    teacher: Annotated[str | None, typer.Option(help="box supervision: self-training, the "
                                                      "mask head learning the masks that this "
                                                      "box-only model (a file or a shipped "
                                                      "name) draws in the boxes.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Checkpoint to continue from, or a "
                                                     "model to fine-tune.")] = None,
    start: FromModel = None,
    held_out: Annotated[int, typer.Option(min=0, help="Annotated images (the last ones in the "
                                                      "JSON) kept out of training and scored "
                                                      "at the end, for the model you started "
                                                      "from and the new one; 0 trains on "
                                                      "all.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Train a CellBoxify instance segmenter (segment or track with it: --model PATH)."""
    from celltrail.models.cellboxify import CellBoxifyConfig
    from celltrail.training.cellboxify import (
        TrainParams,
        box_only_teacher,
        train,
        training_images,
    )
    from celltrail.training.cellboxify.held_out import held_out_ids

    begin = _cellboxify_start(supervision, head, guide, start, resume)
    check_output(out, (coco, images, model_input(teacher), begin), suffixes=(".pt",),
                 overwrite=overwrite)
    ids = held_out_ids(coco, held_out)
    drawer = None if teacher is None else box_only_teacher(teacher)
    with console.status("reading training images" + " and the teacher's masks" * bool(drawer)):
        found = training_images(coco, images, supervision, drawer, exclude=ids)
    params = TrainParams(**given(steps=steps), supervision=supervision, guide=guide,
                         teacher=teacher or "", seed=seed)
    with progress_bar(params.steps, "training") as on_step:
        train(found, out, params, resume=begin, progress=lambda step, _: on_step(step),
              config=CellBoxifyConfig(head=head), trained_on=[coco.name])
    console.print(f"wrote {out}")
    if ids:
        report_held_out(coco, images, ids, None if start is None else begin, out)


def report_held_out(coco: Path, images: Path, ids: list[int], start: Path | None,
                    out: Path) -> None:
    """Print the held-out images' AP for the model trained from (if any) and the new one."""
    from celltrail.training.cellboxify.held_out import held_out_ap

    with console.status(f"scoring the {len(ids)} held-out image(s)"):
        kind, after = held_out_ap(out, coco, images, ids)
        before = None if start is None else held_out_ap(start, coco, images, ids)[1]

    def value(ap: float | None) -> str:
        return "n/a" if ap is None else f"{ap:.3f}"

    change = "" if start is None else f"{value(before)} ({start.stem}) -> "
    console.print(f"held out {len(ids)} image(s) (ids {', '.join(map(str, ids))}): {kind} "
                  f"{change}{value(after)} ({out.name})")


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
