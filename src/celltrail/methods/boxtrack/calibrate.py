"""Checking BoxTrack's segmenters against the prompts, and choosing one (``--backend auto``).

On the prompted frame the true boxes are known, so every backend can be scored before tracking:
the frame is segmented as the tracker would segment it, and each prompted cell's mask box is
compared with its prompt (IoU; a cell is matched at IoU ≥ :data:`MATCH_IOU`). Candidates are
the learned backend, its copy adapted to the frame (:mod:`celltrail.methods.boxtrack.adapt`) and
the classical backend with each preset, all at the cell size the prompt boxes give. When one
candidate is adapted, every fourth prompt is held out of the adaptation and all candidates are
scored on those held-out cells, so the adapted copy is not judged on the boxes it learnt from.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from celltrail.methods.boxtrack.adapt import Adapted, AdaptParams, adapt
from celltrail.methods.boxtrack.config import BoxTrackConfig
from celltrail.methods.boxtrack.patch import Patch, box_iou
from celltrail.methods.boxtrack.segmenters import (
    Candidates,
    ClassicalPromptSegmenter,
    PromptSegmenter,
)
from celltrail.methods.boxtrack.tracker import prompted_frame
from celltrail.segmentation.classical import PRESETS

if TYPE_CHECKING:
    import torch

LOG = logging.getLogger("celltrail")
#: A prompted cell is matched when its mask's box overlaps the prompt with at least this IoU
#: (the usual detection criterion, PASCAL VOC's).
MATCH_IOU = 0.5
#: Below this share of matched prompts even the best backend is poor: a warning says so.
POOR_MATCHED = 0.5
#: With adaptation, every this-many-th prompt is held out of it and scored.
HOLD_OUT = 4
#: The adapted learned backend's name in the report.
ADAPTED = "learned, adapted"


@dataclass(frozen=True)
class Agreement:
    """How well a backend's masks on the prompted frame match the prompt boxes."""

    name: str
    mean_iou: float  #: mean over the scored prompts; 0 for a cell left without a mask
    matched: float  #: share of the scored prompts with IoU ≥ MATCH_IOU


@dataclass
class Calibration:
    """The scores of every candidate, the one chosen, and the adaptation's cost."""

    scores: list[Agreement]
    chosen: str
    scored: int
    prompts: int
    segmenters: dict[str, PromptSegmenter] = field(default_factory=dict)
    adapt_seconds: float | None = None
    adapt_steps: int | None = None
    seconds: float = 0.0  #: the whole check, adaptation included

    def table(self) -> str:
        """The report printed before tracking."""
        held = ", held out of the adaptation" if self.scored < self.prompts else ""
        lines = ["prompt check: box IoU of each prompted cell's mask with its prompt",
                 f"({self.scored} of {self.prompts} cells{held}; matched: IoU ≥ {MATCH_IOU})",
                 f"  {'backend':<32} {'mean IoU':>8} {'matched':>8}"]
        lines += [f"  {a.name:<32} {a.mean_iou:>8.3f} {a.matched:>8.2f}" for a in self.scores]
        if self.adapt_seconds is not None:
            lines.append(f"  adaptation: {self.adapt_steps} steps in {self.adapt_seconds:.1f} s")
        lines.append(f"backend: {self.chosen}")
        return "\n".join(lines)

    def best(self) -> Agreement:
        return next(a for a in self.scores if a.name == self.chosen)


