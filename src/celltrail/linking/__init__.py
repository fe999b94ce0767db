"""Linking per-frame detections into tracks and lineages: our online constraint linker and
laptrack, behind one call ``(frames, store, params, cell_diameter) -> TrackingResult``."""

from __future__ import annotations

from collections.abc import Callable

from celltrail.core.errors import InputError
from celltrail.linking.constraint import ConstraintLinker, LinkParams, division_cost, link
from celltrail.linking.laptrack import link_laptrack
from celltrail.linking.objects import FrameObjects, equivalent_diameters, measure

#: The linkers by name; the first is the default.
LINKERS: dict[str, Callable[..., object]] = {"celltrail": link, "laptrack": link_laptrack}


def get_linker(name: str) -> Callable[..., object]:
    """The linking function called ``name`` (one of :data:`LINKERS`)."""
    if name not in LINKERS:
        raise InputError(None, f"unknown linker {name!r}; choose one of {', '.join(LINKERS)}")
    return LINKERS[name]


__all__ = ["LINKERS", "ConstraintLinker", "FrameObjects", "LinkParams", "division_cost",
           "equivalent_diameters", "get_linker", "link", "link_laptrack", "measure"]
