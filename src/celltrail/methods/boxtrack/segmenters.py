"""BoxTrack's segmentation module: the promptable segmenter interface and the classical backend.

A frame is encoded once (``encode``) and the features are shared by every prompt (``decode``),
so the cost of a frame grows far slower than the number of cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage as ndi

from celltrail.methods.boxtrack.patch import Patch, box_iou
from celltrail.segmentation import AUTO, DEFAULT_PRESET, segment
from celltrail.segmentation.scale import look
from celltrail.viz.overlay import to_uint8

#: Candidate masks returned per prompt (SAM's multimask output).
K_CANDIDATES = 3
#: The classical backend looks this far (a fraction of the box size) outside each box.
MARGIN = 0.5


@dataclass
class Candidates:
    """What a promptable segmenter returns for N prompts.

    ``masks[i][k]`` is candidate ``k`` of prompt ``i``; ``quality`` (N, K) its predicted IoU with
    the true cell; ``objectness`` (N,) a logit that a cell is there at all; ``tokens`` (N, K, D)
    an embedding of each candidate, compared with the object's memory.
    """

    masks: list[list[Patch]]
    quality: np.ndarray
    objectness: np.ndarray
    tokens: np.ndarray


class PromptSegmenter(Protocol):
    """Segments the cells inside box prompts; the features of a frame are computed once."""

    name: str
    #: Whether ``proposals`` are screened by a learned objectness (then new cells are picked up
    #: by default).
    screens_proposals: bool

    def set_scale(self, diameter: float) -> None:
        """Tell the segmenter the typical cell diameter (pixels), taken from the prompts."""
        ...

    def encode(self, image: np.ndarray) -> object:
        """Features of one frame, shared by all its prompts."""
        ...

    def decode(
        self, features: object, boxes: np.ndarray, previous: list[Patch | None]
    ) -> Candidates:
        """Candidates for each ``(x0, y0, x1, y1)`` box; ``previous`` is each object's last mask
        (its best remembered mask, moved to where it is expected), or None for a new object."""
        ...

    def proposals(self, features: object) -> list[Patch]:
        """Cells found in the frame without prompts (to start tracks of unprompted cells)."""
        ...


@dataclass
class _ClassicalFeatures:
    grey: np.ndarray
    labels: np.ndarray
    slices: list[tuple[slice, slice] | None]
    areas: np.ndarray


class ClassicalPromptSegmenter:
    """Thresholding and watershed (the classical presets), then the regions inside each box.

    The frame is segmented once; a prompt's candidates, cut to the box grown by :data:`MARGIN`,
    are the region with most pixels in it, the union of the regions lying mostly inside it, and
    the runner-up region. The quality
    is the IoU of a candidate's box with the prompt box (the Kalman prediction; the previous mask
    is not used: on the shared sequences it lowered MOTA), the objectness grows with the best
    quality,
    and the token is the candidate's intensity histogram.
    """

    name = "classical"
    screens_proposals = False

    def __init__(self, preset: str = DEFAULT_PRESET) -> None:
        self.preset = preset
        self.diameter: float | None = None

    def set_scale(self, diameter: float) -> None:
        self.diameter = diameter

    def encode(self, image: np.ndarray) -> _ClassicalFeatures:
        if self.preset == AUTO:  # the modality is fixed by the first frame
            self.preset = look(image)[0]
        labels = segment(image, self.preset, self.diameter)
        return _ClassicalFeatures(
            to_uint8(image), labels, ndi.find_objects(labels),
            np.bincount(labels.ravel()),
        )

    def decode(
        self, features: object, boxes: np.ndarray, previous: list[Patch | None]
    ) -> Candidates:
        assert isinstance(features, _ClassicalFeatures)
        n = len(boxes)
        masks: list[list[Patch]] = []
        quality = np.zeros((n, K_CANDIDATES))
        objectness = np.full(n, -10.0)
        tokens = np.zeros((n, K_CANDIDATES, 8))
        h, w = features.labels.shape
        for i, box in enumerate(np.asarray(boxes, dtype=np.float64)):
            x0, y0, x1, y1 = _window(box, MARGIN, (h, w))
            crop = features.labels[y0:y1, x0:x1]
            ids, inside = np.unique(crop[crop > 0], return_counts=True)
            if ids.size == 0:
                masks.append([Patch(0, 0, np.zeros((0, 0), dtype=bool))] * K_CANDIDATES)
                continue
            order = np.argsort(-inside, kind="stable")
            ids, inside = ids[order], inside[order]
            mostly_in = ids[inside >= 0.5 * features.areas[ids]]
            groups = [ids[:1], mostly_in if mostly_in.size else ids[:1],
                      ids[1:2] if ids.size > 1 else ids[:1]]
            cands = [Patch.from_mask(np.isin(crop, group), y0, x0) for group in groups]
            masks.append(cands)
            quality[i] = box_iou(np.stack([c.box() for c in cands]), np.repeat(box[None], 3, 0))
            objectness[i] = 10 * (quality[i].max() - 0.2)
            for k, cand in enumerate(cands):
                grey, mask = cand.view(features.grey)
                hist = np.bincount(grey[mask] // 32, minlength=8).astype(np.float64)
                tokens[i, k] = hist / max(hist.sum(), 1)
        return Candidates(masks, quality, objectness, tokens)

    @staticmethod
    def _region_patch(features: _ClassicalFeatures, ids: np.ndarray) -> Patch:
        slices = [features.slices[i - 1] for i in ids]
        top = min(s[0].start for s in slices)
        left = min(s[1].start for s in slices)
        bottom = max(s[0].stop for s in slices)
        right = max(s[1].stop for s in slices)
        window = features.labels[top:bottom, left:right]
        return Patch.from_mask(np.isin(window, ids), top, left)

    def proposals(self, features: object) -> list[Patch]:
        assert isinstance(features, _ClassicalFeatures)
        return [self._region_patch(features, np.array([i + 1]))
                for i, sl in enumerate(features.slices) if sl is not None]


def _window(box: np.ndarray, margin: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer ``(x0, y0, x1, y1)`` of ``box`` grown by ``margin`` of its size, inside the image."""
    grow = margin * (box[2:] - box[:2])
    x0, y0 = np.floor(box[:2] - grow).astype(int)
    x1, y1 = np.ceil(box[2:] + grow).astype(int)
    return max(0, x0), max(0, y0), max(max(0, x0), min(shape[1], x1)), \
        max(max(0, y0), min(shape[0], y1))
