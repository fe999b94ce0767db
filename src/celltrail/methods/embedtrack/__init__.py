"""EmbedTrack (Löffler & Mikut 2022): one CNN for segmentation and tracking offsets."""

from celltrail.methods.embedtrack.model import WEIGHTS, model_path, shipped_models
from celltrail.methods.embedtrack.tracker import EmbedTracker

__all__ = ["WEIGHTS", "EmbedTracker", "model_path", "shipped_models"]
