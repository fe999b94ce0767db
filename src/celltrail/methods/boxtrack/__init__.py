"""BoxTrack: segment and track every cell from one bounding box per cell in the first frame."""

from celltrail.methods.boxtrack.backends import BACKENDS, make_segmenter
from celltrail.methods.boxtrack.config import BoxTrackConfig
from celltrail.methods.boxtrack.memory import MemoryBank, MemoryEntry
from celltrail.methods.boxtrack.patch import Patch, box_iou
from celltrail.methods.boxtrack.segmenters import (
    Candidates,
    ClassicalPromptSegmenter,
    PromptSegmenter,
)
from celltrail.methods.boxtrack.tracker import BoxTracker

__all__ = ["BACKENDS", "BoxTrackConfig", "BoxTracker", "Candidates", "ClassicalPromptSegmenter",
           "MemoryBank", "MemoryEntry", "Patch", "PromptSegmenter", "box_iou", "make_segmenter"]
