"""napari writer: a Labels layer (T, Y, X) as a Cell Tracking Challenge result folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from celltrail.core.errors import InputError
from celltrail.core.result import TrackingResult
from celltrail.io.atomic import check_replaceable_dir
from celltrail.io.ctc import write_result
from celltrail.napari._reader import PARENTS_KEY


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write ``maskTTT.tif`` + ``res_track.txt`` into the folder ``path``; returns ``[path]``.

    Parents come from the layer metadata the reader or the tracking widget put there (none for
    other layers). Labels that vanish and come back become new tracks, as CTC requires. An
    existing folder is replaced only if celltrail wrote it, so no other data is lost.
    """
    out = Path(path)
    check_replaceable_dir(out)
    if data.ndim not in (2, 3):
        raise InputError(out, f"expected (T, Y, X) labels, found shape {tuple(data.shape)}")
    if np.dtype(data.dtype).kind not in "ui":
        raise InputError(out, f"labels must be integers, found {np.dtype(data.dtype)}")
    masks = [np.asarray(frame) for frame in (data[None] if data.ndim == 2 else data)]
    if any(mask.min(initial=0) < 0 for mask in masks):
        raise InputError(out, "labels must not be negative")
    metadata = meta.get("metadata") or {}
    parents = {int(k): int(v) for k, v in (metadata.get(PARENTS_KEY) or {}).items()}
    write_result(TrackingResult.from_masks(masks, parents), out)
    return [str(out)]
