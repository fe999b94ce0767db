"""EmbedTrack's backward linking (Löffler & Mikut 2022, Sec. 3.4), one frame at a time.

Each instance at t is shifted by its tracking offsets onto frame t − 1; the previous cell that
holds most of its shifted pixels is its candidate. A previous cell with one candidate continues
into it, one with two divides into them, and every other instance starts a new track.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from celltrail.models.embedtrack import COORD_UNIT


def parent_candidates(labels: np.ndarray, previous: np.ndarray,
                      track_offsets: np.ndarray) -> dict[int, int]:
    """``{instance at t: label at t − 1}`` holding most of the instance's shifted pixels.

    ``labels`` and ``previous`` are (H, W) label images (0 background), ``track_offsets``
    (2, H, W) offsets (y, x) in units of :data:`COORD_UNIT` from t to t − 1. Pixels shifted off
    the image or onto background count for nothing; ties go to the smaller label; instances
    with no shifted pixel on a previous instance are left out.
    """
    labels, previous = np.asarray(labels), np.asarray(previous)
    track_offsets = np.asarray(track_offsets, dtype=np.float64)
    if previous.shape != labels.shape or track_offsets.shape != (2, *labels.shape):
        raise ValueError(f"shapes differ: labels {labels.shape}, previous {previous.shape}, "
                         f"offsets {track_offsets.shape}")
    height, width = labels.shape
    rows, cols = np.nonzero(labels > 0)
    iy = np.rint((rows / COORD_UNIT + track_offsets[0, rows, cols]) * COORD_UNIT).astype(int)
    ix = np.rint((cols / COORD_UNIT + track_offsets[1, rows, cols]) * COORD_UNIT).astype(int)
    inside = (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width)
    own = labels[rows[inside], cols[inside]].astype(np.int64)
    hit = previous[iy[inside], ix[inside]].astype(np.int64)
    base = int(previous.max(initial=0)) + 1
    pairs, counts = np.unique(own[hit > 0] * base + hit[hit > 0], return_counts=True)
    instance, parent = np.divmod(pairs, base)
    # Per instance: most pixels first, then the smaller previous label; keep the first.
    order = np.lexsort((parent, -counts, instance))
    instance, parent = instance[order], parent[order]
    first = np.unique(instance, return_index=True)[1]
    return dict(zip(instance[first].tolist(), parent[first].tolist(), strict=True))


class BackwardLinker:
    """Turns each frame's instance labels into track labels, keeping the previous frame's.

    Track ids are 1, 2, … in order of first appearance (within a frame, by instance label);
    :attr:`parents` records divisions for :meth:`TrackingResult.from_masks
    <celltrail.core.result.TrackingResult.from_masks>`.
    """

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self._parents: dict[int, int] = {}
        self._next = 1

    @property
    def parents(self) -> dict[int, int]:
        """Child track id → parent track id, for the daughters of every division so far."""
        return dict(self._parents)

    def step(self, labels: np.ndarray, track_offsets: np.ndarray | None) -> np.ndarray:
        """The next frame's (H, W) uint32 track mask from its instance labels (non-negative)
        and tracking offsets to the previous frame (``None`` links nothing: first frame)."""
        labels = np.asarray(labels)
        links = ({} if self._previous is None or track_offsets is None
                 else parent_candidates(labels, self._previous, track_offsets))
        successors = Counter(links.values())
        lut = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.uint32)
        for instance in np.unique(labels[labels > 0]).tolist():
            parent = links.get(instance, 0)
            if parent and successors[parent] == 1:
                lut[instance] = parent
                continue
            lut[instance] = self._next
            if parent and successors[parent] == 2:
                self._parents[self._next] = parent
            self._next += 1
        self._previous = lut[labels]
        return self._previous.copy()
