"""napari writers: a Labels layer (T, Y, X) as a Cell Tracking Challenge result folder, and a
Tracks layer as a GEFF graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from celltrail.core.errors import InputError
from celltrail.core.result import TrackingResult
from celltrail.io.atomic import check_replaceable_dir
from celltrail.io.ctc import write_result
from celltrail.io.geff import write_tracks_geff
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


def write_tracks(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a 2D Tracks layer (rows ``track id, frame, y, x``; its ``graph`` gives each track's
    parent) as a GEFF graph group at ``path``; returns ``[path]``. Merges (a track with several
    parents) are refused: a lineage has one parent per track."""
    out = Path(path)
    parents = {}
    for child, links in (meta.get("graph") or {}).items():
        links = list(np.atleast_1d(links))
        if len(links) > 1:
            raise InputError(out, f"track {child} has several parents {links} (tracks merge); "
                                  f"a lineage needs one")
        if links:
            parents[int(child)] = int(links[0])
    write_tracks_geff(np.asarray(data), parents, out)
    return [str(out)]
