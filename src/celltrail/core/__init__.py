"""The data model: image sequences, lineages and tracking results."""

from celltrail.core.errors import CellTrailError, InputError
from celltrail.core.lineage import Lineage, Track
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence, open_sequence

__all__ = [
    "CellTrailError",
    "ImageSequence",
    "InputError",
    "Lineage",
    "MaskStore",
    "Track",
    "TrackingResult",
    "open_sequence",
]
