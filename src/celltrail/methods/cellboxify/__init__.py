"""CellBoxify (instance segmentation learnt from bounding boxes), and its masks linked into
tracks by the classical linker."""

from celltrail.methods.cellboxify.segmenter import (
    SHIPPED,
    CellBoxifySegmenter,
    box_labels,
    instance_masks,
    paint,
    paint_scored,
)
from celltrail.methods.cellboxify.tracker import CellBoxifyTracker

__all__ = ["SHIPPED", "CellBoxifySegmenter", "CellBoxifyTracker", "box_labels", "instance_masks",
           "paint", "paint_scored"]
