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


def tracks_table(masks: Iterable[np.ndarray], lineage: Lineage) -> pd.DataFrame:
    """The table of a tracking result; ``parent`` is the track's parent label (0 for none)."""
    parts = [frame_rows(mask, t) for t, mask in enumerate(masks)]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {c: pd.Series(dtype=np.int64) for c in TABLE_COLUMNS[:-1]}
    )
    parents = {label: track.parent for label, track in lineage.items()}
    table["parent"] = table["id"].map(parents).fillna(0).astype(np.int64)
    return table[TABLE_COLUMNS].sort_values(["frame", "id"], ignore_index=True)


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
