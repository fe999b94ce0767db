"""Linking per-frame detections into tracks and lineages."""

from celltrail.linking.constraint import ConstraintLinker, LinkParams, division_cost, link
from celltrail.linking.objects import FrameObjects, equivalent_diameters, measure

__all__ = ["ConstraintLinker", "FrameObjects", "LinkParams", "division_cost",
           "equivalent_diameters", "link", "measure"]
