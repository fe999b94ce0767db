"""Running a tracker into a result folder: what `celltrail track`, `celltrail batch` and the
demo share (checks, prompts, the files beside the masks)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from celltrail.core.errors import InputError
from celltrail.core.result import TrackingResult
from celltrail.core.sequence import ImageSequence
from celltrail.io.boxes import boxes_from_gt, read_boxes
from celltrail.io.ctc import write_man_track
from celltrail.io.mot import write_mot
from celltrail.io.tables import tracks_table, write_table
from celltrail.methods.base import Tracker
from celltrail.methods.boxtrack.config import ADAPT_BY_DEFAULT

#: BoxTrack's MOT-format output, named as in its reference code (Box-it-Track-it).
MOT_FILE = "tracking_results.txt"


def save_result(result: TrackingResult, out: Path, mot: bool = False,
                pixel_size: float | None = None, interval: float | None = None) -> None:
    """Check the result, then write the lineage and tracks tables beside its masks in ``out``
    (in µm and minutes too where ``pixel_size`` and ``interval`` are known); with ``mot`` also
    the tracks as MOT lines (:data:`MOT_FILE`)."""
    table = tracks_table(result.masks, result.lineage, pixel_size, interval)
    by_frame = table.groupby("frame")["id"].apply(list)
    result.validate(by_frame.get(t, []) for t in range(len(result.masks)))
    write_man_track(result.lineage, out / "res_track.txt")
    write_table(table, out / "tracks.csv")
    write_table(table, out / "tracks.parquet")
    if mot:
        write_mot(result, out / MOT_FILE)


def box_prompts(
    images: ImageSequence,
    frame_step: int,
    boxes: Path | None,
    gt: Path | None,
    frame_base: int,
) -> tuple[pd.DataFrame, str]:
    """BoxTrack's prompts from a box file or a ground-truth folder, in the frame numbers of
    ``images`` (every ``frame_step``-th input frame), and where they came from."""
    if (boxes is None) == (gt is None):
        raise InputError(None, "--method boxtrack needs its box prompts: give either --boxes "
                               "FILE or --boxes-from-gt GT_DIR")
    if boxes is not None:
        prompts = read_boxes(boxes, image_shape=images.shape, frame_base=frame_base)
        origin = str(boxes)
        if frame_base == 0 and int(prompts["frame"].min()) == 1:
            warnings.warn(f"{boxes}: the box prompts start on frame 1, none on frame 0: if the "
                          f"file counts frames from 1 (as MOT's bbox.txt does), give "
                          f"--box-frame-base 1", stacklevel=2)
    else:
        prompts, source = boxes_from_gt(gt)
        height, width = images.shape
        if ((prompts["x"] + prompts["w"]).max() > width
                or (prompts["y"] + prompts["h"]).max() > height):
            raise InputError(gt, f"ground-truth cells lie outside the {width}x{height} images")
        origin = f"{gt} ({source}, frame 0)"
    skipped = prompts[prompts["frame"] % frame_step != 0]
    if len(skipped):
        raise InputError(boxes, f"box prompts on frame {int(skipped['frame'].iloc[0])}, which "
                                f"--frame-step {frame_step} skips")
    prompts = prompts.assign(frame=prompts["frame"] // frame_step)
    prompts.attrs["source"] = boxes if boxes is not None else gt
    return prompts, origin


def boxtrack_tracker(
    prompts: pd.DataFrame,
    backend: str,
    preset: str,
    model: str | None,
    new_cells: bool | None,
    divisions: bool,
    adapt: bool = ADAPT_BY_DEFAULT,
    report: Callable[[str], None] | None = None,
) -> Tracker:
    """BoxTrack with the given segmentation backend (``auto``: chosen on the prompted frame,
    its check's table given to ``report``), the learned one adapted to the sequence with
    ``adapt``; boxes too small to prompt with are skipped with a warning."""
    from celltrail.methods import get_tracker
    from celltrail.methods.boxtrack import BoxTrackConfig, make_segmenter

    if model is not None and backend == "classical":
        raise InputError(None, "--model applies to the learned backend only")
    config = BoxTrackConfig(new_cells=new_cells, divisions=divisions)
    segmenter = make_segmenter(backend, preset=preset, model=model, adapt=adapt, report=report)
    return get_tracker("boxtrack", boxes=prompts, segmenter=segmenter, config=config)


def embedtrack_tracker(model: str | None, tta: bool) -> Tracker:
    """EmbedTrack with a shipped model (by the dataset it was trained on) or a checkpoint."""
    from celltrail.methods import get_tracker
    from celltrail.methods.embedtrack import shipped_models

    if model is None:
        names = ", ".join(shipped_models())
        raise InputError(None, f"--method embedtrack needs --model: a checkpoint path or a "
                               f"shipped model ({names})")
    return get_tracker("embedtrack", model=model, tta=tta)


def cap_tracker(model: str | None, queries_from_gt: Path | None, preset: str,
                diameter: float | None, new_cells: bool = True) -> Tracker:
    """CAP with a shipped model (by its training data; the default one when ``model`` is None)
    or a checkpoint; first-frame queries from a CTC ground truth or the classical detector,
    which also finds the cells that appear later (``new_cells``)."""
    from celltrail.methods import get_tracker

    options: dict[str, object] = {"queries_from_gt": queries_from_gt, "preset": preset,
                                  "diameter": diameter, "new_cells": new_cells}
    if model is not None:
        options["model"] = model
    return get_tracker("cap", **options)


def cellboxify_tracker(model: str | None, linker: str = "celltrail") -> Tracker:
    """CellBoxify's masks linked by ``linker``, with a shipped model or a checkpoint."""
    from celltrail.methods import get_tracker
    from celltrail.methods.cellboxify import SHIPPED

    if model is None:
        names = ", ".join(SHIPPED.names())
        raise InputError(None, f"--method cellboxify needs --model: a checkpoint path or a "
                               f"shipped model ({names})")
    return get_tracker("cellboxify", model=model, linker=linker)
