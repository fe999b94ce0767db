"""Constraint-based frame-to-frame linking whose gates are measured on the sequence itself.

It starts from the review's constraint-based linking (Sec. 3.2: a centroid step of at most 0.8
cell diameters, a small area change, stable neighbour counts, thresholds relaxed for the
leftovers), but takes the scale of every term from the sequence being linked rather than from
constants fitted to a few sequences:

* Motion. Each frame pair's confident matches (mutual nearest neighbours whose nearest candidate
  is less than ``confident_ratio`` times as far as the second: a ratio test) decide whether a
  constant-velocity prediction helps (used when it lowers their mean squared residual). The step
  scale is the maximum-likelihood Rayleigh (2D Gaussian) fit of the residuals of the links made
  so far, each cut at the gate it was made under (so the gate grows when links crowd against
  it), or of the confident matches until there are enough links; both pools keep only the last
  ``window`` samples. The gate is the step a true link exceeds with probability ``gate_level``
  under that fit, never less than the review's 0.8 diameters.
* Area. The spread of the same matches' log area ratios (three robust standard deviations, at
  least the review's 15 %) scales a soft area term; there is no hard area gate, so objects
  (masks or markers) whose size changes are never cut off.
* Neighbour counts (cells within two diameters, review Sec. 3.2): their relative change costs.

Each frame is linked by two assignments (``scipy.optimize.linear_sum_assignment``) with the
alternative costs of Jaqaman et al. (2008): ending or starting a track costs half the most a
gated link can cost, so every continuation inside the gate is made where nothing competes. The
first links the previous frame's objects (position predicted when the velocity helps) to the
current ones with every term. The second links the objects left over to daughter slots, by
distance alone (one slot for each previous object that continued, whose continuation is then
the other daughter; two for each that did not, one taken alone being the review's relaxed
continuation), and to tracks lost 1 to ``max_gap`` frames ago, by distance and area (the gate
widened by the square root of the frames, as a random walk spreads). A mother's track ends and
her two daughters start new tracks with her as parent; a closed gap is declared the CTC way, as a
new track whose parent is the interrupted one. Daughters get no area or neighbour term: a
daughter is smaller than her mother and has her sister for a new neighbour (the review waives
the area rule for them too). Sisters are compared instead: a mother divides into halves, so a
daughter slot of a mother that continued costs the area ratio of the newcomer to that
continuation (the sister), and an object appearing beside a cell at a far other size starts a
track of its own.

The linker is online: it keeps only the previous frame's objects, the tracks lost in the last
few frames and a bounded pool of match statistics, and writes each relabelled frame to the store
as soon as it is linked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment, minimize_scalar
from scipy.spatial import cKDTree

from celltrail.core.lineage import Lineage, TrackBook
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.linking.objects import FrameObjects, equivalent_diameters, measure


@dataclass(frozen=True)
class LinkParams:
    """The linker's constants, from the review or probability levels, none fitted to data;
    lengths are in cell diameters."""

    #: Smallest gate on the centroid step between consecutive frames (review Sec. 3.2: 0.8).
    max_step: float = 0.8
    #: Smallest scale of the relative area change between consecutive frames (review: 15 %).
    max_area_change: float = 0.15
    #: Cells closer than this many diameters are neighbours (review Sec. 3.2: 2).
    neighbour_radius: float = 2.0
    #: How much a relaxed threshold widens the strict one in :func:`division_cost` (the review
    #: says only "moderately relaxed"; 1.5 is our reading, not fitted).
    relax: float = 1.5
    #: Most missing frames a gap may bridge (the task: gaps of 1-2 frames; laptrack's default).
    max_gap: int = 2
    #: Chance that a true step exceeds the gate under the motion model fitted to the sequence.
    gate_level: float = 1e-3
    #: Ratio test of a confident match: nearest candidate at most this fraction of the second's
    #: distance, both ways (the nearest is then unambiguous).
    confident_ratio: float = 0.5
    #: Confident matches kept for the statistics (the most recent ones).
    window: int = 1000
    #: Fewest confident matches before the statistics replace the review's floors.
    min_samples: int = 10


#: Cost of ending or of starting a track: half the most a link inside the gate can cost (three
#: terms of at most 1 each), so every gated continuation is made where nothing competes, and a
#: daughter or a closed gap must cost less than a new track's start.
END_COST = 1.5
#: Area ratio of two sisters at which the sister term reaches 1: a mother divides in halves,
#: and a sister twice the other's size is as far from that as a link at the gate is from a
#: perfect one.
SISTER_RATIO = 2.0


class _Ring:
    """The last ``size`` rows of ``width`` floats appended, in a preallocated array (memory stays
    the same however long the sequence)."""

    def __init__(self, size: int, width: int) -> None:
        self._data = np.empty((size, width))
        self._count = 0

    def __len__(self) -> int:
        return min(self._count, len(self._data))

    def extend(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, self._data.shape[1])
        rows = rows[-len(self._data):]
        at = (self._count + np.arange(len(rows))) % len(self._data)
        self._data[at] = rows
        self._count += len(rows)

    def values(self) -> np.ndarray:
        """The rows kept (in no particular order)."""
        return self._data[: len(self)]


class MatchStats:
    """Bounded pools of the confident matches' and the links' residuals and log area ratios."""

    def __init__(self, params: LinkParams) -> None:
        self.params = params
        self.still = _Ring(params.window, 1)  # |step|^2 of confident matches
        # (|step|^2, |step - velocity|^2) of the confident matches whose source has a velocity
        self.pairs = _Ring(params.window, 2)
        self.log_area = _Ring(params.window, 1)
        # (|residual|^2, gate^2) of the continuations the linker made, each cut at its gate
        self.links = _Ring(params.window, 2)

    def add(self, prev: _Linked, cur: FrameObjects) -> None:
        """Pool the confident matches between the previous and the current frame."""
        i, j = confident_pairs(prev.centroids, cur.centroids, self.params.confident_ratio)
        step = cur.centroids[j] - prev.centroids[i]
        still = np.einsum("ij,ij->i", step, step)
        self.still.extend(still)
        if prev.velocity is not None:
            known = np.isfinite(prev.velocity[i]).all(axis=1)
            rest = step[known] - prev.velocity[i][known]
            self.pairs.extend(np.stack([still[known], np.einsum("ij,ij->i", rest, rest)], 1))
        self.log_area.extend(np.log(cur.areas[j] / prev.areas[i]))

    def add_links(self, residuals: np.ndarray, gate: float) -> None:
        """Pool the residuals of the continuations made under ``gate``."""
        self.links.extend(np.stack([residuals**2, np.full(len(residuals), gate**2)], 1))

    def use_velocity(self) -> bool:
        """Whether the constant-velocity prediction fits the confident matches better."""
        if len(self.pairs) < self.params.min_samples:
            return False
        still, moving = np.mean(self.pairs.values(), axis=0)
        return bool(moving < still)

    def gate(self, diameter: float) -> float:
        """Largest step a link may take, in pixels: the step that a true one exceeds with
        probability ``gate_level`` under a 2D Gaussian (Rayleigh) fit of the residuals, never
        less than the review's ``max_step`` diameters.

        The fit is to the continuations already made, as the maximum-likelihood fit of a
        Rayleigh distribution cut at each link's gate (a link beyond it was never seen), so the
        gate grows when links crowd against it; before there are enough, to the confident
        matches (whose ratio test favours short steps)."""
        floor = self.params.max_step * diameter
        if len(self.links) >= self.params.min_samples:
            r2, g2 = self.links.values().T
            sigma2 = _truncated_rayleigh_variance(r2, g2)
        elif len(self.still) >= self.params.min_samples:
            squares = self.pairs.values()[:, 1] if self.use_velocity() else self.still.values()
            sigma2 = float(np.mean(squares)) / 2  # maximum-likelihood Rayleigh variance
        else:
            return floor
        return max(floor, math.sqrt(-2.0 * sigma2 * math.log(self.params.gate_level)))

    def area_scale(self) -> float:
        """Log area ratio at which the area term reaches 1."""
        floor = math.log1p(self.params.max_area_change)
        if len(self.log_area) < self.params.min_samples:
            return floor
        ratios = self.log_area.values()
        spread = 1.4826 * float(np.median(np.abs(ratios - np.median(ratios))))  # robust s.d.
        return max(floor, 3.0 * spread)


def _truncated_rayleigh_variance(r2: np.ndarray, g2: np.ndarray) -> float:
    """Maximum-likelihood variance per axis of a 2D Gaussian step from squared lengths ``r2``,
    each observed only below its squared cut ``g2``."""

    def nll(log_s: float) -> float:
        s = math.exp(log_s)
        return float(np.sum(log_s + r2 / (2 * s) + np.log1p(-np.exp(-g2 / (2 * s)))))

    low = math.log(max(float(np.mean(r2)) / 2, 1e-6))  # the uncut fit: a lower bound
    best = minimize_scalar(nll, bounds=(low, low + math.log(1e4)), method="bounded")
    return math.exp(float(best.x))


def confident_pairs(a: np.ndarray, b: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (into ``a``, into ``b``) of mutual nearest neighbours whose nearest candidate
    is less than ``ratio`` times as far as the second, seen from both sides."""
    if len(a) < 2 or len(b) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    da, ia = cKDTree(b).query(a, k=2)
    db, ib = cKDTree(a).query(b, k=2)
    i = np.arange(len(a))
    j = ia[:, 0]
    ok = (ib[j, 0] == i) & (da[:, 0] < ratio * da[:, 1]) & (db[j, 0] < ratio * db[j, 1])
    return i[ok], j[ok]


