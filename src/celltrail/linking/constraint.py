"""Constraint-based frame-to-frame linking: the classical tracking baseline of the review.

The review (Sec. 3.2) links detections between consecutive frames under three constraints —
centroid distance at most 0.8 mean cell diameters, area change at most 15 %, stable neighbour
counts (neighbours: cells within two diameters) — plus direction continuity (|Δθ| < 30° over
three frames), then relaxes the thresholds for the detections left unmatched. Here every
constraint is a hard gate plus a cost term normalised by its own threshold, and each frame pair
is solved as one global assignment (``scipy.optimize.linear_sum_assignment``). A second, relaxed
assignment links the leftovers to the previous frame's leftovers (late continuation) or to tracks
lost 1–2 frames ago (gap closing, declared the CTC way as a new track whose parent is the
interrupted one). Objects still unlinked may then be daughters: a division ends the mother's
track and starts two daughter tracks one frame later, with the mother as parent.

The linker is online: it keeps only the previous frame's objects and the tracks lost in the last
few frames, and writes each relabelled frame to the store as soon as it is linked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from celltrail.core.lineage import Lineage, Track
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.linking.objects import FrameObjects, equivalent_diameters, measure


@dataclass(frozen=True)
class LinkParams:
    """The linker's constants; the scale-free ones are in units of the cell diameter."""

    #: Max centroid step between consecutive frames, in cell diameters (review Sec. 3.2: 0.8).
    max_step: float = 0.8
    #: Max relative area change between consecutive frames (review Sec. 3.2: 15 %).
    max_area_change: float = 0.15
    #: Cells closer than this many diameters are neighbours (review Sec. 3.2: 2).
    neighbour_radius: float = 2.0
    #: Largest direction change, in degrees, of a continuous trajectory (review Sec. 3.2: 30°).
    max_turn_deg: float = 30.0
    #: Factor by which the second pass relaxes the distance and area thresholds (it also gates
    #: gap closing and daughters). The review says only "moderately relaxed"; 1.5 is our reading
    #: of that (not fitted to any data).
    relax: float = 1.5
    #: Most missing frames a gap may bridge (the task: gaps of 1–2 frames; laptrack's default).
    max_gap: int = 2


class ConstraintLinker:
    """Links label frames one at a time; see :func:`link` for the whole-sequence entry point."""

    def __init__(self, params: LinkParams, cell_diameter: float | None = None) -> None:
        self.params = params
        self.diameter = cell_diameter
        self.tracks: dict[int, list[int]] = {}  # label -> [begin, end, parent]
        self.t = 0
        self._prev: _Linked | None = None
        self._lost: list[_Lost] = []

    def step(self, frame: np.ndarray) -> np.ndarray:
        """Link the next frame to the previous ones; return it painted with track labels."""
        objects = measure(frame)
        if self.diameter is None and len(objects):
            self.diameter = float(np.median(equivalent_diameters(objects.areas, frame.ndim)))
        # Before the first object the scale is unknown, and there is nothing to link anyway.
        labels = np.zeros(0, dtype=np.int64) if self.diameter is None else self._link(objects)
        self.t += 1
        return objects.relabel(labels)

    def lineage(self) -> Lineage:
        """The CTC lineage of every track started so far."""
        return Lineage(Track(label, b, e, p) for label, (b, e, p) in self.tracks.items())

    def _new_track(self, parent: int = 0) -> int:
        label = len(self.tracks) + 1
        self.tracks[label] = [self.t, self.t, parent]
        return label

    def _link(self, cur: FrameObjects) -> np.ndarray:
        """Track label of every object of the current frame."""
        assert self.diameter is not None
        p, d = self.params, self.diameter
        n = len(cur)
        nbrs = _neighbour_counts(cur.centroids, p.neighbour_radius * d)
        prev = self._prev
        self._lost = [g for g in self._lost if self.t - g.frame <= p.max_gap + 1]
        # source[j]: where object j comes from: ("prev", i) continues previous object i,
        # ("div", i) is a daughter of previous object i, ("lost", k) closes a gap of lost track k.
        source: list[tuple[str, int] | None] = [None] * n
        if prev is not None:
            self._match(prev, cur, nbrs, source)
        labels = np.zeros(n, dtype=np.int64)
        velocity = np.full((n, cur.centroids.shape[1]), np.nan)
        for j, src in enumerate(source):
            if src is None:
                labels[j] = self._new_track()
            elif src[0] == "lost":
                labels[j] = self._new_track(parent=self._lost[src[1]].label)
            elif src[0] == "div":
                assert prev is not None
                labels[j] = self._new_track(parent=int(prev.labels[src[1]]))
            else:
                assert prev is not None
                labels[j] = prev.labels[src[1]]
                self.tracks[int(labels[j])][1] = self.t
                velocity[j] = cur.centroids[j] - prev.centroids[src[1]]
        closed = {src[1] for src in source if src is not None and src[0] == "lost"}
        self._lost = [g for k, g in enumerate(self._lost) if k not in closed]
        if prev is not None:
            ended = set(range(len(prev))) - {src[1] for src in source if src and src[0] != "lost"}
            self._lost += [
                _Lost(int(prev.labels[i]), self.t - 1, prev.centroids[i], prev.areas[i])
                for i in sorted(ended)
            ]
        self._prev = _Linked(labels, cur.centroids, cur.areas, nbrs, velocity)
        return labels

    def _match(
        self, prev: _Linked, cur: FrameObjects, nbrs: np.ndarray,
        source: list[tuple[str, int] | None],
    ) -> None:
        """Fill ``source``: strict assignment, relaxed assignment of the leftovers, divisions."""
        assert self.diameter is not None
        p = self.params
        gate = p.max_step * self.diameter
        strict = _pair_costs(prev, cur, nbrs, gate, p.max_area_change, p.max_turn_deg)
        for i, j in _assign(strict):
            source[j] = ("prev", i)
        # The relaxed pass: leftovers of the previous frame and lost tracks, wider gates, and the
        # area change as a cost only ("slight deformations", Sec. 3.2), so no hard area gate.
        rows = np.array([j for j, s in enumerate(source) if s is None], dtype=np.int64)
        if not len(rows):
            return
        matched = {s[1] for s in source if s is not None}
        free_prev = np.array([i for i in range(len(prev)) if i not in matched], dtype=np.int64)
        sources = [prev.take(free_prev), *([self._lost_objects()] if self._lost else [])]
        owners = [("prev", int(i)) for i in free_prev]
        owners += [("lost", k) for k in range(len(self._lost))]
        relaxed = np.concatenate([
            _pair_costs(src, cur, nbrs, p.relax * gate, p.relax * p.max_area_change,
                        p.max_turn_deg, rows, area_is_gate=False)
            for src in sources
        ], axis=0)
        for owner, r in _assign(relaxed):
            source[int(rows[r])] = owners[owner]
        free = np.array([s is None for s in source])
        for mother, daughters in _divisions(
            prev, cur, source, free, gate, p.relax, p.neighbour_radius * self.diameter
        ):
            for j in daughters:
                source[j] = ("div", mother)

    def _lost_objects(self) -> _Linked:
        return _Linked(
            np.array([g.label for g in self._lost]),
            np.array([g.centroid for g in self._lost]),
            np.array([g.area for g in self._lost]),
            None, None,
        )


