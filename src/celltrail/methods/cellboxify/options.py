"""Options of CellBoxify as a tracker (its masks linked over time)."""

from __future__ import annotations

from dataclasses import dataclass

from celltrail.methods.options import Options, option
from celltrail.methods.shared_options import (
    device_option,
    linker_option,
    required_model_option,
)


@dataclass(frozen=True)
class CellBoxifyOptions(Options):
    """Instance segmentation learnt from boxes, then linking."""

    method = "cellboxify"

    model: str | None = required_model_option("cellboxify", "cellboxify")
    min_score: float = option(0.5, "Detections at least this confident become cells.",
                              positive=True)
    linker: str = linker_option()
    device: str = device_option()
