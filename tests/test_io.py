"""Readers and writers: CTC layout, lineage files, box prompts, track tables, atomic output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from celltrail.core import InputError, Lineage, Track, TrackingResult
from celltrail.core.errors import OutputError
from celltrail.io.atomic import MARKER, atomic_dir, atomic_file
from celltrail.io.boxes import boxes_from_gt, drop_small_boxes, read_boxes
from celltrail.io.ctc import (
    gt_as_result,
    read_man_track,
    read_result,
    read_tracking_gt,
    write_man_track,
    write_result,
)
from celltrail.io.mot import read_mot, write_mot
from celltrail.io.tables import tracks_table, write_table
from tests.test_core import lineage_masks


def test_result_round_trip(tmp_path: Path) -> None:
    masks, lineage = lineage_masks()
    write_result(TrackingResult(masks, lineage), tmp_path / "01_RES")
    back = read_result(tmp_path / "01_RES")
    assert sorted(p.name for p in (tmp_path / "01_RES").iterdir()) == [
        ".celltrail", "mask000.tif", "mask001.tif", "mask002.tif", "mask003.tif", "res_track.txt"]
    np.testing.assert_array_equal(back.lineage.to_array(), lineage.to_array())
    for a, b in zip(back.masks, masks, strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.masks[0].dtype == np.uint16


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "half.tif").write_bytes(b"x")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_only_its_own_output(tmp_path: Path) -> None:
    """A folder celltrail wrote is replaced whole; a user's folder only with ``overwrite``."""
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "old.txt").write_text("old")
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("years")
    with pytest.raises(OutputError, match=r"holds 'thesis\.docx', which celltrail did not"), \
            atomic_dir(mine):
        pass
    assert (mine / "thesis.docx").read_text() == "years"
    with atomic_dir(mine, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in mine.iterdir()) == [MARKER, "new.txt"]


def test_atomic_dir_never_replaces_a_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(OutputError, match="exists and is not a folder"), \
            atomic_dir(notes, overwrite=True):
        pass
    assert notes.read_text() == "mine"


def test_leftovers_of_a_dead_run_are_removed(tmp_path: Path) -> None:
    """A killed run's temporary folder (its process gone) is removed by the next run on the
    same output; one of a live process, or of another host, is left alone."""
    ended = subprocess.Popen(["true"])
    ended.wait()  # its process id now names no process
    host = socket.gethostname().replace(".", "_")
    stale = tmp_path / f".out.{host}-{ended.pid}.abcd1234.tmp"
    live = tmp_path / f".out.{host}-{os.getpid()}.abcd1234.tmp"
    remote = tmp_path / ".out.elsewhere-1.abcd1234.tmp"
    for folder in (stale, live, remote):
        folder.mkdir()
        (folder / "mask000.tif").write_bytes(b"partial")
    with pytest.warns(UserWarning, match="left by an interrupted run"), \
            atomic_dir(tmp_path / "out") as tmp:
        (tmp / "x").write_text("x")
    assert not stale.exists() and live.exists() and remote.exists()


def test_atomic_outputs_have_usual_permissions(tmp_path: Path) -> None:
    """Temporary paths are private to their owner; the finished outputs are not."""
    with atomic_file(tmp_path / "a.txt") as tmp:
        tmp.write_text("a")
    with atomic_dir(tmp_path / "res") as tmp:
        (tmp / "b.txt").write_text("b")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "res").stat().st_mode & 0o777 == 0o777 & ~umask


