"""Checking BoxTrack's segmenters against the prompts, and choosing one (``--backend auto``).

On the prompted frame the true boxes are known, so every backend can be scored before tracking:
the frame is segmented as the tracker would segment it, and each prompted cell's mask box is
compared with its prompt (IoU; a cell is matched at IoU ≥ :data:`MATCH_IOU`). Masks that fit the
prompted frame can still track badly, so each backend also tracks a few frames forward and back
(:mod:`celltrail.methods.boxtrack.roundtrip`), and the best round trip is chosen (ties: the
better fit on the prompted frame). Candidates are the learned backend, its copy adapted to the
frame (:mod:`celltrail.methods.boxtrack.adapt`) and the classical backend with each preset
(presets with the same constants once), all at the cell size the prompt boxes give; with
``auto`` also the classical backend at the cell size the frame itself shows with that preset
where the two differ (a box spans a cell's protrusions).
When one candidate is adapted, every fourth prompt is held out of the adaptation and all
candidates are scored on those held-out cells, so the adapted copy is not judged on the boxes it
learnt from.
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

from celltrail.methods.boxtrack.adapt import Adapted, AdaptParams, adapt
from celltrail.methods.boxtrack.config import BoxTrackConfig
from celltrail.methods.boxtrack.patch import Patch
from celltrail.methods.boxtrack.roundtrip import FRAMES, MATCH_IOU, returned_ious, round_trip
from celltrail.methods.boxtrack.segmenters import (
    Candidates,
    ClassicalPromptSegmenter,
    PromptSegmenter,
)
from celltrail.methods.boxtrack.tracker import follow
from celltrail.segmentation.classical import PRESETS
from celltrail.segmentation.scale import MIN_CONFIDENCE, estimate_diameter, look

if TYPE_CHECKING:
    import torch

LOG = logging.getLogger("celltrail")
#: Below this share of matched prompts (or this round-trip score) even the best backend is
#: poor: a warning says so.
POOR_MATCHED = 0.5
#: With adaptation, every this-many-th prompt is held out of it and scored.
HOLD_OUT = 4
#: Sizes within this factor of each other are the same (the ±25 % of the scale target).
SAME_SIZE = 1.25
#: The adapted learned backend's name in the report.
ADAPTED = "learned, adapted"


@dataclass(frozen=True)
class Agreement:
    """How well a backend's masks on the prompted frame match the prompt boxes."""

    name: str
    mean_iou: float  #: mean over the scored prompts; 0 for a cell left without a mask
    matched: float  #: share of the scored prompts with IoU ≥ MATCH_IOU
    round_trip: float | None = None  #: the round trip's score; None on a single frame

    def rank(self) -> tuple[float, float, float]:
        """Sort key: the round trip first, then the fit on the prompted frame."""
        trip = self.matched if self.round_trip is None else self.round_trip
        return trip, self.matched, self.mean_iou


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
                 f"({self.scored} of {self.prompts} cells{held}; matched: IoU ≥ {MATCH_IOU}); "
                 f"round trip: {FRAMES} frames forward and back (F1 of cells back in their box)",
                 f"  {'backend':<32} {'mean IoU':>8} {'matched':>8} {'round trip':>10}"]
        lines += [f"  {a.name:<32} {a.mean_iou:>8.3f} {a.matched:>8.2f} "
                  f"{'-' if a.round_trip is None else f'{a.round_trip:.2f}':>10}"
                  for a in self.scores]
        if self.adapt_seconds is not None:
            lines.append(f"  adaptation: {self.adapt_steps} steps in {self.adapt_seconds:.1f} s")
        lines.append(f"backend: {self.chosen}")
        return "\n".join(lines)

    def best(self) -> Agreement:
        return next(a for a in self.scores if a.name == self.chosen)


