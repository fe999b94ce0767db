"""Finding an EmbedTrack model: a shipped one by dataset name, or a user's checkpoint file."""

from __future__ import annotations

from celltrail.models.shipped import ShippedWeights

SHIPPED = ShippedWeights("embedtrack")
#: Shipped weights, one file per training dataset (``<dataset>.pt``).
WEIGHTS = SHIPPED.folder
shipped_models = SHIPPED.names
model_path = SHIPPED.path