def division_cost(mother: np.ndarray, a: np.ndarray, b: np.ndarray, gate: float, relax: float,
                  neighbour_radius: float) -> float | None:
    """The cost of daughters at ``a`` and ``b`` for a mother at ``mother`` one frame before,
    or None where they cannot be hers.

    Each daughter lies within the relaxed distance gate ``relax * gate`` of the mother
    (daughters are unmatched leftovers, so the second pass's gate applies; the area rule is
    waived), the daughters are neighbours of each other (within ``neighbour_radius``), and the
    mother sits between them: nearer their midpoint than to either of them (a cell that merely
    keeps its place next to a newly appearing object fails this). Cost: (midpoint offset /
    gate)² plus (daughter distance / relaxed gate)² per daughter.
    """
    reach = relax * gate
    da, db = (float(np.linalg.norm(k - mother)) for k in (a, b))
    offset = float(np.linalg.norm((a + b) / 2 - mother))
    if max(da, db) > reach or offset > min(da, db) or np.linalg.norm(a - b) > neighbour_radius:
        return None
    return (offset / gate) ** 2 + (da / reach) ** 2 + (db / reach) ** 2


def _divisions(
    prev: _Linked, cur: FrameObjects, source: list[tuple[str, int] | None], free: np.ndarray,
    gate: float, relax: float, neighbour_radius: float,
) -> list[tuple[int, tuple[int, int]]]:
    """Divisions (mother, (daughter, daughter)) chosen greedily by :func:`division_cost`
    among the hypotheses. A hypothesis pairs two current objects, each unlinked or linked to the
    mother, at least one unlinked."""
    if not free.any() or not len(prev):
        return []
    match_of = {s[1]: j for j, s in enumerate(source) if s is not None and s[0] == "prev"}
    free_idx = np.flatnonzero(free)
    reach = relax * gate
    near = cKDTree(cur.centroids[free_idx]).query_ball_point(prev.centroids, reach)
    hypotheses = []
    for i, found in enumerate(near):
        cands = sorted(int(free_idx[k]) for k in found)
        if i in match_of:
            pairs = [(match_of[i], j) for j in cands]
        else:
            pairs = [(a, b) for x, a in enumerate(cands) for b in cands[x + 1:]]
        for a, b in pairs:
            cost = division_cost(prev.centroids[i], cur.centroids[a], cur.centroids[b], gate,
                                 relax, neighbour_radius)
            if cost is not None:
                hypotheses.append((cost, i, a, b))
    chosen, used_mothers, used = [], set(), set()
    for _, i, a, b in sorted(hypotheses):
        if i not in used_mothers and a not in used and b not in used:
            chosen.append((i, (a, b)))
            used_mothers.add(i)
            used.update((a, b))
    return chosen


