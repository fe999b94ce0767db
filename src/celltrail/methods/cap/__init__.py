"""CAP (Cell as Point): one-stage point tracking of cells and their lineage."""

from celltrail.methods.cap.model import WEIGHTS, model_path, shipped_models
from celltrail.methods.cap.tracker import CAPTracker

__all__ = ["WEIGHTS", "CAPTracker", "model_path", "shipped_models"]
