"""Options of the classical pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from celltrail.methods.options import Options
from celltrail.methods.shared_options import diameter_option, linker_option, preset_option


@dataclass(frozen=True)
class ClassicalOptions(Options):
    """Threshold and watershed segmentation with a modality preset, then linking."""

    method = "classical"

    preset: str = preset_option()
    diameter: float | None = diameter_option()
    linker: str = linker_option()
