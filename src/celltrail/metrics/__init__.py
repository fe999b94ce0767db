"""Evaluation with the field's metrics (CTC and MOT through py-ctcmetrics)."""

from celltrail.metrics.ctc import evaluate, evaluate_result, seg_score

__all__ = ["evaluate", "evaluate_result", "seg_score"]
