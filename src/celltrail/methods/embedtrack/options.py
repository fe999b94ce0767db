"""Options of EmbedTrack."""

from __future__ import annotations

from dataclasses import dataclass

from celltrail.methods.options import Options, option


def _needs_model() -> str:
    from celltrail.models.zoo import model_names

    return (f"embedtrack needs a model: a checkpoint path or a model by name "
            f"({', '.join(model_names('embedtrack')) or 'none'})")


@dataclass(frozen=True)
class EmbedTrackOptions(Options):
    """One CNN for segmentation and tracking offsets (Löffler & Mikut 2022)."""

    method = "embedtrack"

    model: str | None = option(None, "The model: a name (`celltrail models`) or a checkpoint "
                                     "path; required (each is trained on one kind of data).",
                               required=_needs_model)
    tta: bool = option(False, "Test-time augmentation (8 rotations and flips; about 8x "
                              "slower).")
