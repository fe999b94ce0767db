"""Pictures of results: overlays of contours and track ids on frames, and movies of them."""

from celltrail.viz.movie import write_movie
from celltrail.viz.overlay import overlay_frame, write_overlay

__all__ = ["overlay_frame", "write_movie", "write_overlay"]
