"""Saving a tracking result as ``celltrail track`` does: the CTC result folder (masks and
``res_track.txt``), the tracks table beside it, and the method's extra outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from celltrail.core.result import MaskStore, TrackingResult
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import frame_digits, write_man_track
from celltrail.io.mot import write_mot
from celltrail.io.tables import tracks_table, write_table

#: BoxTrack's MOT-format output, named as in its reference code (Box-it-Track-it).
MOT_FILE = "tracking_results.txt"
#: The files written beside the masks, whatever the method.
RESULT_FILES = ("res_track.txt", "tracks.csv", "tracks.parquet")
#: Extra outputs a method may ask for (``Tracker.outputs``), by name: their file.
EXTRA_FILES = {"mot": MOT_FILE}


def write_tables(result: TrackingResult, folder: Path) -> None:
    """Check ``result``, then write its lineage, its tracks table and its extra outputs into
    ``folder`` (where its masks are, or will be)."""
    table = tracks_table(result.masks, result.lineage, result.pixel_size, result.interval)
    by_frame = table.groupby("frame")["id"].apply(list)
    result.validate(by_frame.get(t, []) for t in range(len(result.masks)))
    write_man_track(result.lineage, folder / "res_track.txt")
    write_table(table, folder / "tracks.csv")
    write_table(table, folder / "tracks.parquet")
    if "mot" in result.outputs:
        write_mot(result, folder / MOT_FILE)


def save_result(result: TrackingResult, folder: str | Path, overwrite: bool = False) -> Path:
    """Write ``result`` into ``folder`` atomically (all of it or nothing); an existing folder
    is replaced only when celltrail wrote it, or with ``overwrite``."""
    folder = Path(folder)
    with atomic_dir(folder, overwrite) as tmp:
        store = MaskStore(tmp, frame_digits(len(result.masks)), result.pixel_size,
                          result.interval)
        for mask in result.masks:
            store.append(mask)
        write_tables(dataclasses.replace(result, masks=store), tmp)
    return folder
