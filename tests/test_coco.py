"""COCO datasets (LIVECell layout): CTC conversion, reading, result dicts, AP and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core import InputError
from celltrail.io.coco import (
    boxes_to_coco_results,
    ctc_to_coco,
    masks_to_coco_results,
    pairs_to_coco,
    read_coco,
)
from celltrail.metrics.coco import coco_ap, segmentation_scores
from tests.conftest import disc

SHAPE = (48, 64)
KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def cells(t: int = 0) -> np.ndarray:
    """A label image: a 10x10 square moving t pixels right (label 1), a 30x30 square (2), a
    disc (3) and an 8x8 square in the bottom-right corner (4)."""
    labels = np.zeros(SHAPE, np.uint16)
    labels[2:12, 3 + t : 13 + t] = 1
    labels[15:45, 20:50] = 2
    labels[disc(SHAPE, (30, 8), 5)] = 3
    labels[40:48, 56:64] = 4
    return labels


def ctc_folder(root: Path, masks: dict[int, np.ndarray], kind: str = "GT",
               frames: int = 3) -> Path:
    """A CTC sequence ``root/01`` of ``frames`` images with ``masks`` in ``01_<kind>/SEG``."""
    seq = root / "01"
    seq.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for t in range(frames):
        tifffile.imwrite(seq / f"t{t:03d}.tif", rng.integers(0, 255, SHAPE, dtype=np.uint8))
    seg = root / f"01_{kind}" / "SEG"
    seg.mkdir(parents=True)
    for t, labels in masks.items():
        tifffile.imwrite(seg / f"man_seg{t:03d}.tif", labels)
    return seq


def expected(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks (N, H, W) and boxes x0, y0, x1, y1 of the labels of a label image, by label."""
    masks = np.stack([labels == label for label in np.unique(labels) if label])
    boxes = []
    for mask in masks:
        rows, cols = np.nonzero(mask)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    return masks, np.array(boxes, np.float32)


