"""MOT-challenge text files, the track format of the BoxTrack reference code.

One line per cell per frame, ``frame,id,x,y,w,h,conf,-1,-1,-1``, with 1-based frames, lines in
the reference's order (by id, then frame), and ``x, y, w, h`` the cell's bounding box in pixels
(x = left column, y = top row, w and h the extent, as in :mod:`celltrail.io.boxes`; the
reference writes one pixel less, the last column minus the first).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from skimage.measure import regionprops

from celltrail.core.errors import InputError
from celltrail.core.result import TrackingResult
from celltrail.io.atomic import atomic_file
from celltrail.io.boxes import BOX_COLUMNS


def write_mot(result: TrackingResult, path: str | Path, frame_base: int = 1) -> Path:
    """Write the bounding box of every labelled cell in every frame as MOT lines, atomically.

    Ids are track labels; the confidence is 1 (masks carry none).
    """
    rows = []
    for t, mask in enumerate(result.masks):
        for region in regionprops(mask):
            top, left, bottom, right = region.bbox
            rows.append((region.label, t + frame_base, left, top, right - left, bottom - top))
    rows.sort()
    with atomic_file(path) as tmp:
        tmp.write_text(
            "".join(f"{t},{i},{x},{y},{w},{h},1.0000,-1,-1,-1\n" for i, t, x, y, w, h in rows)
        )
    return Path(path)


def read_mot(path: str | Path, frame_base: int = 1) -> pd.DataFrame:
    """Read MOT lines as a box table (``frame, id, x, y, w, h``; frames 0-based), sorted by
    frame and id. Fields after the sixth (confidence, 3D position) are ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "MOT file not found")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read MOT file ({exc})") from exc
    rows = []
    seen: dict[tuple[int, int], int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            frame, cell = int(fields[0]), int(fields[1])
            x, y, w, h = (float(f) for f in fields[2:6])
        except (IndexError, ValueError):
            raise InputError(
                path, f"line {number}: expected 'frame,id,x,y,w,h,...' with integer frame and "
                      f"id, found {line!r}"
            ) from None
        if frame < frame_base:
            raise InputError(path, f"line {number}: frame {frame} is before the first frame "
                                   f"{frame_base}")
        if not all(map(math.isfinite, (x, y, w, h))) or w < 0 or h < 0:
            raise InputError(path, f"line {number}: box x,y,w,h must be finite with w, h >= 0, "
                                   f"found {line!r}")
        if (frame, cell) in seen:
            raise InputError(
                path, f"line {number}: id {cell} has a second box in frame {frame} "
                      f"(first on line {seen[frame, cell]})"
            )
        seen[frame, cell] = number
        rows.append((frame - frame_base, cell, x, y, w, h))
    boxes = pd.DataFrame(rows, columns=BOX_COLUMNS).astype(
        {"frame": int, "id": int, "x": float, "y": float, "w": float, "h": float}
    )
    return boxes.sort_values(["frame", "id"], ignore_index=True)
