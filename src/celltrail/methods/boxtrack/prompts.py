"""BoxTrack's prompts: one box per cell, from a box file, a CTC ground truth or a table."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pandas as pd

from celltrail.core.errors import InputError, OptionError
from celltrail.core.sequence import ImageSequence
from celltrail.io.boxes import BOX_COLUMNS, boxes_from_gt, drop_small_boxes, read_boxes

LOG = logging.getLogger("celltrail")
#: Marks a prompt table :func:`read_prompts` made (in the sequence's frame numbers).
READ = "celltrail_prompts"


def read_prompts(source: object, images: ImageSequence, frame_base: int = 0,
                 min_side: float = 5.0) -> pd.DataFrame:
    """The box prompts of ``source`` in the frame numbers of ``images``: a box file (CSV,
    ``bbox.txt`` or COCO JSON, frames counted from ``frame_base``), a CTC ground-truth folder
    (the boxes of frame 0's cells) or a table with columns ``frame, id, x, y, w, h``. When
    ``images`` holds every k-th frame of a sequence (``images.every(k)``), prompt frames are
    of the full sequence. Boxes with a side below ``min_side`` are skipped with a warning.
    A table this function returned is taken as it is (its frames are the sequence's)."""
    if isinstance(source, pd.DataFrame) and source.attrs.get(READ):
        return source
    prompts, where = _read(source, images, frame_base)
    step = int(getattr(images, "step", 1))
    skipped = prompts[prompts["frame"] % step != 0]
    if len(skipped):
        raise InputError(where, f"box prompts on frame {int(skipped['frame'].iloc[0])}, which "
                                f"a frame step of {step} skips")
    prompts = prompts.assign(frame=prompts["frame"] // step)
    last = int(prompts["frame"].max()) if len(prompts) else 0
    if last >= len(images):
        raise InputError(where, f"box prompts on frame {last}, but the sequence {images.name} "
                                f"has {len(images)} frames (frames count from 0; "
                                f"box_frame_base=1 if the file counts from 1)")
    prompts, dropped = drop_small_boxes(prompts, min_side)
    if dropped:
        warnings.warn(f"skipped {len(dropped)} boxes with a side below {min_side:g} px (ids "
                      f"{dropped[:10]})", stacklevel=2)
    if prompts.empty:
        raise InputError(where, f"no box prompts left to track: all {len(dropped)} boxes have "
                                f"a side below {min_side:g} px")
    prompts.attrs.update(source=where, **{READ: True})
    LOG.info(f"prompts: {len(prompts)} boxes from {where or 'a table'}")
    return prompts


def _read(source: object, images: ImageSequence,
          frame_base: int) -> tuple[pd.DataFrame, Path | None]:
    """The prompt table as given, and the file it came from (for messages)."""
    if isinstance(source, pd.DataFrame):
        missing = [c for c in BOX_COLUMNS if c not in source.columns]
        if missing:
            raise OptionError("prompts", f"a box table needs the columns "
                                         f"{', '.join(BOX_COLUMNS)}; missing {missing}")
        return source[list(BOX_COLUMNS)].copy(), source.attrs.get("source")
    if not isinstance(source, str | Path):
        raise OptionError("prompts", f"boxtrack takes a box file, a CTC ground-truth folder or "
                                     f"a table of boxes, not {type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        prompts, _ = boxes_from_gt(path)
        height, width = images.shape
        if ((prompts["x"] + prompts["w"]).max() > width
                or (prompts["y"] + prompts["h"]).max() > height):
            raise InputError(path, f"ground-truth cells lie outside the {width}x{height} images")
        return prompts, path
    prompts = read_boxes(path, image_shape=images.shape, frame_base=frame_base)
    if frame_base == 0 and int(prompts["frame"].min()) == 1:
        warnings.warn(f"{path}: the box prompts start on frame 1, none on frame 0: if the "
                      f"file counts frames from 1 (as MOT's bbox.txt does), set "
                      f"box_frame_base=1 (--box-frame-base 1)", stacklevel=3)
    return prompts, path