def test_image_and_mask_pairs_round_trip(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    pairs = []
    for name, t in (("a", 0), ("b", 3)):
        tifffile.imwrite(images / f"{name}.tif", np.full(SHAPE, 7, np.uint8))
        tifffile.imwrite(masks / f"{name}.tif", cells(t))
        pairs.append((images / f"{name}.tif", masks / f"{name}.tif"))
    read = read_coco(pairs_to_coco(pairs, tmp_path / "pairs.json"), images)
    assert [(e.path.name, e.image_id) for e in read] == [("a.tif", 1), ("b.tif", 2)]
    for entry, t in zip(read, (0, 3), strict=True):
        masks_expected, boxes = expected(cells(t))
        np.testing.assert_array_equal(entry.masks, masks_expected)
        np.testing.assert_array_equal(entry.boxes, boxes)
    boxes_only = read_coco(pairs_to_coco(pairs, tmp_path / "b.json", boxes_only=True), images)
    assert boxes_only[0].rles is None
    with pytest.raises(InputError, match="share a folder"):
        pairs_to_coco([pairs[0], (masks / "a.tif", masks / "b.tif")], tmp_path / "c.json")


def test_round_trip(tmp_path: Path) -> None:
    seq = ctc_folder(tmp_path, {0: cells(0), 2: cells(2)})
    out = ctc_to_coco(seq, tmp_path / "coco.json")
    data = json.loads(out.read_text())
    assert [(im["id"], im["file_name"], im["frame_id"], im["width"], im["height"])
            for im in data["images"]] == [(1, "t000.tif", 0, 64, 48), (3, "t002.tif", 2, 64, 48)]
    assert data["categories"] == [{"id": 1, "name": "cell"}]
    assert [a["id"] for a in data["annotations"]] == list(range(1, 9))
    assert data["annotations"][1]["bbox"] == [20, 15, 30, 30]
    assert data["annotations"][1]["area"] == 900
    assert all(a["iscrowd"] == 0 and a["category_id"] == 1 for a in data["annotations"])
    images = read_coco(out, seq)
    assert [im.image_id for im in images] == [1, 3]
    for image, t in zip(images, (0, 2), strict=True):
        masks, boxes = expected(cells(t))
        assert image.masks.dtype == bool
        np.testing.assert_array_equal(image.masks, masks)
        np.testing.assert_array_equal(image.boxes, boxes)
        assert image.boxes.dtype == np.float32
        assert image.path == seq / f"t{t:03d}.tif"
        np.testing.assert_array_equal(image.load(), tifffile.imread(seq / f"t{t:03d}.tif"))


def test_frames_and_silver_truth(tmp_path: Path) -> None:
    seq = ctc_folder(tmp_path, {t: cells(t) for t in range(3)}, kind="ST")
    out = ctc_to_coco(seq, tmp_path / "st.json", truth="st", frames=range(1, 3))
    assert [im.image_id for im in read_coco(out, seq)] == [2, 3]
    with pytest.raises(InputError) as err:
        ctc_to_coco(seq, tmp_path / "gt.json")
    assert str(err.value) == f"{seq}: no segmentation truth (01_GT/SEG) beside the sequence"
    assert not (tmp_path / "gt.json").exists()


def test_box_only(tmp_path: Path) -> None:
    seq = ctc_folder(tmp_path, {1: cells(1)}, kind="ST")  # no GT: boxes from the silver truth
    out = ctc_to_coco(seq, tmp_path / "boxes.json", truth="boxes")
    data = json.loads(out.read_text())
    assert len(data["annotations"]) == 4
    assert not any("segmentation" in a for a in data["annotations"])
    (image,) = read_coco(out, seq)
    assert image.masks is None
    np.testing.assert_array_equal(image.boxes, expected(cells(1))[1])


def test_polygon_and_uncompressed_rle(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((20, 20), np.uint8))
    square = np.zeros((20, 20), bool)
    square[3:13, 2:12] = True
    flat = square.T.ravel()  # COCO runs go down the columns, starting with background
    changes = np.flatnonzero(np.diff(flat.astype(int))) + 1
    counts = np.diff(np.r_[0, changes, flat.size]).tolist()
    data = {"images": [{"id": 7, "file_name": "a.tif", "width": 20, "height": 20}],
            "annotations": [
                {"id": 1, "image_id": 7, "bbox": [2, 3, 10, 10],
                 "segmentation": [[2, 3, 12, 3, 12, 13, 2, 13]]},
                {"id": 2, "image_id": 7, "bbox": [2, 3, 10, 10],
                 "segmentation": {"size": [20, 20], "counts": counts}}]}
    (tmp_path / "a.json").write_text(json.dumps(data))
    (image,) = read_coco(tmp_path / "a.json", tmp_path)
    np.testing.assert_array_equal(image.masks, np.stack([square, square]))


def test_perfect_prediction(tmp_path: Path) -> None:
    seq = ctc_folder(tmp_path, {0: cells(0), 2: cells(2)})
    gt = ctc_to_coco(seq, tmp_path / "coco.json")
    scores = segmentation_scores(gt, {1: cells(0), 3: cells(2)})
    for iou_type in ("segm", "bbox"):
        assert scores[iou_type] == {"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "APs": 1.0, "APm": 1.0,
                                    "APl": None}


def two_cells(tmp_path: Path) -> Path:
    """A one-frame COCO dataset of a 10x10 cell (label 1, small) and a 30x30 one (2, medium)."""
    labels = np.zeros(SHAPE, np.uint16)
    labels[2:12, 3:13] = 1
    labels[15:45, 20:50] = 2
    return ctc_to_coco(ctc_folder(tmp_path, {0: labels}, frames=1), tmp_path / "two.json")


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_one_cell_missed(tmp_path: Path, iou_type: str) -> None:
    """Recall stops at 0.5 with precision 1: 51 of the 101 recall points score 1."""
    gt = two_cells(tmp_path)
    labels = cells(0) * np.isin(cells(0), [2])
    scores = coco_ap(gt, masks_to_coco_results(1, labels), iou_type)
    assert scores["AP"] == scores["AP50"] == scores["AP75"] == pytest.approx(51 / 101)


def test_area_ranges(tmp_path: Path) -> None:
    gt = two_cells(tmp_path)
    only_large = masks_to_coco_results(1, cells(0) * np.isin(cells(0), [2]))
    only_small = masks_to_coco_results(1, cells(0) * np.isin(cells(0), [1]))
    for iou_type in ("segm", "bbox"):
        scores = coco_ap(gt, only_large, iou_type)
        assert (scores["APs"], scores["APm"], scores["APl"]) == (0.0, pytest.approx(1.0), None)
        scores = coco_ap(gt, only_small, iou_type)
        assert (scores["APs"], scores["APm"], scores["APl"]) == (pytest.approx(1.0), 0.0, None)


def test_scores_rank_detections(tmp_path: Path) -> None:
    """A false positive scored above both cells: precision 2/3 at every recall."""
    gt = two_cells(tmp_path)
    boxes = np.array([[3, 2, 13, 12], [20, 15, 50, 45], [55, 0, 63, 8]], np.float32)
    results = boxes_to_coco_results(1, boxes, np.array([0.5, 0.5, 0.9]))
    assert coco_ap(gt, results, "bbox")["AP50"] == pytest.approx(2 / 3)
    no_box = masks_to_coco_results(1, cells(0), scores={1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6})
    assert [r["score"] for r in no_box] == [0.9, 0.8, 0.7, 0.6]
    assert coco_ap(gt, [], "segm")["AP"] == 0.0


def write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


IMAGE = {"id": 1, "file_name": "t000.tif", "width": 64, "height": 48}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "COCO file not found"),
        ("not json", "not a JSON file (Expecting value: line 1 column 1 (char 0))"),
        ({"images": []}, "missing key 'annotations'"),
        ({"images": [{"id": 1}], "annotations": []}, "images[0]: missing key 'file_name'"),
        ({"images": [IMAGE], "annotations": [{"id": 5, "image_id": 1, "bbox": [60, 0, 10, 10]}]},
         "annotation 5: bbox [60, 0, 10, 10] lies outside the 64x48 image 1"),
        ({"images": [IMAGE], "annotations": [{"id": 5, "image_id": 1, "bbox": [6, 0, 0, 10]}]},
         "annotation 5: bbox [6, 0, 0, 10] has non-positive size"),
        ({"images": [IMAGE], "annotations": [{"id": 5, "image_id": 2, "bbox": [6, 0, 1, 1]}]},
         "annotation 5: image_id 2 is not in 'images'"),
    ],
)
def test_bad_coco_file(tmp_path: Path, content: object, problem: str) -> None:
    path = tmp_path / "c.json"
    if content is not None:
        write(path, content)
    with pytest.raises(InputError) as err:
        read_coco(path, tmp_path)
    assert str(err.value) == f"{path}: {problem}"


