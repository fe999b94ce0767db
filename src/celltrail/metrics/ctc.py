"""CTC (SEG, DET, TRA, LNK, BC, CT, TF, CCA) and MOT (MOTA, IDF1, HOTA, ...) metrics.

All scores come from py-ctcmetrics; this module only checks the inputs, hides the tool's
pitfalls (it edits the metric list it is given, it needs a mask for every GT frame) and returns
plain Python numbers.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
from ctc_metrics.metrics import ALL_METRICS
from ctc_metrics.scripts.evaluate import evaluate_sequence

from celltrail.core.errors import InputError
from celltrail.core.result import TrackingResult
from celltrail.core.sequence import FolderSequence, LabelSequence
from celltrail.io.ctc import (
    check_valid,
    gt_as_result,
    numbered_files,
    read_result,
    read_tracking_gt,
    write_result,
)

#: Metrics shown first, in this order, in tables.
#: The metrics that need the ground truth's segmentation masks (``SEG``).
NEED_SEG = ("SEG", "OP_CTB", "OP_CSB", "OP_CLB")
HEADLINE = ("SEG", "DET", "TRA", "LNK", "BC(0)", "CT", "TF", "CCA", "MOTA", "IDF1", "HOTA",
            "IDSW", "MT", "ML")
#: The AOGM error counts behind TRA.
AOGM_PARTS = ("AOGM", "AOGM_NS", "AOGM_FN", "AOGM_FP", "AOGM_ED", "AOGM_EA", "AOGM_EC")


def _plain(value: object) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    return float(value)


def check_pair(gt_dir: Path, res_dir: Path) -> None:
    """Check a result and its ground truth before py-ctcmetrics sees them: both valid (labels
    consistent with their track files), the same frames of the same shape, readable SEG
    masks of that shape."""
    truth, result = read_tracking_gt(gt_dir), read_result(res_dir)
    if not len(result.lineage):
        raise InputError(res_dir, "the result has no tracks (res_track.txt is empty)")
    if len(result.masks) != len(truth.masks):
        raise InputError(res_dir, f"{len(result.masks)} result masks, but the ground truth "
                                  f"has {len(truth.masks)} frames")
    if result.masks.shape != truth.masks.shape:
        raise InputError(res_dir, f"masks of shape {result.masks.shape}, but the ground "
                                  f"truth's are {truth.masks.shape}")
    check_valid(truth, gt_dir / "TRA", "ground truth")
    check_valid(result, res_dir, "result")
    seg = gt_dir / "SEG"
    for t, path in (numbered_files(seg, "man_seg") if seg.is_dir() else {}).items():
        if t >= len(truth.masks):
            raise InputError(path, f"frame {t} lies beyond the last TRA frame "
                                   f"{len(truth.masks) - 1}")
        if LabelSequence(FolderSequence([path], str(path))).shape != truth.masks.shape:
            raise InputError(path, f"shape differs from the TRA markers' {truth.masks.shape}")


def evaluate(gt_dir: str | Path, res_dir: str | Path, threads: int = 0) -> dict[str, object]:
    """Score a CTC result folder against a CTC ground-truth folder (``NN_GT``).

    ``res_dir`` may also be a ground-truth folder, which is then scored as a result (a check of
    the evaluator: it gives 1.0). ``threads=0`` uses one process per CPU.
    """
    gt_dir, res_dir = Path(gt_dir), Path(res_dir)
    if not (gt_dir / "TRA" / "man_track.txt").is_file():
        raise InputError(gt_dir, "not a CTC ground-truth folder (no TRA/man_track.txt)")
    if (res_dir / "TRA").is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            return evaluate(gt_dir, write_result(gt_as_result(res_dir), Path(tmp) / "res"), threads)
    check_pair(gt_dir, res_dir)
    metrics = list(ALL_METRICS)
    # py-ctcmetrics fails without SEG masks: leave out what needs them
    if not ((gt_dir / "SEG").is_dir() and numbered_files(gt_dir / "SEG", "man_seg")):
        metrics = [m for m in metrics if m not in NEED_SEG]
    with contextlib.redirect_stdout(io.StringIO()):
        raw = evaluate_sequence(str(res_dir), str(gt_dir), metrics=metrics, threads=threads)
    scores = {key: _plain(value) for key, value in raw.items()}
    scores.update({key: None for key in NEED_SEG if key not in scores})
    scores["IDS"] = scores.get("IDSW")
    return scores


def evaluate_result(result: TrackingResult, gt_dir: str | Path, threads: int = 0) -> dict:
    """Score an in-memory result by writing it to a temporary CTC folder."""
    with tempfile.TemporaryDirectory() as tmp:
        return evaluate(gt_dir, write_result(result, Path(tmp) / "res"), threads)


def seg_score(found: np.ndarray, truth: np.ndarray) -> float:
    """CTC SEG of label image ``found`` against ``truth`` (nan when ``truth`` has no cell)."""
    n, m = int(found.max()), int(truth.max())
    overlap = np.bincount(found.astype(np.int64).ravel() * (m + 1) + truth.ravel(),
                          minlength=(n + 1) * (m + 1)).reshape(n + 1, m + 1)[1:, 1:]
    sizes = np.bincount(truth.ravel(), minlength=m + 1)[1:]
    present = sizes > 0
    if not present.any():
        return float("nan")
    best = overlap.argmax(0)
    hit = overlap[best, np.arange(m)]
    union = sizes + overlap.sum(1)[best] - hit
    scores = np.where(2 * hit > sizes, hit / np.maximum(union, 1), 0.0)
    return float(scores[present].mean())