def agreement(name: str, segmenter: PromptSegmenter, image: np.ndarray, prompts: pd.DataFrame,
              scored: Sequence[int], config: BoxTrackConfig) -> Agreement:
    """Score ``segmenter`` on the prompted frame: the masks the tracker paints for ``prompts``,
    compared with the prompts at the row positions ``scored``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty boxes: the score says it
        labels = prompted_frame(segmenter, config, image, prompts)
    rows = prompts.iloc[list(scored)]
    boxes = rows[["x", "y", "w", "h"]].to_numpy(dtype=np.float64, copy=True)
    boxes[:, 2:] += boxes[:, :2]
    found = ndi.find_objects(labels)
    ious = np.zeros(len(rows))
    for i, label in enumerate(rows["id"].astype(int)):
        where = found[label - 1] if 0 < label <= len(found) else None
        if where is not None:
            box = np.array([where[1].start, where[0].start, where[1].stop, where[0].stop])
            ious[i] = box_iou(box, boxes[i])[0]
    return Agreement(name, float(ious.mean()), float(np.mean(ious >= MATCH_IOU)))


class CalibratedSegmenter:
    """A :class:`PromptSegmenter` that picks its backend on the first prompted frame.

    ``backend`` ``"auto"`` chooses among the learned backend (``model``), its adapted copy (with
    ``adapt``) and the classical one with every preset; ``"learned"`` with ``adapt`` uses the
    adapted copy (the check is still reported). The learned backends run on ``device``
    (default: the CPU). The check's table goes to the ``celltrail`` logger at level INFO (the
    CLI prints it).
    """

    name = "calibrated"

    def __init__(self, backend: str, preset: str, model: str | Path | None,
                 adapt: AdaptParams | None, device: torch.device | None = None) -> None:
        from celltrail.methods.boxtrack.learned import DEFAULT_MODEL, LearnedPromptSegmenter

        self.backend, self.preset, self.adapt = backend, preset, adapt
        self.learned = None  # loaded now: a wrong --model fails before any work
        if backend in ("auto", "learned"):
            self.learned = LearnedPromptSegmenter.load(model, device)
            self.model_name = Path(str(model or DEFAULT_MODEL)).stem
        self.diameter = 1.0
        self.chosen: PromptSegmenter | None = None
        self.calibration: Calibration | None = None

    @property
    def screens_proposals(self) -> bool:
        return self._use().screens_proposals

    def set_scale(self, diameter: float) -> None:
        self.diameter = diameter

    def calibrate(self, image: np.ndarray, prompts: pd.DataFrame,
                  config: BoxTrackConfig) -> Calibration:
        """Build, adapt and score the candidates on the prompted frame; keep the best."""
        start = time.perf_counter()
        segmenters, adapted = self._candidates(image, prompts)
        n = len(prompts)
        scored = range(0, n, HOLD_OUT) if adapted is not None and n >= HOLD_OUT else range(n)
        scores = [agreement(name, seg, image, prompts, scored, config)
                  for name, seg in segmenters.items()]
        choices = [a for a in scores
                   if self.backend == "auto" or adapted is None or a.name == ADAPTED]
        best = max(choices, key=lambda a: (a.matched, a.mean_iou))
        self.chosen = segmenters[best.name]
        calibration = Calibration(scores, best.name, len(scored), n, segmenters)
        if adapted is not None:
            calibration.adapt_seconds, calibration.adapt_steps = adapted.seconds, adapted.steps
            if adapted.cut_short:
                warnings.warn(f"adaptation stopped at its time limit after {adapted.steps} steps "
                              f"({adapted.seconds:.0f} s)", stacklevel=2)
        calibration.seconds = time.perf_counter() - start
        self.calibration = calibration
        LOG.info(calibration.table())
        if best.matched < POOR_MATCHED:
            warnings.warn(poor_fit(best), stacklevel=2)
        return calibration

    def _candidates(self, image: np.ndarray, prompts: pd.DataFrame
                    ) -> tuple[dict[str, PromptSegmenter], Adapted | None]:
        """The backends to score by name, and the adaptation run (None: no adaptation)."""
        segmenters: dict[str, PromptSegmenter] = {}
        adapted = None
        if self.learned is not None:
            self.learned.set_scale(self.diameter)
            segmenters[f"learned ({self.model_name})"] = self.learned
            if self.adapt is not None:
                boxes = prompts[["x", "y", "w", "h"]].to_numpy(dtype=np.float64, copy=True)
                boxes[:, 2:] += boxes[:, :2]
                hold = range(0, len(boxes), HOLD_OUT) if len(boxes) >= HOLD_OUT else ()
                adapted = adapt(self.learned, image, boxes, self.adapt, hold)
                segmenters[ADAPTED] = adapted.segmenter
        if self.backend in ("auto", "classical"):
            for preset in PRESETS if self.backend == "auto" else [self.preset]:
                classical = ClassicalPromptSegmenter(preset)
                classical.set_scale(self.diameter)
                segmenters[f"classical ({preset})"] = classical
        return segmenters, adapted

    def _use(self) -> PromptSegmenter:
        if self.chosen is None:
            raise RuntimeError("calibrate() on the prompted frame before segmenting")
        return self.chosen

    def encode(self, image: np.ndarray) -> object:
        return self._use().encode(image)

    def decode(self, features: object, boxes: np.ndarray,
               previous: list[Patch | None]) -> Candidates:
        return self._use().decode(features, boxes, previous)

    def proposals(self, features: object) -> list[Patch]:
        return self._use().proposals(features)


def poor_fit(best: Agreement) -> str:
    """The warning when even the best backend fits the prompts badly, with what to try."""
    return (f"even the best BoxTrack backend ({best.name}) matches only "
            f"{best.matched:.0%} of the prompted cells on their frame (mean box IoU "
            f"{best.mean_iou:.2f}): check that the boxes are x,y,w,h in pixels and on the right "
            f"frame (--box-frame-base 1 for a bbox.txt counted from 1); try --preset for your "
            f"modality, or train a model on your data (celltrail train prompt-segmenter) and "
            f"give it with --model")