def test_sample_ground_truth(sample: Path) -> None:
    truth = read_tracking_gt(sample / "01_GT")
    assert len(truth.masks) == 40
    assert truth.errors() == []
    assert truth.lineage.divisions() == {16: [18, 22]}
    assert gt_as_result(sample / "01_GT").errors() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 0 3\n", "line 1: expected 4 integers 'L B E P', found '1 0 3'"),
        ("1 0 3 0\n2 a 4 1\n", "line 2: expected 4 integers 'L B E P'"),
        ("1 0 3 0\n1 4 5 0\n", "label 1 appears twice in the lineage"),
        ("1 0 3 0\n2 3 5 1\n", "label 2 begins at frame 3 but its parent 1 ends at frame 3"),
        ("1 4 3 0\n", "label 1: begin 4 and end 3 are not ordered"),
    ],
)
def test_malformed_man_track(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "man_track.txt"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_man_track(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_man_track_round_trip(tmp_path: Path) -> None:
    lineage = Lineage([Track(3, 0, 4), Track(7, 5, 9, 3)])
    write_man_track(lineage, tmp_path / "res_track.txt")
    assert (tmp_path / "res_track.txt").read_text() == "3 0 4 0\n7 5 9 3\n"
    assert read_man_track(tmp_path / "res_track.txt").to_array().tolist() == [
        [3, 0, 4, 0], [7, 5, 9, 3]]


def test_missing_mask_frame_is_named(tmp_path: Path) -> None:
    masks, lineage = lineage_masks()
    write_result(TrackingResult(masks, lineage), tmp_path / "res")
    (tmp_path / "res" / "mask001.tif").unlink()
    with pytest.raises(InputError, match=r"result mask frame 1 \('mask001.tif'\) is missing"):
        read_result(tmp_path / "res")


def test_boxes_csv_with_header_and_mot_frames(tmp_path: Path) -> None:
    path = tmp_path / "bbox.txt"
    path.write_text("frame,id,x,y,w,h,conf\n1,7,10,20,30,40,1\n1,2,0,0,5,5,1\n")
    boxes = read_boxes(path, image_shape=(100, 100), frame_base=1)
    assert boxes.to_dict("list") == {"frame": [0, 0], "id": [2, 7], "x": [0.0, 10.0],
                                     "y": [0.0, 20.0], "w": [5.0, 30.0], "h": [5.0, 40.0]}


def test_boxes_coco(tmp_path: Path) -> None:
    coco = {"images": [{"id": 5, "file_name": "t000.tif", "width": 64, "height": 48}],
            "annotations": [{"id": 1, "image_id": 5, "bbox": [1, 2, 3, 4], "category_id": 1},
                            {"id": 2, "image_id": 5, "bbox": [10, 2, 3, 4], "track_id": 9}]}
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(coco))
    boxes = read_boxes(path, image_shape=(48, 64))
    assert boxes[["frame", "id", "x"]].values.tolist() == [[0, 1, 1.0], [0, 9, 10.0]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,1,10,10\n", "line 1: expected 'frame,id,x,y,w,h', found '0,1,10,10'"),
        ("0,1,90,10,20,20\n", "line 1: box of id 1 in frame 0 (x=90 y=10 w=20 h=20) lies outside "
                              "the 100x50 image"),
        ("0,1,10,10,0,5\n", "line 1: box of id 1 in frame 0 (x=10 y=10 w=0 h=5) has no area"),
        ("0,1,1,1,5,5\n0,1,2,2,5,5\n", "id 1 has two boxes in frame 0"),
        ("", "no boxes in file"),
    ],
)
def test_bad_boxes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bbox.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_boxes(path, image_shape=(50, 100))
    assert str(err.value) == f"{path}: {message}"


def test_malformed_coco(tmp_path: Path) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"images": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1}]}))
    with pytest.raises(InputError, match=r"annotation 1: 'bbox' must be \[x, y, w, h\]"):
        read_boxes(path)


def test_tracks_table_csv_and_parquet(tmp_path: Path) -> None:
    masks, lineage = lineage_masks()
    table = tracks_table(masks, lineage)
    assert table[["id", "frame", "area", "parent"]].values.tolist() == [
        [1, 0, 4, 0], [1, 1, 4, 0], [2, 2, 4, 1], [3, 2, 4, 1], [2, 3, 4, 1], [3, 3, 4, 1]]
    row = table.iloc[0]
    assert (row.y, row.x, row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h) == (2.5, 2.5, 2, 2, 2, 2)
    write_table(table, tmp_path / "tracks.csv")
    write_table(table, tmp_path / "tracks.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "tracks.parquet"), table)
    assert pd.read_csv(tmp_path / "tracks.csv")["id"].tolist() == table["id"].tolist()


def _labels(*regions: tuple[int, slice, slice]) -> np.ndarray:
    """A 20x30 label image with ``label`` painted over each ``(label, rows, cols)``."""
    image = np.zeros((20, 30), np.uint16)
    for label, rows, cols in regions:
        image[rows, cols] = label
    return image


def _ctc_truth(root: Path, seg: np.ndarray | None = None, st: np.ndarray | None = None) -> Path:
    """``01_GT`` with TRA markers 3 and 8 in frames 0-1, and optionally frame 0 of ``01_GT/SEG``
    and ``01_ST/SEG``."""
    markers = _labels((3, slice(5, 7), slice(5, 7)), (8, slice(12, 14), slice(20, 22)))
    for folder, name, image in [("01_GT/TRA", "man_track000", markers),
                                ("01_GT/TRA", "man_track001", markers),
                                ("01_GT/SEG", "man_seg000", seg), ("01_ST/SEG", "man_seg000", st)]:
        if image is not None:
            (root / folder).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / folder / f"{name}.tif", image)
    return root / "01_GT"


# Cells 1 and 2 hold markers 3 and 8; cell 5 holds none and is no tracked cell.
SEG = _labels((1, slice(3, 9), slice(2, 10)), (2, slice(10, 16), slice(18, 25)),
              (5, slice(0, 2), slice(27, 30)))
# Silver truth of cell 3 only: cell 8 keeps its marker's box.
ST = _labels((7, slice(4, 8), slice(4, 8)))
SEG_BOXES = [[0, 3, 2, 3, 8, 6], [0, 8, 18, 10, 7, 6]]
ST_BOXES = [[0, 3, 4, 4, 4, 4], [0, 8, 20, 12, 2, 2]]
TRA_BOXES = [[0, 3, 5, 5, 2, 2], [0, 8, 20, 12, 2, 2]]


