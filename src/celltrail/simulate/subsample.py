"""Temporal subsampling of a CTC sequence and its ground truth, for frame-interval studies
and for evaluating on a sequence's tail.

Frames ``start, start + step, start + 2*step, ...`` are kept and renumbered ``0, 1, 2, ...``.
The lineage is rebuilt from the kept TRA markers: tracks are re-timed, tracks seen in no kept
frame are dropped (their children then descend from the nearest kept ancestor), and a label
whose kept frames are not contiguous is split into runs, each later run a new track whose
parent is the run before (the CTC way of declaring a gap).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tifffile

from celltrail.core.errors import InputError
from celltrail.core.result import TrackingResult
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import (
    frame_digits,
    numbered_files,
    read_segmentation_gt,
    read_tracking_gt,
    write_man_track,
)


def subsample(
    seq_dir: str | Path,
    gt_dir: str | Path,
    out_dir: str | Path,
    step: int,
    sequence: str | None = None,
    start: int = 0,
    overwrite: bool = False,
) -> Path:
    """Keep every ``step``-th frame from ``start`` on of ``seq_dir`` (``tTTT.tif``) and
    ``gt_dir`` (``NN_GT``); ``start`` > 0 cuts a sequence's head (e.g. to evaluate on its tail).

    Writes ``out_dir/NN`` and ``out_dir/NN_GT`` (TRA with a consistent ``man_track.txt``, and the
    kept SEG frames, if any), where ``NN`` is ``sequence`` or the name of ``seq_dir``; folders of
    those names are replaced only when celltrail wrote them, or with ``overwrite``. Returns the
    new image folder.
    """
    if not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an integer >= 1, not {step!r}")
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an integer >= 0, not {start!r}")
    seq_dir, gt_dir, out_dir = Path(seq_dir), Path(gt_dir), Path(out_dir)
    name = sequence or seq_dir.name
    images = numbered_files(seq_dir, "t") if seq_dir.is_dir() else {}
    if not images:
        raise InputError(seq_dir, "no image files 'tTTT.tif'")
    truth = read_tracking_gt(gt_dir)
    n_frames = len(truth.masks)
    if sorted(images) != list(range(n_frames)):
        raise InputError(seq_dir, f"image frames do not match the {n_frames} ground-truth frames")
    for target in (out_dir / name, out_dir / f"{name}_GT"):
        if target.resolve() in (seq_dir.resolve(), gt_dir.resolve()):
            raise ValueError(f"{target} would overwrite the input; choose another out_dir")
    if start >= n_frames:
        raise ValueError(f"start {start} is past the last of {n_frames} frames")
    kept = range(start, n_frames, step)
    parents = {label: track.parent for label, track in truth.lineage.items()}
    kept_truth = TrackingResult.from_masks([np.asarray(truth.masks[t]) for t in kept], parents)
    seg = read_segmentation_gt(gt_dir) if (Path(gt_dir) / "SEG").is_dir() else {}
    digits = frame_digits(len(kept))
    with atomic_dir(out_dir / name, overwrite) as img_out, \
            atomic_dir(out_dir / f"{name}_GT", overwrite) as gt_out:
        (gt_out / "TRA").mkdir()
        for new, old in enumerate(kept):
            shutil.copyfile(images[old], img_out / f"t{new:0{digits}d}.tif")
            tifffile.imwrite(gt_out / "TRA" / f"man_track{new:0{digits}d}.tif",
                             kept_truth.masks[new], compression="zlib")
        write_man_track(kept_truth.lineage, gt_out / "TRA" / "man_track.txt")
        kept_seg = {(old - start) // step: path for old, path in seg.items() if old in kept}
        if kept_seg:  # no SEG folder when no kept frame has one (the evaluator needs a frame)
            (gt_out / "SEG").mkdir()
            for new, path in kept_seg.items():
                shutil.copyfile(path, gt_out / "SEG" / f"man_seg{new:0{digits}d}.tif")
    return out_dir / name
