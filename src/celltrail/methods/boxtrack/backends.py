"""Choosing BoxTrack's segmentation backend by name."""

from __future__ import annotations

from pathlib import Path

from celltrail.core.errors import InputError
from celltrail.methods.boxtrack.segmenters import ClassicalPromptSegmenter, PromptSegmenter
from celltrail.segmentation import DEFAULT_PRESET

BACKENDS = ("learned", "classical")


def make_segmenter(
    backend: str = "learned", preset: str = DEFAULT_PRESET, model: str | Path | None = None
) -> PromptSegmenter:
    """The promptable segmenter ``backend``: ``learned`` (our trained network; ``model`` is a
    shipped model's name or a checkpoint path, default the shipped one) or ``classical``
    (thresholding and watershed with the modality ``preset``)."""
    if backend == "classical":
        return ClassicalPromptSegmenter(preset)
    if backend == "learned":
        from celltrail.methods.boxtrack.learned import LearnedPromptSegmenter

        return LearnedPromptSegmenter.load(model)
    raise InputError(None, f"unknown BoxTrack backend {backend!r}; choose one of "
                           f"{', '.join(BACKENDS)}")