@pytest.mark.parametrize(
    ("seg", "st", "frame", "source", "expected"),
    [
        (SEG, ST, 0, "SEG", SEG_BOXES),
        (None, ST, 0, "ST", ST_BOXES),
        (np.zeros_like(SEG), ST, 0, "ST", ST_BOXES),  # an empty SEG file segments nothing
        (None, None, 0, "TRA", TRA_BOXES),
        (SEG, ST, 1, "TRA", [[1, *box[1:]] for box in TRA_BOXES]),  # no SEG or ST for frame 1
    ],
)
def test_boxes_from_gt(
    tmp_path: Path, seg: np.ndarray | None, st: np.ndarray | None, frame: int, source: str,
    expected: list[list[int]],
) -> None:
    boxes, used = boxes_from_gt(_ctc_truth(tmp_path, seg, st), frame)
    assert used == source
    assert list(boxes.columns) == ["frame", "id", "x", "y", "w", "h"]
    assert boxes.values.tolist() == expected


def test_boxes_from_sample_gt(sample: Path) -> None:
    boxes, source = boxes_from_gt(sample / "01_GT")  # frame 0 has no SEG: the TRA markers
    assert source == "TRA"
    assert boxes["id"].tolist() == [5, 6, 16, 24, 25, 26, 27, 30, 31, 32]
    assert boxes.iloc[0].tolist() == [0, 5, 182, 33, 45, 45]
    boxes, source = boxes_from_gt(sample / "01_GT", frame=21)  # SEG regions, TRA labels
    assert source == "SEG"
    assert boxes["id"].tolist() == [5, 6, 18, 22, 24, 25, 26, 27, 30, 31, 32]
    by_id = boxes.set_index("id")
    assert by_id.loc[5].tolist() == [21, 170, 7, 70, 65]
    assert by_id.loc[18].tolist() == [21, 260, 178, 30, 38]
    kept, dropped = drop_small_boxes(boxes, min_side=15)
    assert dropped == [32]
    assert kept["id"].tolist() == [5, 6, 18, 22, 24, 25, 26, 27, 30, 31]


def test_boxes_from_gt_errors(tmp_path: Path) -> None:
    gt = _ctc_truth(tmp_path)
    with pytest.raises(InputError) as err:
        boxes_from_gt(gt, frame=5)
    assert str(err.value) == f"{gt / 'TRA'}: no TRA markers of frame 5 (frames 0-1)"
    with pytest.raises(InputError) as err:
        boxes_from_gt(tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: no TRA folder: expected a CTC ground-truth folder 'NN_GT'")


def _mot_result() -> TrackingResult:
    """Cell 1 in frames 0-1 (moving), cell 2 a single pixel in frame 0."""
    first = _labels((1, slice(1, 3), slice(2, 5)), (2, slice(4, 5), slice(6, 7)))
    second = _labels((1, slice(2, 4), slice(3, 6)))
    return TrackingResult.from_masks([first, second], {})


def test_write_mot_lines(tmp_path: Path) -> None:
    path = write_mot(_mot_result(), tmp_path / "tracks.txt")
    assert path.read_text() == (
        "1,1,2,1,3,2,1.0000,-1,-1,-1\n2,1,3,2,3,2,1.0000,-1,-1,-1\n1,2,6,4,1,1,1.0000,-1,-1,-1\n")
    assert [p.name for p in tmp_path.iterdir()] == ["tracks.txt"]


def test_mot_round_trip(tmp_path: Path) -> None:
    result = _mot_result()
    for base in (0, 1):
        boxes = read_mot(write_mot(result, tmp_path / "tracks.txt", base), frame_base=base)
        assert boxes.values.tolist() == [[0, 1, 2, 1, 3, 2], [0, 2, 6, 4, 1, 1],
                                         [1, 1, 3, 2, 3, 2]]
        assert boxes.dtypes.tolist() == [np.int64, np.int64] + [np.float64] * 4
    empty = TrackingResult.from_masks([np.zeros((4, 4), np.uint16)], {})
    assert read_mot(write_mot(empty, tmp_path / "empty.txt")).empty


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,1,2,1,3,2,1,-1,-1,-1\n1,2,3,4,5\n",
         "line 2: expected 'frame,id,x,y,w,h,...' with integer frame and id, found '1,2,3,4,5'"),
        ("1,1.5,2,1,3,2\n", "line 1: expected 'frame,id,x,y,w,h,...' with integer frame and id, "
                             "found '1,1.5,2,1,3,2'"),
        ("0,1,2,1,3,2\n", "line 1: frame 0 is before the first frame 1"),
        ("1,1,2,1,-3,2\n",
         "line 1: box x,y,w,h must be finite with w, h >= 0, found '1,1,2,1,-3,2'"),
        ("1,1,2,1,3,2\n\n1,1,5,5,3,2\n",
         "line 3: id 1 has a second box in frame 1 (first on line 1)"),
    ],
)
def test_malformed_mot(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tracks.txt"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_mot(path)
    assert str(err.value) == f"{path}: {message}"
