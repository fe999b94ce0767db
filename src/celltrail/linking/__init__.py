"""Linking per-frame detections into tracks and lineages."""

from celltrail.linking.constraint import ConstraintLinker, LinkParams, link
from celltrail.linking.objects import FrameObjects, equivalent_diameters, measure

__all__ = ["ConstraintLinker", "FrameObjects", "LinkParams", "equivalent_diameters", "link",
           "measure"]
