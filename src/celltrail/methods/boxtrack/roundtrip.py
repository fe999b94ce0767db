"""The round-trip check: track a few frames forward from the prompts and back again.

A backend can fit the prompted frame well and still track badly: masks that leave part of a
cell unclaimed let the rest start a track of its own, and masks that stray lose their cells
after a frame or two. Both show within a few frames, and the prompted frame is the one frame
whose truth is known, so the check goes there and back (the forward-backward error of Kalal et
al., ICPR 2010): it follows the prompted cells forward over :data:`FRAMES` frames, prompts every
object of the last frame with its own mask box, follows those back to the prompted frame, and
compares what arrives with the prompts. A cell that comes back to its own box (IoU ≥ 0.5, by
its id) was followed there and back; an object that comes back without a prompt of its own
was made up on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from celltrail.io.boxes import mask_boxes
from celltrail.methods.boxtrack.config import BoxTrackConfig
from celltrail.methods.boxtrack.patch import box_iou
from celltrail.methods.boxtrack.segmenters import PromptSegmenter
from celltrail.methods.boxtrack.tracker import follow

#: Frames the round trip goes forward: at a typical motion of a tenth of a cell per frame, far
#: enough for a failing backend to lose or spawn cells, short enough that few real cells enter,
#: leave or divide on the way.
FRAMES = 3
#: A cell is back in its box at this IoU (PASCAL VOC's detection criterion).
MATCH_IOU = 0.5


@dataclass(frozen=True)
class RoundTrip:
    """What came back to the prompted frame."""

    recall: float  #: share of the scored prompts back in their boxes
    precision: float  #: share of the objects that came back that are prompted cells in their box
    growth: float  #: prompts / objects on the last frame forward (at most 1)

    @property
    def score(self) -> float:
        """F1 of recall and precision, times the growth: tracks started on the way forward
        count against the backend even when they are lost on the way back."""
        total = self.recall + self.precision
        return 2 * self.recall * self.precision / total * self.growth if total else 0.0


def returned_ious(labels: np.ndarray, prompts: pd.DataFrame) -> np.ndarray:
    """Box IoU of each prompt with the object of its id in ``labels`` (0 where it is absent)."""
    found = ndi.find_objects(labels)
    boxes = prompts[["x", "y", "w", "h"]].to_numpy(dtype=np.float64, copy=True)
    boxes[:, 2:] += boxes[:, :2]
    ious = np.zeros(len(prompts))
    for i, label in enumerate(prompts["id"].astype(int)):
        where = found[label - 1] if 0 < label <= len(found) else None
        if where is not None:
            box = np.array([where[1].start, where[0].start, where[1].stop, where[0].stop])
            ious[i] = box_iou(box, boxes[i])[0]
    return ious


def round_trip(segmenter: PromptSegmenter, config: BoxTrackConfig,
               frames: Sequence[np.ndarray], prompts: pd.DataFrame, scored: Sequence[int],
               forward: np.ndarray) -> RoundTrip:
    """Follow the objects of ``forward`` (the last of ``frames``, as tracking ``prompts`` from
    the first gave it) back to the first frame; recall is taken over the prompts at row
    positions ``scored``."""
    back = mask_boxes(forward)
    arrived = forward
    if len(back):
        *_, arrived = follow(segmenter, config, frames[::-1], back)
    home = returned_ious(arrived, prompts) >= MATCH_IOU
    came_back = len(np.unique(arrived)) - 1
    return RoundTrip(recall=float(home[list(scored)].mean()) if len(scored) else 0.0,
                     precision=float(home.sum() / max(came_back, 1)),
                     growth=min(1.0, len(prompts) / max(len(back), 1)))
