"""BoxTrack's tracking module: Kalman motion prior, memory-aware mask selection, divisions.

Each prompted cell is an object with a Kalman filter on its box and a memory bank. In every
frame the segmenter proposes candidates inside the predicted box; the candidate with the best
score ``λa·affinity + λm·motion + λo·objectness`` is kept (Sec. 3.2, eq. 5-8). Beyond the paper,
a mask that splits in two, or a shrunken cell with a new neighbour, is a division, and cells
nobody prompted can start tracks of their own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from celltrail.core.errors import InputError, OptionError
from celltrail.core.lineage import TrackBook
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence
from celltrail.linking.kalman import BoxKalman
from celltrail.methods.base import Tracker
from celltrail.methods.boxtrack.backends import make_segmenter
from celltrail.methods.boxtrack.config import BoxTrackConfig
from celltrail.methods.boxtrack.memory import MemoryBank, MemoryEntry
from celltrail.methods.boxtrack.options import BoxTrackOptions
from celltrail.methods.boxtrack.patch import Patch, box_iou
from celltrail.methods.boxtrack.prompts import read_prompts
from celltrail.methods.boxtrack.segmenters import Candidates, PromptSegmenter

#: A cell that shrank below this fraction of its area while a new cell appeared beside it has
#: divided (a mother's area is shared by its daughters).
SHRINK_AT_DIVISION = 0.75


@dataclass
class _Object:
    """A tracked cell: its current output label, last mask, memory and absence count."""

    label: int
    patch: Patch
    memory: MemoryBank
    lost: int = 0
    seen_now: bool = False
    area_before: int = 0
    token: np.ndarray | None = None


@dataclass
class _Choice:
    """The candidate kept for an object in one frame, with its scores."""

    patch: Patch
    score: float
    quality: float
    objectness: float
    motion: float
    token: np.ndarray


class BoxTracker(Tracker):
    """Track every cell from one box per cell (Khalid et al., "Box it and Track it").

    The prompts (see :func:`~celltrail.methods.boxtrack.prompts.read_prompts`) give each cell
    a box; a cell's id becomes its label. The segmenter is the options' backend unless a
    :class:`PromptSegmenter` is given; ``config`` holds the tracking module's constants (its
    ``new_cells`` and ``divisions`` are the options').
    """

    name = "boxtrack"
    Options = BoxTrackOptions
    outputs = ("mot",)

    def __init__(self, options: BoxTrackOptions | None = None, *,
                 segmenter: PromptSegmenter | None = None, config: BoxTrackConfig | None = None,
                 **values: Any) -> None:
        super().__init__(options, **values)
        opts = self.options
        self.config = replace(config or BoxTrackConfig(), new_cells=opts.new_cells,
                              divisions=opts.divisions)
        self.config.validate()
        if segmenter is None:
            for name in ("model", "device"):
                if opts.backend == "classical" and name in opts.changed():
                    raise OptionError(name, "applies to the learned backend only")
            if opts.backend != "classical":
                from celltrail.models.device import resolve_device

                self.device = resolve_device(opts.device)
            segmenter = make_segmenter(opts.backend, opts.preset, opts.model, opts.adapt,
                                       self.device)
        self.segmenter = segmenter
        self.diameter: float | None = None  # the prompts' cell size, per sequence

    def read_prompts(self, prompts: object, images: ImageSequence) -> pd.DataFrame:
        """One box per cell: a box file, a CTC ground-truth folder or a table
        (:func:`~celltrail.methods.boxtrack.prompts.read_prompts`)."""
        if prompts is None:
            raise OptionError("prompts", "boxtrack needs its box prompts: a box file or a CTC "
                                         "ground-truth folder")
        return read_prompts(prompts, images, self.options.box_frame_base,
                            self.config.min_box_side)

    def settings(self) -> dict[str, str]:
        """Method, backend, preset (classical backend) and cell size used, for the summary."""
        segmenter = self.segmenter
        found = {"method": self.name, "backend": str(segmenter.name)}
        calibration = getattr(segmenter, "calibration", None)
        if calibration is not None:  # chosen (or adapted) on the prompted frame
            found["backend"] = f"{calibration.chosen} (prompt check)"
            segmenter = segmenter.chosen  # type: ignore[attr-defined]
        if getattr(segmenter, "preset", None):
            found["preset"] = f"{segmenter.preset} (classical backend)"  # type: ignore[attr-defined]
        used = getattr(segmenter, "diameter", None) or self.diameter
        if used is not None and used != self.diameter:
            found["diameter"] = (f"{used:.1f} px (measured on the first frame; the prompts' "
                                 f"median box size is {self.diameter:.1f} px)")
        elif self.diameter is not None:
            found["diameter"] = f"{self.diameter:.1f} px (the first prompts' median box size)"
        return found

    def run(self, images: ImageSequence, prompts: pd.DataFrame, store: MaskStore,
            on_frame: Callable[[int], None]) -> TrackingResult:
        """Segment and track the prompted cells through ``images``."""
        first = prompts[prompts["frame"] == prompts["frame"].min()]
        self.diameter = float(np.median(np.sqrt(first["w"] * first["h"])))
        self.segmenter.set_scale(self.diameter)
        calibrate = getattr(self.segmenter, "calibrate", None)
        if calibrate is not None:  # choose (and adapt) the backend on the prompted frame
            calibrate(images, first, self.config)
        state = _State(_resolved(self.config, self.segmenter), self.segmenter)
        for t, image in enumerate(images):
            if image.ndim != 2:
                raise InputError(None, f"frame {t} is not a 2D image (shape {image.shape})")
            store.append(state.step(t, image, prompts[prompts["frame"] == t]))
            on_frame(t)
        return TrackingResult(store, state.tracks.lineage())


def _resolved(config: BoxTrackConfig, segmenter: PromptSegmenter) -> BoxTrackConfig:
    """``config`` with ``new_cells`` decided by the segmenter where it is left open."""
    if config.new_cells is None:
        return replace(config, new_cells=segmenter.screens_proposals)
    return config


def prompted_frame(segmenter: PromptSegmenter, config: BoxTrackConfig, image: np.ndarray,
                   prompts: pd.DataFrame) -> np.ndarray:
    """The label image BoxTrack paints on a frame from its ``prompts`` alone (labels are the
    prompt ids): what the tracking starts from."""
    return next(follow(segmenter, config, [image], prompts))


def follow(segmenter: PromptSegmenter, config: BoxTrackConfig, frames: Sequence[np.ndarray],
           prompts: pd.DataFrame) -> Iterator[np.ndarray]:
    """The label image of each of ``frames`` as BoxTrack follows ``prompts`` (the cells of the
    first of them) through them."""
    state = _State(_resolved(config, segmenter), segmenter)
    for t, image in enumerate(frames):
        yield state.step(t, image, prompts if t == 0 else prompts.iloc[:0])


def _centred(patch: Patch, box: np.ndarray) -> Patch:
    """``patch`` moved so its box is centred on ``box``: the remembered mask where the object is
    expected now."""
    move = (box[:2] + box[2:] - patch.box()[:2] - patch.box()[2:]) / 2
    return patch.shifted(move[1], move[0])


class _State:
    """Objects, Kalman states and lineage during one run."""

    def __init__(self, config: BoxTrackConfig, segmenter: PromptSegmenter) -> None:
        self.config = config
        self.segmenter = segmenter
        self.objects: list[_Object] = []
        self.kalman = BoxKalman(np.zeros((0, 8)), np.zeros((0, 8, 8)))
        self.tracks = TrackBook()
        self.min_new_area = 0.0

    # -- one frame ------------------------------------------------------------------------------

    def step(self, t: int, image: np.ndarray, prompts: pd.DataFrame) -> np.ndarray:
        """Label image of frame ``t``."""
        features = self.segmenter.encode(image)
        canvas = np.zeros(image.shape, dtype=np.uint32)
        choices = self._follow(features) if self.objects else []
        for obj in self.objects:
            obj.seen_now = False
        started = self._start_prompted(features, prompts)
        order = sorted(range(len(choices)), key=lambda i: -choices[i].score
                       if choices[i] is not None else np.inf)
        for i in order:
            choice = choices[i]
            if choice is not None:
                self._paint_existing(t, i, choice, canvas)
        for obj, choice in started:
            self._paint_new(t, obj, choice, canvas)
        if self.config.divisions:
            self._split_divisions(t, canvas)
        if (self.config.new_cells or self.config.divisions) and t > 0:
            self._pick_up(t, features, canvas)
        self._end_lost()
        return canvas

    def _follow(self, features: object) -> list[_Choice | None]:
        """Predict every object's box and choose its best candidate (None: absent)."""
        if self.config.kalman:
            self.kalman.predict()
            predicted = self.kalman.boxes()
        else:
            predicted = np.stack([o.patch.box() for o in self.objects])
        previous = [_centred(o.memory.best_mask() or o.patch, box)
                    for o, box in zip(self.objects, predicted, strict=True)]
        cands = self.segmenter.decode(features, predicted, previous)
        return [self._choose(cands, i, predicted[i], self.objects[i].memory)
                for i in range(len(self.objects))]

    def _choose(self, cands: Candidates, i: int, predicted: np.ndarray,
                memory: MemoryBank | None) -> _Choice | None:
        """Eq. 8: the candidate with the highest weighted score, if the object is present."""
        c = self.config
        if cands.objectness[i] < c.min_objectness_logit:
            return None
        boxes = np.stack([m.box() if m.area else np.zeros(4) for m in cands.masks[i]])
        motion = box_iou(boxes, np.repeat(predicted[None], len(boxes), 0))
        affinity = memory.affinity(cands.tokens[i]) if memory is not None else np.zeros(len(boxes))
        objectness = 1 / (1 + np.exp(-cands.objectness[i])) * cands.quality[i]
        score = c.lambda_affinity * affinity + c.lambda_motion * motion \
            + c.lambda_objectness * objectness
        score[[m.area == 0 for m in cands.masks[i]]] = -np.inf
        k = int(np.argmax(score))
        if not np.isfinite(score[k]):
            return None
        return _Choice(cands.masks[i][k], float(score[k]), float(cands.quality[i, k]),
                       float(cands.objectness[i]), float(motion[k]), cands.tokens[i, k])

    def _start_prompted(self, features: object,
                        prompts: pd.DataFrame) -> list[tuple[_Object, _Choice]]:
        """Segment the cells prompted in this frame."""
        if prompts.empty:
            return []
        boxes = prompts[["x", "y", "w", "h"]].to_numpy(dtype=np.float64, copy=True)
        boxes[:, 2:] += boxes[:, :2]
        cands = self.segmenter.decode(features, boxes, [None] * len(boxes))
        started, empty = [], []
        for i, label in enumerate(prompts["id"].astype(int)):
            choice = self._choose(cands, i, boxes[i], None)
            if choice is None:  # a prompt is trusted: keep its best-quality candidate
                k = int(np.argmax(cands.quality[i]))
                patch = cands.masks[i][k]
                if patch.area == 0:
                    empty.append(label)
                    continue
                choice = _Choice(patch, 0.0, float(cands.quality[i, k]),
                                 float(cands.objectness[i]), 1.0, cands.tokens[i, k])
            obj = _Object(label, choice.patch, self._new_memory())
            started.append((obj, choice))
        if empty:
            warnings.warn(f"nothing segmented in the boxes of {len(empty)} of {len(prompts)} "
                          f"cells (ids {empty[:10]}{' ...' if len(empty) > 10 else ''})",
                          stacklevel=2)
        areas = [choice.patch.area for _, choice in started]
        if areas and not self.min_new_area:
            self.min_new_area = self.config.new_cell_min_area * float(np.median(areas))
        return started

    def _new_memory(self) -> MemoryBank:
        return MemoryBank(self.config.memory_size, self.config.memory_policy)

    # -- painting -------------------------------------------------------------------------------

    def _visible(self, patch: Patch, canvas: np.ndarray) -> Patch | None:
        """The part of ``patch`` not yet claimed, if large enough to keep."""
        patch = patch.clip(canvas.shape)
        if patch.area == 0:
            return None
        window, mask = patch.view(canvas)
        free = Patch.from_mask(mask & (window == 0), patch.top, patch.left)
        if free.area < self.config.min_visible_fraction * patch.area:
            return None
        return free

    def _paint(self, patch: Patch, label: int, canvas: np.ndarray) -> None:
        window, mask = patch.view(canvas)
        window[mask] = label

    def _paint_existing(self, t: int, i: int, choice: _Choice, canvas: np.ndarray) -> None:
        obj = self.objects[i]
        visible = self._visible(choice.patch, canvas)
        if visible is None:
            return
        obj.area_before = obj.patch.area
        obj.label = self.tracks.continue_or_restart(obj.label, t)
        obj.patch, obj.lost, obj.seen_now, obj.token = visible, 0, True, choice.token
        self._paint(visible, obj.label, canvas)
        self.kalman.update(np.array([i]), visible.box()[None])
        self._remember(obj, t, choice)

    def _paint_new(self, t: int, obj: _Object, choice: _Choice, canvas: np.ndarray,
                   parent: int = 0) -> bool:
        visible = self._visible(choice.patch, canvas)
        if visible is None:
            return False
        if obj.label in self.tracks.rows or obj.label <= 0:
            obj.label = self.tracks.new(t, parent)
        else:
            self.tracks.new(t, parent, label=obj.label)
        obj.patch, obj.seen_now, obj.area_before = visible, True, visible.area
        obj.token = choice.token
        self._paint(visible, obj.label, canvas)
        self.objects.append(obj)
        self.kalman.extend(BoxKalman.start(visible.box()[None]))
        self._remember(obj, t, choice)
        return True

    def _remember(self, obj: _Object, t: int, choice: _Choice) -> None:
        c = self.config
        if (choice.quality > c.memory_quality_threshold
                and choice.objectness > c.memory_objectness_threshold
                and choice.motion > c.memory_motion_threshold):
            obj.memory.add(MemoryEntry(t, choice.token, choice.score, obj.patch))

    # -- beyond the paper: divisions and new cells -------------------------------------------------

    def _split_divisions(self, t: int, canvas: np.ndarray) -> None:
        """A present object whose mask came out as two large parts has divided."""
        for i in range(len(self.objects)):
            obj = self.objects[i]
            if not obj.seen_now or self.tracks.rows[obj.label][0] == t:
                continue
            parts = obj.patch.components()
            if len(parts) < 2 or parts[1].area < self.config.division_min_fraction * obj.patch.area:
                continue
            self._divide(t, i, parts[0], parts[1], canvas)

    def _divide(self, t: int, i: int, first: Patch, second: Patch, canvas: np.ndarray) -> None:
        """End object ``i`` at ``t - 1``; ``first`` and ``second`` start its daughters at ``t``."""
        mother = self.objects[i]
        self._paint(mother.patch, 0, canvas)
        row = self.tracks.rows[mother.label]
        if row[0] == t:  # its track restarted this frame after a gap: drop that piece
            del self.tracks.rows[mother.label]
            mother.label = row[2]
        else:
            row[1] = t - 1
        mother.seen_now, mother.lost = False, self.config.max_lost_frames + 1  # ends now
        for part in (first, second):
            daughter = _Object(0, part, self._new_memory())
            self._paint_new(t, daughter, _Choice(part, 0.0, 1.0, 1.0, 1.0, mother.token),
                            canvas, parent=mother.label)

    def _pick_up(self, t: int, features: object, canvas: np.ndarray) -> None:
        """An unclaimed cell beside a cell that just shrank is its daughter; other unclaimed cells
        start tracks of their own if ``new_cells`` is on."""
        unclaimed = []
        for proposal in self.segmenter.proposals(features):
            if proposal.area < self.min_new_area:
                continue
            window, mask = proposal.view(canvas)
            if np.count_nonzero(window[mask]) <= 0.2 * proposal.area:
                unclaimed.append(proposal)
        if not unclaimed:
            return
        boxes = np.stack([p.box() for p in unclaimed])
        cands = self.segmenter.decode(features, boxes, list(unclaimed))
        for i, proposal in enumerate(unclaimed):
            if cands.objectness[i] < self.config.min_objectness_logit:
                continue
            k = int(np.argmax(cands.quality[i]))
            patch = cands.masks[i][k] if cands.masks[i][k].area else proposal
            choice = _Choice(patch, 0.0, float(cands.quality[i, k]), float(cands.objectness[i]),
                             1.0, cands.tokens[i, k])
            mother = self._shrunk_neighbour(t, patch) if self.config.divisions else None
            if mother is None:
                if self.config.new_cells:
                    self._paint_new(t, _Object(0, patch, self._new_memory()), choice, canvas)
                continue
            sister = self.objects[mother].patch
            visible = self._visible(patch, canvas)
            if visible is not None:
                self._divide(t, mother, sister, visible, canvas)

    def _shrunk_neighbour(self, t: int, patch: Patch) -> int | None:
        """Index of a present cell near ``patch`` that lost a quarter of its area this frame, and
        that ``patch`` could be the other half of (no larger than the cell was)."""
        centre = patch.centroid()
        best, best_dist = None, np.inf
        for i, obj in enumerate(self.objects):
            if (not obj.seen_now or self.tracks.rows[obj.label][0] == t
                    or obj.patch.area > SHRINK_AT_DIVISION * obj.area_before
                    or patch.area > obj.area_before):
                continue
            dist = float(np.linalg.norm(obj.patch.centroid() - centre))
            reach = 0.75 * (np.sqrt(obj.area_before) + np.sqrt(patch.area))
            if dist < reach and dist < best_dist:
                best, best_dist = i, dist
        return best

    def _end_lost(self) -> None:
        """Count absences; forget objects absent too long (their tracks have ended)."""
        keep = []
        for i, obj in enumerate(self.objects):
            if not obj.seen_now:
                obj.lost += 1
            if obj.lost <= self.config.max_lost_frames:
                keep.append(i)
        self.objects = [self.objects[i] for i in keep]
        self.kalman = self.kalman.take(np.array(keep, dtype=np.int64))