def test_missing_image_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"images": [IMAGE], "annotations": []})
    with pytest.raises(InputError) as err:
        read_coco(path, tmp_path)
    assert str(err.value) == f"{tmp_path / 't000.tif'}: image file not found (listed in {path})"


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_cli(tmp_path: Path) -> None:
    seq = ctc_folder(tmp_path, {0: cells(0), 2: cells(2)})
    out = tmp_path / "coco.json"
    result = run("coco", seq, "--out", out, "--frames", "1:")
    assert result.exit_code == 0, result.output
    assert " ".join(result.stderr.split()) == f"wrote 1 images, 4 annotations to {out}"
    assert [im.image_id for im in read_coco(out, seq)] == [3]
    result = run("coco", seq, "--out", out, "--truth", "boxes", "--frames", ":2")
    assert " ".join(result.stderr.split()) == f"wrote 1 images, 4 annotations to {out}"
    assert read_coco(out, seq)[0].masks is None
    for args, problem in (
        (("--frames", "2"), "--frames must be A:B, a half-open range of frame numbers, "
                            "found '2'"),
        (("--frames", "5:9"), f"{tmp_path / '01_GT' / 'SEG'}: no 'man_segTTT.tif' files in the "
                              f"frames asked for"),
        (("--truth", "st"), f"{seq}: no segmentation truth (01_ST/SEG) beside the sequence"),
    ):
        result = run("coco", seq, "--out", tmp_path / "x.json", *args)
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines() == [f"error: {problem}"]
    assert not (tmp_path / "x.json").exists()