class ConstraintLinker:
    """Links label frames one at a time; see :func:`link` for the whole-sequence entry point."""

    def __init__(self, params: LinkParams, cell_diameter: float | None = None) -> None:
        self.params = params
        self.diameter = cell_diameter
        self.stats = MatchStats(params)
        self.tracks = TrackBook()
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
        return self.tracks.lineage()

    def _new_track(self, parent: int = 0) -> int:
        return self.tracks.new(self.t, parent)

    def _link(self, cur: FrameObjects) -> np.ndarray:
        """Track label of every object of the current frame."""
        assert self.diameter is not None
        p = self.params
        n = len(cur)
        nbrs = _neighbour_counts(cur.centroids, p.neighbour_radius * self.diameter)
        prev = self._prev
        self._lost = [g for g in self._lost if self.t - g.frame <= p.max_gap + 1]
        # source[j]: where object j comes from: ("prev", i) continues previous object i,
        # ("div", i) is a daughter of previous object i, ("lost", k) closes a gap of lost track k.
        source: list[tuple[str, int] | None] = [None] * n
        if prev is not None and n:
            self.stats.add(prev, cur)
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
                self.tracks.extend(int(labels[j]), self.t)
                velocity[j] = cur.centroids[j] - prev.centroids[src[1]]
        closed = {src[1] for src in source if src is not None and src[0] == "lost"}
        self._lost = [g for k, g in enumerate(self._lost) if k not in closed]
        if prev is not None:
            ended = set(range(len(prev))) - {src[1] for src in source if src and src[0] != "lost"}
            self._lost += [
                _Lost(int(prev.labels[i]), self.t - 1, prev.centroids[i], prev.areas[i],
                      prev.velocity[i])
                for i in sorted(ended)
            ]
        self._prev = _Linked(labels, cur.centroids, cur.areas, nbrs, velocity)
        return labels

    def _match(
        self, prev: _Linked, cur: FrameObjects, nbrs: np.ndarray,
        source: list[tuple[str, int] | None],
    ) -> None:
        """Fill ``source``: an assignment of continuations, then one of the objects left over
        to daughter slots of the previous frame's objects and to lost tracks."""
        assert self.diameter is not None
        gate = self.stats.gate(self.diameter)
        moving = self.stats.use_velocity()
        costs = _RowCosts(cur, nbrs, self.stats.area_scale())
        n_prev = len(prev)
        ahead = prev.predicted(1, moving)
        # Not continuing a track ends it: any continuation inside the gate (cost at most 3)
        # beats an end and a start.
        links = _assign(costs(ahead, prev, gate), np.full(n_prev, END_COST), END_COST)
        for i, j in links:
            source[j] = ("prev", i)
        if links:
            i, j = np.array(links).T
            self.stats.add_links(np.linalg.norm(cur.centroids[j] - ahead[i], axis=1), gate)
        free = np.array([s is None for s in source])
        if not free.any():
            return
        continued = np.zeros(n_prev, dtype=bool)
        continued[[s[1] for s in source if s is not None]] = True
        # Daughter slots: one for a continued object (its continuation is the other daughter),
        # two for one that was not; a slot or a gap left free ends nothing.
        slots = np.concatenate([np.arange(n_prev), np.flatnonzero(~continued)])
        rows = [costs(prev.centroids[slots], prev.take(slots), gate, shape=False)
                + self._sister_costs(slots, continued, source, cur)]
        if self._lost:
            rows.append(self._gap_costs(costs, gate, moving))
        stacked = np.concatenate(rows, axis=0)
        stacked[:, ~free] = np.inf
        taken: dict[int, list[int]] = {}
        for r, j in _assign(stacked, np.zeros(len(stacked)), END_COST):
            if r >= len(slots):
                source[j] = ("lost", r - len(slots))
            else:
                taken.setdefault(int(slots[r]), []).append(j)
        for i, found in taken.items():
            if continued[i] or len(found) == 2:
                mates = found + [j for j, s in enumerate(source) if s == ("prev", i)]
                for j in mates:
                    source[j] = ("div", i)
            else:  # the review's relaxed pass: a continuation found only without the shape terms
                source[found[0]] = ("prev", i)

    @staticmethod
    def _sister_costs(slots: np.ndarray, continued: np.ndarray,
                      source: list[tuple[str, int] | None], cur: FrameObjects) -> np.ndarray:
        """The area term between a daughter and her sister, for the slots of mothers that
        continued (their continuation is the sister): a mother divides into two halves, so
        the term reaches 1 where one is ``SISTER_RATIO`` times the other's size, and an object
        appearing beside a cell far larger or smaller than it is a new cell, not her daughter.
        0 for the other slots."""
        sister = np.full(len(continued), -1)
        for j, src in enumerate(source):
            if src is not None and src[0] == "prev":
                sister[src[1]] = j
        extra = np.zeros((len(slots), len(cur)))
        known = continued[slots]
        ratio = np.log(cur.areas[None, :] / cur.areas[sister[slots[known]], None])
        extra[known] = np.minimum((ratio / math.log(SISTER_RATIO)) ** 2, 1.0)
        return extra

    def _gap_costs(self, costs: _RowCosts, gate: float, moving: bool) -> np.ndarray:
        """Costs of closing the gap of each lost track to each current object: its gate grows
        with the square root of the frames since it was lost, as a random walk's spread."""
        lost = self._lost_objects()
        steps = np.array([self.t - g.frame for g in self._lost])
        gaps = np.full((len(lost), len(costs.cur)), np.inf)
        for k in np.unique(steps):
            at = np.flatnonzero(steps == k)
            gaps[at] = costs(lost.predicted(int(k), moving)[at], lost.take(at),
                             gate * math.sqrt(k))
        return gaps

    def _lost_objects(self) -> _Linked:
        return _Linked(
            np.array([g.label for g in self._lost]),
            np.array([g.centroid for g in self._lost]),
            np.array([g.area for g in self._lost]),
            None,
            np.array([g.velocity for g in self._lost]),
        )


