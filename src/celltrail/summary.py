"""The end-of-run summary of a tracking result, and warnings about results that look wrong.

A run must never end silently empty: a detector that finds no cell in most frames is almost
always run at the wrong scale or modality, and object counts far above the first frame's are
what a model applied to data unlike its training set produces. So are tracks that keep breaking:
more tracks beginning without a parent after frame 0 than a frame holds cells means that, on
average, every cell lost its identity at least once (unless that many cells entered the field).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from celltrail.core.lineage import Lineage

#: Counts above this multiple of the first frame's are suspect: a population at most doubles
#: in one cell cycle, and a time-lapse rarely covers more than about one and a half cycles.
JUMP = 3.0


def cells_per_frame(lineage: Lineage, frames: int) -> np.ndarray:
    """Cells in each frame: the tracks alive there (a CTC track is one object per frame)."""
    change = np.zeros(frames + 1, np.int64)
    for track in lineage.values():
        change[max(track.begin, 0)] += 1
        change[min(track.end + 1, frames)] -= 1
    return np.cumsum(change)[:frames]


def warnings_for(counts: np.ndarray, cause: str) -> list[str]:
    """What looks wrong in the cells-per-frame ``counts``; ``cause`` is the likely cause of
    empty frames."""
    found: list[str] = []
    empty = int(np.sum(counts == 0))
    if empty and 2 * empty > len(counts):
        found.append(f"no cell found in {empty} of {len(counts)} frames: probably {cause}")
    elif empty:
        found.append(f"no cell found in {empty} of {len(counts)} frames")
    if len(counts) and counts[0] > 0 and counts.max() > JUMP * counts[0]:
        t = int(np.argmax(counts))
        found.append(f"{counts[t]} cells in frame {t}, over {JUMP:g} times the {counts[0]} of "
                     "frame 0: false objects? (a model on data unlike its training set, or a "
                     "diameter too small)")
    return found


def broken_tracks(lineage: Lineage, counts: np.ndarray) -> list[str]:
    """A warning when more tracks begin after frame 0 without a parent than the cells of a
    median frame (none otherwise)."""
    new = sum(1 for track in lineage.values() if track.begin > 0 and not track.parent)
    median = float(np.median(counts)) if len(counts) else 0.0
    if new <= median or not median:
        return []
    return [f"{new} tracks begin after frame 0 without a parent, more than the {median:g} cells "
            "of a median frame: tracks broken? (a model or diameter unlike these images), or "
            "many cells entering the field"]


def summary_lines(lineage: Lineage, frames: int, settings: Mapping[str, str]) -> list[str]:
    """A short summary: cells per frame, tracks, divisions and the settings with their origin."""
    counts = cells_per_frame(lineage, frames)
    low, mid, high = (f(counts) if frames else 0 for f in (np.min, np.median, np.max))
    lines = [f"cells per frame: min {low}, median {mid:g}, max {high} ({frames} frames)",
             f"tracks: {len(lineage)}, divisions: {len(lineage.divisions())}"]
    lines += [f"{name}: {value}" for name, value in settings.items()]
    if "diameter" in settings:
        cause = (f"the preset ({settings.get('preset', '?').split(' (')[0]}) or the cell "
                 f"diameter ({settings['diameter'].split(' (')[0]}) does not fit these images; "
                 "try another --preset or --diameter")
    else:
        cause = "the method or its model does not fit these images"
    found = warnings_for(counts, cause) + broken_tracks(lineage, counts)
    return lines + [f"warning: {w}" for w in found]

