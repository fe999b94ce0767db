"""Options of CAP (Cell as Point)."""

from __future__ import annotations

from dataclasses import dataclass

from celltrail.methods.options import Options, option
from celltrail.methods.shared_options import (
    device_option,
    diameter_option,
    model_option,
    preset_option,
)


@dataclass(frozen=True)
class CAPOptions(Options):
    """One-stage point tracking of cells and their lineage."""

    method = "cap"

    model: str = model_option("DIC-C2DH-HeLa+Fluo-N2DH-SIM+")
    preset: str = preset_option()
    diameter: float | None = diameter_option()
    new_cells: bool = option(True, "Add the cells the detector finds later, and let it decide "
                                   "where tracks end.")
    window: int | None = option(None, "Frames per window (unset: the model's training window).",
                                positive=True)
    device: str = device_option()