def division_cost(mother: np.ndarray, a: np.ndarray, b: np.ndarray, gate: float, relax: float,
                  neighbour_radius: float) -> float | None:
    """The cost of daughters at ``a`` and ``b`` for a mother at ``mother`` one frame before,
    or None where they cannot be hers: a geometric division test after the review, used by
    CAP's tracker (the linker above no longer uses it: it rejects a division whose mother's
    marker stays on one daughter).

    Each daughter lies within the relaxed distance gate ``relax * gate`` of the mother (the
    area rule is waived), the daughters are neighbours of each other (within
    ``neighbour_radius``), and the mother sits between them: nearer their midpoint than to
    either of them (a cell that merely keeps its place next to a newly appearing object fails
    this). Cost: (midpoint offset / gate)² plus (daughter distance / relaxed gate)² per
    daughter.
    """
    reach = relax * gate
    da, db = (float(np.linalg.norm(k - mother)) for k in (a, b))
    offset = float(np.linalg.norm((a + b) / 2 - mother))
    if max(da, db) > reach or offset > min(da, db) or np.linalg.norm(a - b) > neighbour_radius:
        return None
    return (offset / gate) ** 2 + (da / reach) ** 2 + (db / reach) ** 2


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

    def predicted(self, steps: int, moving: bool) -> np.ndarray:
        """Centroids ``steps`` frames on: constant velocity where known and ``moving``."""
        if not moving or self.velocity is None:
            return self.centroids
        return self.centroids + steps * np.nan_to_num(self.velocity)


