"""Per-object memory bank with score-based eviction (BoxTrack, Sec. 3.2).

SAM2 keeps the last 7 frames (first in, first out). BoxTrack keeps the 7 best: a frame enters
only when its candidate passed the quality thresholds, and when the bank is full the entry with
the lowest score recorded at insertion leaves, so one bad frame cannot push out good ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from celltrail.methods.boxtrack.patch import Patch


@dataclass
class MemoryEntry:
    """One remembered frame of an object: its token, mask and selection score."""

    frame: int
    token: np.ndarray
    score: float
    mask: Patch | None = None


@dataclass
class MemoryBank:
    """At most ``size`` entries; ``policy`` is ``"score"`` (BoxTrack) or ``"fifo"`` (SAM2)."""

    size: int = 7
    policy: str = "score"
    entries: list[MemoryEntry] = field(default_factory=list)

    def add(self, entry: MemoryEntry) -> bool:
        """Store ``entry``; when full, evict the oldest (FIFO) or the lowest-scored entry.

        Under the score policy a new entry scoring below every stored one is not kept; returns
        whether it was.
        """
        if len(self.entries) < self.size:
            self.entries.append(entry)
            return True
        if self.policy == "fifo":
            self.entries.pop(0)
            self.entries.append(entry)
            return True
        worst = min(range(len(self.entries)), key=lambda i: self.entries[i].score)
        if entry.score < self.entries[worst].score:
            return False
        self.entries.pop(worst)
        self.entries.append(entry)
        return True

    def best_mask(self) -> Patch | None:
        """The mask of the highest-scored entry: the object's most trusted appearance."""
        kept = [e for e in self.entries if e.mask is not None]
        return max(kept, key=lambda e: e.score).mask if kept else None

    def affinity(self, tokens: np.ndarray) -> np.ndarray:
        """Cosine similarity of each row of ``tokens`` with the mean remembered token (0 when
        nothing is remembered)."""
        if not self.entries:
            return np.zeros(len(tokens))
        ref = np.mean([e.token for e in self.entries], axis=0)
        norms = np.linalg.norm(tokens, axis=1) * np.linalg.norm(ref) + 1e-8
        return tokens @ ref / norms
