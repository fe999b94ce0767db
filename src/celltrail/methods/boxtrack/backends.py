"""Choosing BoxTrack's segmentation backend by name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from celltrail.core.errors import OptionError
from celltrail.methods.boxtrack.config import AdaptParams
from celltrail.methods.boxtrack.options import BACKENDS
from celltrail.methods.boxtrack.segmenters import ClassicalPromptSegmenter, PromptSegmenter
from celltrail.segmentation import DEFAULT_PRESET

if TYPE_CHECKING:
    import torch


def make_segmenter(
    backend: str = "auto",
    preset: str = DEFAULT_PRESET,
    model: str | Path | None = None,
    adapt: bool | AdaptParams = True,
    device: torch.device | None = None,
) -> PromptSegmenter:
    """The promptable segmenter ``backend``: ``learned`` (our trained network; ``model`` is a
    shipped model's name or a checkpoint path, default the shipped one), fine-tuned on the
    prompted frame (``adapt``: True or its settings; False: as shipped); ``classical``
    (thresholding and watershed with the modality ``preset``); or ``auto``, the best of these
    (every preset) on the prompted frame (:mod:`celltrail.methods.boxtrack.calibrate`), whose
    table goes to the ``celltrail`` logger. The learned backends run on ``device`` (default:
    the CPU)."""
    if backend == "classical":
        return ClassicalPromptSegmenter(preset)
    if backend not in BACKENDS:
        raise OptionError("backend", f"must be one of {', '.join(BACKENDS)}, not {backend!r}")
    params = AdaptParams() if adapt is True else adapt or None
    if backend == "learned" and params is None:
        from celltrail.methods.boxtrack.learned import LearnedPromptSegmenter

        return LearnedPromptSegmenter.load(model, device)
    from celltrail.methods.boxtrack.calibrate import CalibratedSegmenter

    return CalibratedSegmenter(backend, preset, model, params, device)
