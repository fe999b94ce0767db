"""CellBoxify (instance segmentation learnt from bounding boxes), and its masks linked into
tracks by the classical linker."""

from celltrail.methods.cellboxify.options import CellBoxifyOptions
from celltrail.methods.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "CellBoxifySegmenter": "segmenter", "CellBoxifyTracker": "tracker",
    "box_labels": "segmenter", "coco_results": "segmenter", "instance_masks": "segmenter",
    "paint": "segmenter", "paint_scored": "segmenter"})

__all__ = ["CellBoxifyOptions", "CellBoxifySegmenter", "CellBoxifyTracker", "box_labels",
           "coco_results", "instance_masks", "paint", "paint_scored"]
