"""How well a prompt segmenter segments the cells it is shown, on a frame with true masks.

Each true cell is prompted with its own box, as BoxTrack prompts the first frame, and the painted
label image is scored with the Cell Tracking Challenge's SEG: a true cell's score is the IoU of
the painted region covering over half of it, 0 where none does; SEG is their mean. It measures a
fine-tuned model on a frame it did not train on (``celltrail train prompt-segmenter --from``).
"""

from __future__ import annotations

import numpy as np

from celltrail.io.boxes import mask_boxes
from celltrail.methods.boxtrack.config import BoxTrackConfig
from celltrail.methods.boxtrack.segmenters import PromptSegmenter
from celltrail.methods.boxtrack.tracker import prompted_frame
from celltrail.metrics.ctc import seg_score


def prompted_seg(segmenter: PromptSegmenter, image: np.ndarray, truth: np.ndarray) -> float:
    """SEG of the masks ``segmenter`` paints on ``image`` from the boxes of ``truth``'s cells,
    at the scale their median box gives (as BoxTrack sets it)."""
    prompts = mask_boxes(truth)
    segmenter.set_scale(float(np.median(np.sqrt(prompts["w"] * prompts["h"]))))
    return seg_score(prompted_frame(segmenter, BoxTrackConfig(), image, prompts), truth)
