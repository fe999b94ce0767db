"""The tracks table: one row per cell per frame, for spreadsheets and dataframes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage
from celltrail.io.atomic import atomic_file

TABLE_COLUMNS = ["id", "frame", "y", "x", "area", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "parent"]
#: The columns of a batch's summary table (``celltrail batch --summary``).
SUMMARY_COLUMNS = ["input", "out", "status", "frames", "tracks", "seconds", "error"]


def frame_rows(mask: np.ndarray, frame: int) -> pd.DataFrame:
    """Rows of one labelled frame (``parent`` is filled in by :func:`tracks_table`)."""
    props = regionprops_table(mask, properties=("label", "centroid", "area", "bbox"))
    return pd.DataFrame({
        "id": props["label"].astype(np.int64),
        "frame": np.full(len(props["label"]), frame, dtype=np.int64),
        "y": props["centroid-0"],
        "x": props["centroid-1"],
        "area": props["area"].astype(np.int64),
        "bbox_x": props["bbox-1"].astype(np.int64),
        "bbox_y": props["bbox-0"].astype(np.int64),
        "bbox_w": (props["bbox-3"] - props["bbox-1"]).astype(np.int64),
        "bbox_h": (props["bbox-2"] - props["bbox-0"]).astype(np.int64),
    })


def tracks_table(masks: Iterable[np.ndarray], lineage: Lineage, pixel_size: float | None = None,
                 interval: float | None = None) -> pd.DataFrame:
    """The table of a tracking result; ``parent`` is the track's parent label (0 for none).

    With ``pixel_size`` (µm) it adds ``y_um``, ``x_um`` and ``area_um2``; with ``interval``
    (minutes between frames) ``t_min``; with both ``speed_um_per_min``, the distance from the
    cell's position in its track's previous row over the time between them (empty on a
    track's first row).
    """
    parts = [frame_rows(mask, t) for t, mask in enumerate(masks)]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {c: pd.Series(dtype=np.int64) for c in TABLE_COLUMNS[:-1]}
    )
    parents = {label: track.parent for label, track in lineage.items()}
    table["parent"] = table["id"].map(parents).fillna(0).astype(np.int64)
    table = table[TABLE_COLUMNS].sort_values(["frame", "id"], ignore_index=True)
    return with_units(table, pixel_size, interval)


def with_units(table: pd.DataFrame, pixel_size: float | None,
               interval: float | None) -> pd.DataFrame:
    """The tracks table with its physical columns added, as far as the scale is known (see
    :func:`tracks_table`); the units stand in the column names."""
    if pixel_size is not None:
        table["y_um"] = table["y"] * pixel_size
        table["x_um"] = table["x"] * pixel_size
        table["area_um2"] = table["area"] * pixel_size**2
    if interval is not None:
        table["t_min"] = table["frame"] * interval
    if pixel_size is not None and interval is not None:
        step = table.groupby("id")[["x_um", "y_um", "t_min"]].diff()
        table["speed_um_per_min"] = np.hypot(step["x_um"], step["y_um"]) / step["t_min"]
    return table


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV or Parquet (chosen by the suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(path, "table must be written as .csv or .parquet")
    with atomic_file(path) as tmp:
        if suffix == ".csv":
            table.to_csv(tmp, index=False, float_format="%.3f")
        else:
            table.to_parquet(tmp, index=False)
    return path
