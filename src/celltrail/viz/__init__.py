"""Pictures of results: overlays of contours and track ids on frames."""

from celltrail.viz.overlay import overlay_frame, write_overlay

__all__ = ["overlay_frame", "write_overlay"]
