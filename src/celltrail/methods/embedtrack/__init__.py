"""EmbedTrack (Löffler & Mikut 2022): one CNN for segmentation and tracking offsets."""

from celltrail.methods.embedtrack.options import EmbedTrackOptions
from celltrail.methods.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {"EmbedTracker": "tracker"})

__all__ = ["EmbedTrackOptions", "EmbedTracker"]
