"""CAP (Cell as Point): one-stage point tracking of cells and their lineage."""

from celltrail.methods.cap.options import CAPOptions
from celltrail.methods.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {"CAPTracker": "tracker"})

__all__ = ["CAPOptions", "CAPTracker"]
