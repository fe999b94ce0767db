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
from celltrail.io.ctc import gt_as_result, numbered_files, read_result, write_result

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


def _check_frames(gt_dir: Path, res_dir: Path) -> None:
    gt_frames = set(numbered_files(gt_dir / "TRA", "man_track"))
    res_frames = set(numbered_files(res_dir, "mask"))
    missing = sorted(gt_frames - res_frames)
    if missing:
        raise InputError(
            res_dir,
            f"no result mask for frame {missing[0]} ('mask{missing[0]:03d}.tif'); "
            f"the ground truth has {len(gt_frames)} frames",
        )


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
    if not len(read_result(res_dir).lineage):  # raises on a missing or malformed res_track.txt
        raise InputError(res_dir, "the result has no tracks (res_track.txt is empty)")
    _check_frames(gt_dir, res_dir)
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
