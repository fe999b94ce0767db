"""Options of EmbedTrack."""

from __future__ import annotations

from dataclasses import dataclass

from celltrail.methods.options import Options, option
from celltrail.methods.shared_options import device_option, model_option

#: The shipped model used when none is named: the scale-normalised generalist, trained on the
#: three shared sequences and simulated ones of every modality.
DEFAULT_MODEL = "general"


@dataclass(frozen=True)
class EmbedTrackOptions(Options):
    """One CNN for segmentation and tracking offsets (Löffler & Mikut 2022)."""

    method = "embedtrack"

    model: str = model_option(DEFAULT_MODEL)
    tta: bool = option(False, "Test-time augmentation (8 rotations and flips; about 8x "
                              "slower).")
    device: str = device_option()
    diameter: float | None = option(None, "Cell diameter in pixels, for a scale-normalised "
                                          "model (general*): frames are resized so cells are "
                                          "the size it was trained on; estimated from the first "
                                          "frame if not given. Other models ignore it.",
                                    positive=True)
