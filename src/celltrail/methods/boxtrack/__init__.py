"""BoxTrack: segment and track every cell from one bounding box per cell in the first frame."""

from celltrail.methods.boxtrack.options import BACKENDS, BoxTrackOptions
from celltrail.methods.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "BoxTrackConfig": "config", "BoxTracker": "tracker", "Candidates": "segmenters",
    "ClassicalPromptSegmenter": "segmenters", "MemoryBank": "memory", "MemoryEntry": "memory",
    "Patch": "patch", "PromptSegmenter": "segmenters", "box_iou": "patch",
    "make_segmenter": "backends", "read_prompts": "prompts"})

__all__ = ["BACKENDS", "BoxTrackConfig", "BoxTrackOptions", "BoxTracker", "Candidates",
           "ClassicalPromptSegmenter", "MemoryBank", "MemoryEntry", "Patch", "PromptSegmenter",
           "box_iou", "make_segmenter", "read_prompts"]