@dataclass
class _Lost:
    """A track that found no successor, kept for gap closing."""

    label: int
    frame: int
    centroid: np.ndarray
    area: float
    velocity: np.ndarray


def _neighbour_counts(centroids: np.ndarray, radius: float) -> np.ndarray:
    """Number of other objects within ``radius`` of each object."""
    if not len(centroids):
        return np.zeros(0, dtype=np.int64)
    return cKDTree(centroids).query_ball_point(centroids, radius, return_length=True) - 1


@dataclass
class _RowCosts:
    """Link costs from sources to the current frame's objects, every term 0 at a perfect match
    and 1 at its threshold: (distance / gate)², (log area ratio / area scale)² (at most 1), and
    the neighbour-count change relative to the larger count."""

    cur: FrameObjects
    nbrs: np.ndarray
    area_scale: float

    def __call__(self, at: np.ndarray, src: _Linked, gate: float, shape: bool = True
                 ) -> np.ndarray:
        """(len(src), len(cur)) costs of sources expected at ``at``; inf beyond ``gate``;
        the distance term alone where ``shape`` is False."""
        cost = np.full((len(src), len(self.cur)), np.inf)
        if not len(src) or not len(self.cur):
            return cost
        pairs = cKDTree(at).query_ball_point(self.cur.centroids, gate)
        jj = np.repeat(np.arange(len(self.cur)), [len(x) for x in pairs])
        ii = np.fromiter((i for x in pairs for i in x), dtype=np.int64, count=len(jj))
        if not len(ii):
            return cost
        dist = np.linalg.norm(self.cur.centroids[jj] - at[ii], axis=1)
        total = (dist / gate) ** 2
        if shape:
            change = np.log(self.cur.areas[jj] / src.areas[ii]) / self.area_scale
            total += np.minimum(change**2, 1.0)
        if shape and src.nbrs is not None:
            a, b = src.nbrs[ii], self.nbrs[jj]
            total += np.abs(a - b) / np.maximum(np.maximum(a, b), 1)
        cost[ii, jj] = total
        return cost


def _assign(cost: np.ndarray, death: np.ndarray, birth: float) -> list[tuple[int, int]]:
    """Globally optimal (row, column) matches among the finite entries of ``cost``, where
    leaving row ``r`` unmatched costs ``death[r]`` and leaving a column unmatched ``birth``
    (the alternative costs of Jaqaman et al. 2008): a link is made only where it costs less than
    the row's end and the column's start together."""
    gain = cost - death[:, None] - birth
    gain[gain >= 0] = np.inf
    finite = np.isfinite(gain)
    if not finite.any():
        return []
    busy_rows, busy_cols = finite.any(axis=1), finite.any(axis=0)
    sub = gain[np.ix_(busy_rows, busy_cols)]
    r_idx, c_idx = np.flatnonzero(busy_rows), np.flatnonzero(busy_cols)
    padded = np.full((len(r_idx), len(c_idx) + len(r_idx)), np.inf)
    padded[:, : len(c_idx)] = sub
    padded[np.arange(len(r_idx)), len(c_idx) + np.arange(len(r_idx))] = 0.0
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
