"""The lineage table (CTC ``L B E P``) and its graph.

A track is one unbroken run of a label over frames ``begin..end``; ``parent`` is the track it came
from (0 for none). A division gives a parent two children; a gap in a cell's track is declared the
CTC way, as a new track whose only parent is the interrupted one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import networkx as nx
import numpy as np


@dataclass(frozen=True)
class Track:
    """One row ``L B E P`` of a CTC lineage table."""

    label: int
    begin: int
    end: int
    parent: int = 0


class Lineage(Mapping[int, Track]):
    """Tracks by label, with the checks and views the CTC format needs."""

    def __init__(self, tracks: Iterable[Track] = ()) -> None:
        self._tracks: dict[int, Track] = {}
        for track in tracks:
            if track.label in self._tracks:
                raise ValueError(f"label {track.label} appears twice in the lineage")
            self._tracks[track.label] = track

    def __getitem__(self, label: int) -> Track:
        return self._tracks[label]

    def __iter__(self):
        return iter(self._tracks)

    def __len__(self) -> int:
        return len(self._tracks)

    def __repr__(self) -> str:
        return f"Lineage({len(self)} tracks, {len(self.divisions())} divisions)"

    @classmethod
    def from_array(cls, table: np.ndarray) -> Lineage:
        """Build from an (N, 4) integer array of ``L B E P`` rows."""
        table = np.asarray(table, dtype=np.int64).reshape(-1, 4)
        return cls(Track(int(l_), int(b), int(e), int(p)) for l_, b, e, p in table)

    def to_array(self) -> np.ndarray:
        """The table as an (N, 4) int64 array sorted by label."""
        rows = [(t.label, t.begin, t.end, t.parent) for t in sorted(self.values(), key=_label)]
        return np.array(rows, dtype=np.int64).reshape(-1, 4)

    def children(self) -> dict[int, list[int]]:
        """Children labels of every label that has any."""
        kids: dict[int, list[int]] = {}
        for track in self.values():
            if track.parent:
                kids.setdefault(track.parent, []).append(track.label)
        return kids

    def divisions(self) -> dict[int, list[int]]:
        """Parents with two or more children (mitoses)."""
        return {p: c for p, c in self.children().items() if len(c) >= 2}

    def to_graph(self) -> nx.DiGraph:
        """Lineage graph: a node per track (with ``begin``, ``end``), parent → child edges."""
        graph = nx.DiGraph()
        for track in self.values():
            graph.add_node(track.label, begin=track.begin, end=track.end)
        for track in self.values():
            if track.parent:
                graph.add_edge(track.parent, track.label)
        return graph

    def structure_errors(self) -> list[str]:
        """Every violation of the CTC table invariants that needs no masks, one line each."""
        errors = []
        for t in sorted(self.values(), key=_label):
            if t.label <= 0:
                errors.append(f"label {t.label} is not a positive integer")
            if t.begin < 0 or t.end < t.begin:
                errors.append(f"label {t.label}: begin {t.begin} and end {t.end} are not ordered")
            if t.parent == t.label:
                errors.append(f"label {t.label} is its own parent")
            elif t.parent and t.parent not in self:
                errors.append(f"label {t.label}: parent {t.parent} is not in the table")
            elif t.parent and self[t.parent].end >= t.begin:
                errors.append(
                    f"label {t.label} begins at frame {t.begin} but its parent {t.parent} "
                    f"ends at frame {self[t.parent].end}"
                )
        return errors


@dataclass
class TrackBook:
    """The lineage as trackers grow it, frame by frame: start a track, extend it, read the
    ``L B E P`` table. Labels are 1, 2, ... in order of creation unless one is given."""

    rows: dict[int, list[int]] = field(default_factory=dict)  # label -> [begin, end, parent]
    next_label: int = 1

    def __len__(self) -> int:
        return len(self.rows)

    def new(self, t: int, parent: int = 0, label: int | None = None) -> int:
        """Start a track at frame ``t`` (with ``label``, else the next free one)."""
        label = self.next_label if label is None else label
        self.next_label = max(self.next_label, label + 1)
        self.rows[label] = [t, t, parent]
        return label

    def extend(self, label: int, t: int) -> None:
        """The track ``label`` goes on to frame ``t``."""
        self.rows[label][1] = t

    def continue_or_restart(self, label: int, t: int) -> int:
        """The label to paint at ``t``: the same track, or after a gap a new one whose parent
        it is (the CTC rule)."""
        row = self.rows[label]
        if row[0] == t or row[1] == t - 1:
            row[1] = t
            return label
        return self.new(t, parent=label)

    def lineage(self) -> Lineage:
        """The CTC lineage of every track started so far."""
        return Lineage(Track(label, b, e, p) for label, (b, e, p) in self.rows.items())


def _label(track: Track) -> int:
    return track.label


def present(mask: np.ndarray) -> list[int]:
    """The labels painted in a track mask (non-negative, small: track numbers), counted rather
    than sorted."""
    return (np.flatnonzero(np.bincount(mask.ravel())[1:]) + 1).tolist()


def lineage_from_presence(
    presence: Mapping[int, Iterable[int]], parents: Mapping[int, int]
) -> tuple[Lineage, dict[tuple[int, int], int]]:
    """Rebuild a valid lineage after frames or pixels were removed (a crop, a frame step).

    ``presence`` gives the frames in which each label is still seen, ``parents`` the original
    parent of each label. A label seen in several runs of consecutive frames keeps its label for
    the first run; each later run becomes a new track whose parent is the run before (the CTC
    way to declare a gap). A parent that is no longer seen is replaced by its nearest ancestor
    still seen, or 0. Returns the lineage and ``{(old label, frame): new label}``.
    """
    next_label = max(presence, default=0) + 1
    runs: dict[int, list[tuple[int, int, int]]] = {}  # old label -> [(new label, begin, end)]
    for label in sorted(presence):
        frames = sorted(set(presence[label]))
        pieces: list[tuple[int, int, int]] = []
        for t in frames:
            if pieces and pieces[-1][2] == t - 1:
                pieces[-1] = (pieces[-1][0], pieces[-1][1], t)
            else:
                new = label if not pieces else next_label
                next_label += bool(pieces)
                pieces.append((new, t, t))
        if pieces:
            runs[label] = pieces
    tracks, mapping = [], {}
    for label, pieces in runs.items():
        begin = pieces[0][1]
        parent = parents.get(label, 0)
        while parent and parent not in runs:
            parent = parents.get(parent, 0)
        before = [new for new, _, end in runs.get(parent, []) if end < begin]
        parent = before[-1] if before else 0
        for new, begin, end in pieces:
            tracks.append(Track(new, begin, end, parent))
            mapping.update({(label, t): new for t in range(begin, end + 1)})
            parent = new
    return Lineage(tracks), mapping
