"""Finding a CAP model: a shipped one by the name of its training data, or a checkpoint file."""

from __future__ import annotations

from collections.abc import Iterable

from celltrail.models.shipped import ShippedWeights

SHIPPED = ShippedWeights("cap")
#: Shipped weights, one file per training set (``<datasets>.pt``).
WEIGHTS = SHIPPED.folder
shipped_models = SHIPPED.names
model_path = SHIPPED.path


def model_name(datasets: Iterable[str]) -> str:
    """The name a model trained on ``datasets`` ships under (simulated data not named)."""
    return "+".join(sorted(datasets))
