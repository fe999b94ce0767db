"""Pictures of results: overlays of contours, track ids and trails on frames, and movies of them.

The lineage tree (:mod:`celltrail.viz.lineage`) and the HTML report (:mod:`celltrail.viz.report`)
need matplotlib; import them from their modules, so importing this package stays light.
"""

from celltrail.viz.movie import write_movie
from celltrail.viz.overlay import overlay_frame, write_overlay

__all__ = ["overlay_frame", "write_movie", "write_overlay"]
