"""Choosing BoxTrack's segmentation backend by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from celltrail.core.errors import InputError
from celltrail.methods.boxtrack.config import ADAPT_BY_DEFAULT, AdaptParams
from celltrail.methods.boxtrack.segmenters import ClassicalPromptSegmenter, PromptSegmenter
from celltrail.segmentation import DEFAULT_PRESET

BACKENDS = ("auto", "learned", "classical")
#: The backend used unless one is named: chosen on the prompted frame from the prompts.
DEFAULT_BACKEND = "auto"


def make_segmenter(
    backend: str = DEFAULT_BACKEND,
    preset: str = DEFAULT_PRESET,
    model: str | Path | None = None,
    adapt: bool | AdaptParams = ADAPT_BY_DEFAULT,
    report: Callable[[str], None] | None = None,
) -> PromptSegmenter:
    """The promptable segmenter ``backend``: ``learned`` (our trained network; ``model`` is a
    shipped model's name or a checkpoint path, default the shipped one), fine-tuned on the
    prompted frame (``adapt``: True or its settings; False: as shipped); ``classical``
    (thresholding and watershed with the modality ``preset``); or ``auto``, the best of these
    (every preset) on the prompted frame (:mod:`celltrail.methods.boxtrack.calibrate`).
    ``report`` receives that check's table."""
    if backend == "classical":
        return ClassicalPromptSegmenter(preset)
    if backend not in BACKENDS:
        raise InputError(None, f"unknown BoxTrack backend {backend!r}; choose one of "
                               f"{', '.join(BACKENDS)}")
    params = AdaptParams() if adapt is True else adapt or None
    if backend == "learned" and params is None:
        from celltrail.methods.boxtrack.learned import LearnedPromptSegmenter

        return LearnedPromptSegmenter.load(model)
    from celltrail.methods.boxtrack.calibrate import CalibratedSegmenter

    return CalibratedSegmenter(backend, preset, model, params, report)
