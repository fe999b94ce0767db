"""How well an EmbedTrack model segments a frame with true masks that it did not learn from.

The frame is run alone (no tracking) and scored with the Cell Tracking Challenge's SEG. A
scale-normalised model runs at the cell diameter given, which the user's annotations measure;
it scores a fine-tuned model before and after (``celltrail train embedtrack --from``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from celltrail.core.sequence import ArraySequence
from celltrail.methods.embedtrack.tracker import EmbedTracker
from celltrail.metrics.ctc import seg_score


def held_out_seg(model: str | Path, image: np.ndarray, truth: np.ndarray,
                 diameter: float) -> float:
    """SEG of the masks ``model`` finds on ``image`` against ``truth`` (a scale-normalised model
    at ``diameter`` pixels; other models at the image's own scale)."""
    tracker = EmbedTracker(model=str(model), diameter=diameter)
    found = tracker.track(ArraySequence(np.asarray(image)[None])).masks[0]
    return seg_score(np.asarray(found), truth)