@dataclass
class _Linked:
    """Objects of a linked frame (or lost tracks) as the cost terms need them."""

    labels: np.ndarray
    centroids: np.ndarray
    areas: np.ndarray
    nbrs: np.ndarray | None
    velocity: np.ndarray | None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> _Linked:
        return _Linked(
            self.labels[idx], self.centroids[idx], self.areas[idx],
            None if self.nbrs is None else self.nbrs[idx],
            None if self.velocity is None else self.velocity[idx],
        )


@dataclass
class _Lost:
    """A track that found no successor, kept for gap closing."""

    label: int
    frame: int
    centroid: np.ndarray
    area: float


def _neighbour_counts(centroids: np.ndarray, radius: float) -> np.ndarray:
    """Number of other objects within ``radius`` of each object."""
    if not len(centroids):
        return np.zeros(0, dtype=np.int64)
    return cKDTree(centroids).query_ball_point(centroids, radius, return_length=True) - 1


def _pair_costs(
    src: _Linked, cur: FrameObjects, nbrs: np.ndarray | None, gate: float,
    area_gate: float | None, max_turn_deg: float | None, rows: np.ndarray | None = None,
    area_is_gate: bool = True,
) -> np.ndarray:
    """(len(src), len(rows)) cost of linking each source to each current object; inf if gated.

    Terms, each 0 at a perfect match and 1 at its threshold: (distance / gate)², (relative area
    change / area gate)² (at most 1), neighbour-count change relative to the larger count, and a
    turn penalty (1 when |Δθ| exceeds the limit), weighted by the shorter step over the gate so
    that the direction of sub-pixel jitter does not count.
    """
    rows = np.arange(len(cur)) if rows is None else rows
    cost = np.full((len(src), len(rows)), np.inf)
    if not len(src) or not len(rows):
        return cost
    pos = cur.centroids[rows]
    pairs = cKDTree(src.centroids).query_ball_point(pos, gate)
    jj = np.repeat(np.arange(len(rows)), [len(x) for x in pairs])
    ii = np.fromiter((i for x in pairs for i in x), dtype=np.int64, count=len(jj))
    if not len(ii):
        return cost
    step = pos[jj] - src.centroids[ii]
    dist = np.linalg.norm(step, axis=1)
    total = (dist / gate) ** 2
    keep = np.ones(len(ii), dtype=bool)
    if area_gate is not None:
        change = np.abs(cur.areas[rows][jj] - src.areas[ii]) / src.areas[ii]
        if area_is_gate:
            keep = change <= area_gate
        # Capped at 1: past its threshold an area change says no more (the relaxed pass keeps
        # such links, charged as much as a change right at the threshold).
        total += np.minimum((change / area_gate) ** 2, 1.0)
    if nbrs is not None and src.nbrs is not None:
        a, b = src.nbrs[ii], nbrs[rows][jj]
        total += np.abs(a - b) / np.maximum(np.maximum(a, b), 1)
    if max_turn_deg is not None and src.velocity is not None:
        before = src.velocity[ii]
        norm_before = np.linalg.norm(before, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.einsum("ij,ij->i", before, step) / (norm_before * dist)
        turned = np.nan_to_num(cos, nan=1.0) < math.cos(math.radians(max_turn_deg))
        weight = np.minimum(np.nan_to_num(norm_before), dist) / gate
        total += turned * np.minimum(weight, 1.0)
    cost[ii[keep], jj[keep]] = total[keep]
    return cost


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Globally optimal (row, column) matches among the finite entries of ``cost``.

    Each row may stay unmatched at twice the largest finite cost plus one, so that gated links are
    strongly preferred to none (as laptrack's alternative cost above its costs does).
    """
    finite = np.isfinite(cost)
    if not finite.any():
        return []
    busy_rows, busy_cols = finite.any(axis=1), finite.any(axis=0)
    sub = cost[np.ix_(busy_rows, busy_cols)]
    r_idx, c_idx = np.flatnonzero(busy_rows), np.flatnonzero(busy_cols)
    unmatched = 2.0 * float(sub[np.isfinite(sub)].max()) + 1.0
    padded = np.full((len(r_idx), len(c_idx) + len(r_idx)), np.inf)
    padded[:, : len(c_idx)] = sub
    padded[np.arange(len(r_idx)), len(c_idx) + np.arange(len(r_idx))] = unmatched
    rr, cc = linear_sum_assignment(padded)
    return [(int(r_idx[r]), int(c_idx[c])) for r, c in zip(rr, cc, strict=True)
            if c < len(c_idx)]


def link(
    frames: Iterable[np.ndarray],
    store: MaskStore | None = None,
    params: LinkParams | None = None,
    cell_diameter: float | None = None,
) -> TrackingResult:
    """Track label frames (any labels per frame) into a CTC result, one frame at a time.

    Each relabelled frame is appended to ``store`` (in memory when None) as soon as it is linked,
    so memory does not grow with sequence length. ``cell_diameter`` sets the scale of every
    gate; when None it is the median equivalent diameter of the first non-empty frame's objects.
    """
    store = MaskStore() if store is None else store
    linker = ConstraintLinker(params or LinkParams(), cell_diameter)
    for frame in frames:
        store.append(linker.step(frame))
    return TrackingResult(store, linker.lineage())
