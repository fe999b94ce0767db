"""Evaluation: GT scores 1.0 against itself, and py-ctcmetrics agrees with traccuracy."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from traccuracy import run_metrics
from traccuracy.loaders import load_ctc_data
from traccuracy.matchers import CTCMatcher
from traccuracy.metrics import CTCMetrics

from celltrail.core import InputError, Lineage, TrackingResult
from celltrail.io.ctc import read_tracking_gt, write_result
from celltrail.metrics import evaluate


def test_ground_truth_scores_one_against_itself(sample: Path) -> None:
    scores = evaluate(sample / "01_GT", sample / "01_GT", threads=1)
    for key in ("SEG", "DET", "TRA", "LNK", "MOTA", "IDF1", "HOTA"):
        assert scores[key] == pytest.approx(1.0), key
    assert scores["IDS"] == 0 and scores["AOGM"] == 0


def perturbed_result(gt_dir: Path, seed: int) -> TrackingResult:
    """The GT markers with missed cells, false positives and identity switches (no merges)."""
    rng = np.random.default_rng(seed)
    truth = read_tracking_gt(gt_dir)
    parents = {label: track.parent for label, track in truth.lineage.items()}
    masks = []
    switched = {}  # label -> new label from a chosen frame on
    for label in rng.choice(sorted(truth.lineage), 3, replace=False):
        track = truth.lineage[int(label)]
        if track.end > track.begin + 2:
            switched[int(label)] = (int(rng.integers(track.begin + 1, track.end)), 1000 + label)
    for t, markers in enumerate(truth.masks):
        mask = markers.astype(np.int32)
        for label in np.unique(mask[mask > 0]):
            if rng.random() < 0.05:
                mask[mask == label] = 0  # a missed cell
            elif label in switched and t >= switched[label][0]:
                mask[mask == label] = switched[label][1]  # an identity switch
        if t % 3 == 0:
            mask[:6, :6] = 2000 + t  # a false positive in the corner
        masks.append(mask)
    return TrackingResult.from_masks(masks, parents)


def test_tra_and_det_agree_with_traccuracy(sample: Path, tmp_path: Path) -> None:
    gt_dir = sample / "01_GT"
    result = perturbed_result(gt_dir, seed=3)
    assert result.errors() == []
    res_dir = write_result(result, tmp_path / "01_RES")
    ours = evaluate(gt_dir, res_dir, threads=1)
    gt = load_ctc_data(str(gt_dir / "TRA"), str(gt_dir / "TRA" / "man_track.txt"), run_checks=False)
    pred = load_ctc_data(str(res_dir), str(res_dir / "res_track.txt"), run_checks=False)
    theirs = run_metrics(gt, pred, matcher=CTCMatcher(), metrics=[CTCMetrics()])[0][0]["results"]
    assert 0.5 < ours["TRA"] < 0.99  # the perturbation is visible
    assert ours["TRA"] == pytest.approx(theirs["TRA"], abs=1e-4)
    assert ours["DET"] == pytest.approx(theirs["DET"], abs=1e-4)


def test_missing_result_frame_is_reported(sample: Path, tmp_path: Path) -> None:
    res_dir = write_result(perturbed_result(sample / "01_GT", seed=0), tmp_path / "res")
    (res_dir / "mask039.tif").unlink()
    with pytest.raises(InputError) as err:
        evaluate(sample / "01_GT", res_dir, threads=1)
    assert str(err.value) == f"{res_dir}: 39 result masks, but the ground truth has 40 frames"


def test_not_a_ground_truth_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a CTC ground-truth folder"):
        evaluate(tmp_path, tmp_path)


def test_result_without_tracks(sample: Path, tmp_path: Path) -> None:
    truth = read_tracking_gt(sample / "01_GT")
    empty = TrackingResult([np.zeros_like(m) for m in truth.masks], Lineage())
    res = write_result(empty, tmp_path / "res")
    with pytest.raises(InputError) as err:
        evaluate(sample / "01_GT", res)
    assert str(err.value) == f"{res}: the result has no tracks (res_track.txt is empty)"


def test_ground_truth_without_segmentation_scores_tracking_only(sample: Path,
                                                                 tmp_path: Path) -> None:
    gt = tmp_path / "01_GT"
    shutil.copytree(sample / "01_GT" / "TRA", gt / "TRA")
    (gt / "SEG").mkdir()  # an empty SEG folder is no segmentation either
    scores = evaluate(gt, sample / "01_GT", threads=1)
    assert scores["TRA"] == scores["DET"] == 1.0
    assert scores["SEG"] is None and scores["OP_CTB"] is None
