"""The classical baseline: threshold + watershed segmentation, then linking."""

from celltrail.methods.classical.options import ClassicalOptions
from celltrail.methods.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {"ClassicalTracker": "tracker"})

__all__ = ["ClassicalOptions", "ClassicalTracker"]
