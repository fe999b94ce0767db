"""CAP's representation of cells as points (Fig. 2 of the paper), and the way back.

Each tracked cell has three point trajectories over a window of frames: the cell itself (the
mother, M) and its two possible daughters (D1, D2), each with a visibility. While M has not
divided, M is visible at the cell's centre and D1, D2 are invisible and sit on it; after the
division M is invisible and each daughter is visible at its own centre from the frame it appears
(one or both). When the cell leaves or dies, all three are invisible.

:func:`encode` builds these trajectories (with which of them are supervised) from ground-truth
centres and a lineage; :func:`read_window` reads predicted ones back into point tracks, which is
also what rolling-window inference does frame by frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from celltrail.core.lineage import Lineage, Track
from celltrail.models.cap import POINTS

#: Positions by track label, then by frame: (y, x).
Positions = Mapping[int, Mapping[int, np.ndarray]]
#: ``review(t, labels, points)`` looks at the points (K, 2) of the tracks ``labels`` (K,) in frame
#: ``t`` (in the order the tracks were made) and returns them, perhaps moved (K, 2), which of them
#: to drop (K,) (off the image, on a cell an older track holds, or on no cell for too long), the
#: centres (M, 2) of new cells (entered, lost by their track, or born) and each one's mother
#: (M,): the label of the track that divided into it and the cell at its point, or 0.
Review = Callable[[int, Sequence[int], np.ndarray],
                  tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class Trajectories:
    """Targets for one window of T frames and N query cells.

    ``points`` (T, N, 3, 2) and ``visible`` (T, N, 3); ``point_valid`` and ``visible_valid``
    say which entries are supervised (no point target once a cell is gone or during an
    annotation gap, and no target at all during a gap).
    """

    points: np.ndarray
    point_valid: np.ndarray
    visible: np.ndarray
    visible_valid: np.ndarray


def _continuation(lineage: Lineage) -> dict[int, int]:
    """Parent → child for parents with exactly one child: the same cell under a new label (a
    gap in the annotation, or a relabelling)."""
    return {parent: kids[0] for parent, kids in lineage.children().items() if len(kids) == 1}


def _chain(label: int, following: Mapping[int, int]) -> list[int]:
    chain = [label]
    while chain[-1] in following:
        chain.append(following[chain[-1]])
    return chain


def _where(chain: Sequence[int], positions: Positions, t: int) -> np.ndarray | None:
    for label in chain:
        if t in positions.get(label, {}):
            return np.asarray(positions[label][t], dtype=np.float32)
    return None


def encode(positions: Positions, lineage: Lineage, cells: Sequence[int], start: int,
           length: int) -> Trajectories:
    """Trajectories of ``cells`` (labels present at frame ``start``) over frames
    ``start .. start + length − 1``. Daughters are the first two children of the cell's last
    label (labels that continue a cell with a single child count as the same cell)."""
    following = _continuation(lineage)
    children = lineage.children()
    n = len(cells)
    points = np.zeros((length, n, POINTS, 2), np.float32)
    point_valid = np.zeros((length, n, POINTS), bool)
    visible = np.zeros((length, n, POINTS), bool)
    visible_valid = np.zeros((length, n, POINTS), bool)
    for i, cell in enumerate(cells):
        chain = _chain(cell, following)
        end = lineage[chain[-1]].end
        kids = sorted(children.get(chain[-1], []))[:2]
        daughters = [_chain(kid, following) for kid in kids] if len(kids) == 2 else []
        for dt in range(length):
            t = start + dt
            mother = _where(chain, positions, t)
            if mother is not None:
                points[dt, i] = mother
                point_valid[dt, i] = visible_valid[dt, i] = True
                visible[dt, i, 0] = True
                continue
            if t <= end:  # a gap in the annotation: nothing is known
                continue
            visible_valid[dt, i] = True
            seen = []
            for k, daughter in enumerate(daughters, start=1):
                where = _where(daughter, positions, t)
                if where is not None:
                    points[dt, i, k], point_valid[dt, i, k], visible[dt, i, k] = where, True, True
                    seen.append(where)
            if seen:  # the mother's point follows its daughters
                points[dt, i, 0], point_valid[dt, i, 0] = np.mean(seen, axis=0), True
    return Trajectories(points, point_valid, visible, visible_valid)


@dataclass
class PointTrack:
    """One track of the result: its parent (0 for none) and its centre in each frame."""

    parent: int = 0
    positions: dict[int, np.ndarray] = field(default_factory=dict)


class PointTracks(dict[int, PointTrack]):
    """Point tracks by label (1, 2, … in order of creation)."""

    def new(self, parent: int, t: int, where: np.ndarray) -> int:
        """Start a track at frame ``t``; returns its label."""
        label = len(self) + 1
        self[label] = PointTrack(parent, {t: np.asarray(where, dtype=np.float32)})
        return label

    def lineage(self) -> Lineage:
        """The CTC lineage of the tracks; tracks without positions are left out (their
        daughters then have no parent)."""
        kept = {label for label, track in self.items() if track.positions}
        return Lineage(Track(label, min(track.positions), max(track.positions),
                             track.parent if track.parent in kept else 0)
                       for label, track in self.items() if label in kept)


def read_window(points: np.ndarray, visible: np.ndarray, labels: Sequence[int], start: int,
                tracks: PointTracks, stop_at_division: bool = True, radius: float = 0.0,
                review: Review | None = None, persist: bool = False) -> tuple[int, list[int]]:
    """Extend ``tracks`` with a window's predictions: ``points`` (T, N, 3, 2) and boolean
    ``visible`` (T, N, 3) for the query tracks ``labels``, whose frame 0 is ``start``.

    Frame by frame: a visible mother continues its track; an invisible mother with two visible
    daughters ends, and each daughter starts a track with it as parent (a division); with one
    visible daughter the mother's track follows that point (no division); an all-invisible
    cell ends. A daughter point within ``radius`` of another track's point in that frame is
    that cell, not a new one (so a query put on a newborn daughter that "divides" onto her
    sister adds no track). With ``stop_at_division`` reading stops after the first frame with
    a division (the next window starts there, Algorithm 1); otherwise daughters are followed
    on their own points. With ``review``, each frame's points are checked: a point may be
    moved, a dropped track ends in the frame before, and each new cell starts a track, reading
    stopping there as at a division: without parent, or, where the review names her mother,
    as her daughter, the mother ending in the frame before and her point starting the second
    daughter. With ``persist``, a cell whose points are all invisible goes on at its own point
    (the review decides whether it is still there).
    Returns the last frame read and the labels alive in it.
    """
    alive = dict(enumerate(labels))  # query index -> label of its mother
    born: dict[tuple[int, int], int] = {}  # (query index, daughter point) -> label
    last = start
    for dt in range(1, points.shape[0]):
        t = start + dt
        last = t
        ended = _follow(points[dt], visible[dt], t, tracks, alive, born, persist)
        divided = _divide(points[dt], visible[dt], t, tracks, ended, born, radius)
        appeared: list[int] = []
        if review is not None:
            alive, born, appeared = _review(review, t, tracks, alive, born)
        if appeared or (divided and stop_at_division):
            return last, [*alive.values(), *born.values(), *appeared]
    return last, [*alive.values(), *born.values()]


def _follow(points: np.ndarray, visible: np.ndarray, t: int, tracks: PointTracks,
            alive: dict[int, int], born: dict[tuple[int, int], int], persist: bool
            ) -> list[tuple[int, int]]:
    """Frame ``t`` of :func:`read_window` (``points`` (N, 3, 2), ``visible`` (N, 3)): visible
    daughters and mothers continue their tracks; the others leave ``born`` and ``alive``. The
    mothers that ended, as (query index, label)."""
    for (i, k), label in list(born.items()):
        if visible[i, k]:
            tracks[label].positions[t] = points[i, k]
        else:
            del born[(i, k)]
    ended = []
    for i, label in list(alive.items()):
        if visible[i, 0] or (persist and not visible[i, 1:].any()):
            tracks[label].positions[t] = points[i, 0]
        else:
            ended.append((i, label))
            del alive[i]
    return ended


def _divide(points: np.ndarray, visible: np.ndarray, t: int, tracks: PointTracks,
            ended: list[tuple[int, int]], born: dict[tuple[int, int], int], radius: float
            ) -> bool:
    """The visible daughters of the mothers that ``ended`` in frame ``t`` (none within
    ``radius`` of a point already there): one continues her mother's track, two start tracks
    of their own (added to ``born``). Whether a cell divided."""
    taken = [track.positions[t] for track in tracks.values() if t in track.positions]
    divided = False
    for i, label in ended:
        daughters = [k for k in range(1, POINTS) if visible[i, k]
                     and not near(points[i, k], taken, radius)]
        if len(daughters) == 1:
            born[(i, daughters[0])] = label
            tracks[label].positions[t] = points[i, daughters[0]]
        elif daughters:
            for k in daughters:
                born[(i, k)] = tracks.new(label, t, points[i, k])
            divided = True
        taken += [points[i, k] for k in daughters]
    return divided


def _review(review: Review, t: int, tracks: PointTracks, alive: dict[int, int],
            born: dict[tuple[int, int], int]
            ) -> tuple[dict[int, int], dict[tuple[int, int], int], list[int]]:
    """Frame ``t``'s points checked by ``review`` (see :func:`read_window`): ``alive`` and
    ``born`` without the tracks that ended, and the tracks of the new cells."""
    here = [label for label, track in tracks.items() if t in track.positions]
    where, drop, found, mothers = review(t, here, np.array(
        [tracks[label].positions[t] for label in here], np.float32).reshape(-1, 2))
    gone = {label for label, dropped in zip(here, drop, strict=True) if dropped}
    for label, point in zip(here, where, strict=True):
        tracks[label].positions[t] = point
    for label in gone:
        del tracks[label].positions[t]
    alive = {i: label for i, label in alive.items() if label not in gone}
    born = {key: label for key, label in born.items() if label not in gone}
    appeared = []
    for centre, mother in zip(found, mothers.tolist(), strict=True):
        parent = mother if mother and t in tracks[mother].positions else 0
        if parent:  # she ends; her point and the new cell are her daughters
            alive = {i: label for i, label in alive.items() if label != parent}
            born = {key: label for key, label in born.items() if label != parent}
            appeared.append(tracks.new(parent, t, tracks[parent].positions.pop(t)))
        appeared.append(tracks.new(parent, t, centre))
    return alive, born, appeared


def near(point: np.ndarray, others: Sequence[np.ndarray] | np.ndarray, radius: float) -> bool:
    """Whether ``point`` lies within ``radius`` of one of ``others``."""
    return bool(radius > 0 and len(others)
                and np.min(np.linalg.norm(np.asarray(others) - point, axis=1)) < radius)
