"""Box prompts: one box per cell, from a CSV/``bbox.txt`` table, a COCO JSON file or the CTC
ground truth of a frame.

Boxes are ``x, y, w, h`` in pixels (x = column of the left edge, y = row of the top edge), with
a frame number (0-based, as CTC frames; MOT-style 1-based files use ``frame_base=1``) and a cell id.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from celltrail.core.errors import InputError
from celltrail.core.sequence import read_tiff
from celltrail.io.ctc import numbered_files, relabel_by_markers
from celltrail.io.tables import frame_rows

BOX_COLUMNS = ["frame", "id", "x", "y", "w", "h"]
#: The largest box id: ids become track labels, which the CTC's mask files hold as integers.
MAX_ID = 2**31 - 1
#: The largest frame number a box may name.
MAX_FRAME = 10**9


def read_boxes(
    path: str | Path,
    image_shape: tuple[int, int] | None = None,
    frame_base: int = 0,
) -> pd.DataFrame:
    """Read box prompts as a table with columns ``frame, id, x, y, w, h``.

    ``.json`` files are read as COCO; anything else as comma- or whitespace-separated rows
    ``frame,id,x,y,w,h[,...]`` with an optional header line. With ``image_shape`` (rows, cols)
    each box must lie inside the image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "box file not found")
    boxes = _read_coco(path) if path.suffix.lower() == ".json" else _read_table(path)
    boxes["frame"] -= frame_base
    _check_boxes(boxes, path, image_shape)
    boxes = boxes.drop(columns="line")
    return boxes.sort_values(["frame", "id"], kind="stable").reset_index(drop=True)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read box file ({exc})") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields or (number == 1 and not _is_number(fields[0])):
            continue  # blank line or header
        if len(fields) < 6 or not all(_is_number(f) for f in fields[:6]):
            raise InputError(path, f"line {number}: expected 'frame,id,x,y,w,h', found {line!r}")
        rows.append([*(float(f) for f in fields[:6]), number])
    if not rows:
        raise InputError(path, "no boxes in file")
    boxes = pd.DataFrame(rows, columns=[*BOX_COLUMNS, "line"])
    return _integer_ids(boxes, path)


