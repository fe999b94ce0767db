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


def seg_score(found: np.ndarray, truth: np.ndarray) -> float:
    """CTC SEG of label image ``found`` against ``truth`` (nan when ``truth`` has no cell)."""
    n, m = int(found.max()), int(truth.max())
    overlap = np.bincount(found.astype(np.int64).ravel() * (m + 1) + truth.ravel(),
                          minlength=(n + 1) * (m + 1)).reshape(n + 1, m + 1)[1:, 1:]
    sizes = np.bincount(truth.ravel(), minlength=m + 1)[1:]
    present = sizes > 0
    if not present.any():
        return float("nan")
    best = overlap.argmax(0)
    hit = overlap[best, np.arange(m)]
    union = sizes + overlap.sum(1)[best] - hit
    scores = np.where(2 * hit > sizes, hit / np.maximum(union, 1), 0.0)
    return float(scores[present].mean())


def prompted_seg(segmenter: PromptSegmenter, image: np.ndarray, truth: np.ndarray) -> float:
    """SEG of the masks ``segmenter`` paints on ``image`` from the boxes of ``truth``'s cells,
    at the scale their median box gives (as BoxTrack sets it)."""
    prompts = mask_boxes(truth)
    segmenter.set_scale(float(np.median(np.sqrt(prompts["w"] * prompts["h"]))))
    return seg_score(prompted_frame(segmenter, BoxTrackConfig(), image, prompts), truth)