def agreement(name: str, segmenter: PromptSegmenter, frames: Sequence[np.ndarray],
              prompts: pd.DataFrame, scored: Sequence[int], config: BoxTrackConfig) -> Agreement:
    """Score ``segmenter`` on the prompted frame ``frames[0]``: the masks the tracker paints for
    ``prompts``, compared with the prompts at the row positions ``scored``; and, given more
    than one frame, on the round trip through them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty boxes: the score says it
        path = list(follow(segmenter, config, frames, prompts))
        trip = (round_trip(segmenter, config, frames, prompts, scored, path[-1]).score
                if len(path) > 1 else None)
    ious = returned_ious(path[0], prompts.iloc[list(scored)])
    return Agreement(name, float(ious.mean()), float(np.mean(ious >= MATCH_IOU)), trip)


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
        from celltrail.methods.boxtrack.learned import LearnedPromptSegmenter
        from celltrail.methods.boxtrack.options import DEFAULT_MODEL

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

    def calibrate(self, images: Sequence[np.ndarray], prompts: pd.DataFrame,
                  config: BoxTrackConfig) -> Calibration:
        """Build, adapt and score the candidates on the prompted frame (the frame of
        ``prompts``, the cells of one frame of ``images``) and the round trip from it; keep the
        best."""
        start = time.perf_counter()
        first = int(prompts["frame"].iloc[0])
        frames = [np.asarray(images[t]) for t in range(first, min(first + FRAMES + 1,
                                                                  len(images)))]
        segmenters, adapted = self._candidates(frames[0], prompts)
        n = len(prompts)
        scored = range(0, n, HOLD_OUT) if adapted is not None and n >= HOLD_OUT else range(n)
        scores = [agreement(name, seg, frames, prompts, scored, config)
                  for name, seg in segmenters.items()]
        choices = [a for a in scores
                   if self.backend == "auto" or adapted is None or a.name == ADAPTED]
        best = max(choices, key=Agreement.rank)
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
        trip = best.round_trip
        if best.matched < POOR_MATCHED or (trip is not None and trip < POOR_MATCHED):
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
        if self.backend == "classical":
            segmenters[f"classical ({self.preset})"] = self._classical(self.preset, self.diameter)
        if self.backend == "auto":
            for preset in distinct_presets(image):
                segmenters[f"classical ({preset})"] = self._classical(preset, self.diameter)
                seen = image_diameter(image, preset, self.diameter)
                if seen is not None:
                    segmenters[f"classical ({preset}, {seen:.0f} px)"] = self._classical(
                        preset, seen)
        return segmenters, adapted

    @staticmethod
    def _classical(preset: str, diameter: float) -> ClassicalPromptSegmenter:
        classical = ClassicalPromptSegmenter(preset)
        classical.set_scale(diameter)
        return classical

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


def distinct_presets(image: np.ndarray) -> list[str]:
    """Each set of preset constants once (dic and phase share theirs), named by the preset the
    frame's look chooses where it is one of them."""
    own = look(image)[0]
    kept: list[str] = []
    for name in (own, *(p for p in PRESETS if p != own)):
        if all(PRESETS[name] != PRESETS[other] for other in kept):
            kept.append(name)
    return kept


def image_diameter(image: np.ndarray, preset: str, boxes: float) -> float | None:
    """The cell diameter ``image`` shows with ``preset`` where it differs from the prompts'
    box size ``boxes`` by over a quarter (a box spans a cell's protrusions, its body sets the
    classical segmentation's scale); None where it agrees or is unsure."""
    seen, confidence = estimate_diameter(image, preset)
    if confidence < MIN_CONFIDENCE or abs(np.log(seen / boxes)) <= np.log(SAME_SIZE):
        return None
    return seen


def poor_fit(best: Agreement) -> str:
    """The warning when even the best backend fits the prompts badly, with what to try."""
    trip = ("" if best.round_trip is None else
            f" and scores {best.round_trip:.2f} on a {FRAMES}-frame round trip")
    return (f"even the best BoxTrack backend ({best.name}) matches only "
            f"{best.matched:.0%} of the prompted cells on their frame (mean box IoU "
            f"{best.mean_iou:.2f}){trip}: check that the boxes are x,y,w,h in pixels and on the "
            f"right frame (--box-frame-base 1 for a bbox.txt counted from 1); try --preset for "
            f"your modality, or train a model on your data (celltrail train prompt-segmenter) "
            f"and give it with --model")