def _integer_ids(boxes: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Refuse a box with a value that is not a finite number, or a frame or id that is not an
    integer in range (an id becomes a track label: 1 to :data:`MAX_ID`); make both ints."""
    finite = np.isfinite(boxes[BOX_COLUMNS].to_numpy(dtype=float)).all(axis=1)
    for column, least, most in (("frame", 0, MAX_FRAME), ("id", 1, MAX_ID)):
        values = boxes[column].to_numpy(dtype=float)
        good = finite & (values == np.round(values)) & (values >= least) & (values <= most)
        if not good.all():
            row = boxes[~good].iloc[0]
            where = f"line {int(row['line'])}: " if row["line"] is not None else ""
            problem = ("values must be finite numbers" if not finite[~good][0] else
                       f"{column} must be an integer from {least} to {most}, found "
                       f"{row[column]:g}" + (" (ids become track labels)" * (column == "id")))
            raise InputError(path, where + problem)
    return boxes.astype({"frame": int, "id": int})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_coco(path: Path) -> pd.DataFrame:
    """COCO detection JSON: frames are images in id order (or their ``frame_id``); a cell's id is
    the annotation's ``track_id`` or ``instance_id`` where present, else its ``id``."""
    try:
        coco = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable COCO JSON file ({exc})") from exc
    images = _coco_list(coco, "images", path)
    if not all(isinstance(im, dict) and "id" in im for im in images):
        raise InputError(path, "malformed COCO JSON: every image needs an 'id'")
    frame_of = _coco_frames(images, path)
    rows = []
    for number, ann in enumerate(_coco_list(coco, "annotations", path), start=1):
        bbox = ann.get("bbox") if isinstance(ann, dict) else None
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(
                isinstance(v, (int, float)) for v in bbox):
            raise InputError(path, f"annotation {number}: 'bbox' must be [x, y, w, h]")
        if ann.get("image_id") not in frame_of:
            raise InputError(path, f"annotation {number}: image_id {ann.get('image_id')!r} "
                                   f"is not the id of an image in 'images'")
        cell = ann.get("track_id", ann.get("instance_id", ann.get("id", number)))
        if not isinstance(cell, (int, float)):
            raise InputError(path, f"annotation {number}: its id must be a number, found "
                                   f"{cell!r}")
        rows.append([frame_of[ann["image_id"]], cell, *(float(v) for v in bbox), None])
    if not rows:
        raise InputError(path, "no boxes in file")
    return _integer_ids(pd.DataFrame(rows, columns=[*BOX_COLUMNS, "line"]), path)


def _coco_list(coco: object, key: str, path: Path) -> list:
    """``coco[key]``, which must be a list (COCO's ``images`` and ``annotations``)."""
    if not isinstance(coco, dict) or not isinstance(coco.get(key), list):
        raise InputError(path, f"malformed COCO JSON: no list of {key!r}")
    return coco[key]


def _coco_frames(images: list[dict], path: Path) -> dict[object, int]:
    """Each image id's frame: its ``frame_id`` if the images have them, else its rank by id."""
    if any("frame_id" in im for im in images):
        if not all(isinstance(im.get("frame_id"), int) for im in images):
            raise InputError(path, "malformed COCO JSON: some images have no integer "
                                   "'frame_id'")
        return {im["id"]: im["frame_id"] for im in images}
    try:
        ordered = sorted(images, key=lambda im: im["id"])
    except TypeError as exc:
        raise InputError(path, "malformed COCO JSON: image ids of mixed types") from exc
    return {im["id"]: i for i, im in enumerate(ordered)}


def _check_boxes(boxes: pd.DataFrame, path: Path, shape: tuple[int, int] | None) -> None:
    for row in boxes.itertuples():
        where = f"line {row.line}: " if row.line is not None else ""
        what = f"box of id {row.id} in frame {row.frame} (x={row.x:g} y={row.y:g} " \
               f"w={row.w:g} h={row.h:g})"
        if row.frame < 0:
            raise InputError(path, f"{where}negative frame number {row.frame}")
        if row.w <= 0 or row.h <= 0:
            raise InputError(path, f"{where}{what} has no area")
        if shape is not None and (
            row.x < 0 or row.y < 0 or row.x + row.w > shape[1] or row.y + row.h > shape[0]
        ):
            raise InputError(
                path, f"{where}{what} lies outside the {shape[1]}x{shape[0]} image"
            )
    dup = boxes.duplicated(["frame", "id"])
    if dup.any():
        row = boxes[dup].iloc[0]
        raise InputError(path, f"id {int(row['id'])} has two boxes in frame {int(row['frame'])}")


def boxes_from_gt(gt_dir: str | Path, frame: int = 0) -> tuple[pd.DataFrame, str]:
    """Boxes of the ground-truth cells of one frame, as :func:`read_boxes` gives them, and their
    source: ``"SEG"`` (``NN_GT/SEG``), ``"ST"`` (silver truth ``NN_ST/SEG``) or ``"TRA"`` (the
    markers, often smaller than the cells), whichever comes first with cells in that frame.

    Ids are TRA labels: a segmented region takes the label of the marker it overlaps, and a cell
    the segmentation misses keeps its marker's box, so every tracked cell gets one box.
    """
    gt_dir = Path(gt_dir)
    tra = gt_dir / "TRA"
    if not tra.is_dir():
        raise InputError(gt_dir, "no TRA folder: expected a CTC ground-truth folder 'NN_GT'")
    marker_files = numbered_files(tra, "man_track")
    if frame not in marker_files:
        if not marker_files:
            raise InputError(tra, "no TRA marker files 'man_trackTTT.tif'")
        raise InputError(
            tra, f"no TRA markers of frame {frame} (frames {min(marker_files)}-{max(marker_files)})"
        )
    markers = read_tiff(marker_files[frame])
    segmentations = [("SEG", gt_dir / "SEG")]
    full = gt_dir.resolve()
    if full.name.endswith("_GT"):
        segmentations.append(("ST", full.with_name(f"{full.name[:-3]}_ST") / "SEG"))
    mask, source = markers, "TRA"
    for name, seg_dir in segmentations:
        seg_path = numbered_files(seg_dir, "man_seg").get(frame)
        if seg_path is None:
            continue
        seg = read_tiff(seg_path)
        if seg.shape != markers.shape:
            raise InputError(
                seg_path, f"shape {seg.shape} differs from the TRA markers' {markers.shape}"
            )
        if ((seg > 0) & (markers > 0)).any():  # an empty or unmatched file segments nothing
            mask, source = relabel_by_markers(seg, markers), name
            break
    return mask_boxes(mask, frame), source


def mask_boxes(mask: np.ndarray, frame: int = 0) -> pd.DataFrame:
    """The box of each cell of label image ``mask`` (id = label), as :func:`read_boxes` gives
    them."""
    rows = frame_rows(mask, frame)
    boxes = pd.DataFrame({
        "frame": rows["frame"], "id": rows["id"],
        "x": rows["bbox_x"].astype(float), "y": rows["bbox_y"].astype(float),
        "w": rows["bbox_w"].astype(float), "h": rows["bbox_h"].astype(float),
    })
    return boxes.sort_values("id", ignore_index=True)


def drop_small_boxes(boxes: pd.DataFrame, min_side: float) -> tuple[pd.DataFrame, list[int]]:
    """Remove boxes with a side shorter than ``min_side`` pixels (slivers of cells at the image
    edge make poor prompts); returns the boxes kept and the ids removed, for the caller to report.
    """
    small = boxes[["w", "h"]].min(axis=1) < min_side
    dropped = sorted({int(label) for label in boxes.loc[small, "id"]})
    return boxes[~small].reset_index(drop=True), dropped
