"""Options of BoxTrack (its tracking module's constants are in :mod:`.config`)."""

from __future__ import annotations

from dataclasses import dataclass

from celltrail.methods.options import Options, option
from celltrail.methods.shared_options import device_option, model_option, preset_option

#: The shipped model used when none is named: the generalist, trained on all shared sequences
#: and simulated ones of every modality.
DEFAULT_MODEL = "general"
#: BoxTrack's segmentation backends; ``auto`` chooses on the prompted frame.
BACKENDS = ("auto", "learned", "classical")


@dataclass(frozen=True)
class BoxTrackOptions(Options):
    """Tracking every cell from one box each (Khalid et al., "Box it and Track it")."""

    method = "boxtrack"

    backend: str = option("auto", "Segmenter: auto (the one whose masks fit the prompt boxes "
                                  "best: learned, adapted or classical with each preset), "
                                  "learned or classical (with preset).", choices=BACKENDS)
    preset: str = preset_option()
    model: str = model_option(DEFAULT_MODEL)
    adapt: bool = option(True, "Fine-tune the learned backend on the prompted frame from its "
                               "boxes first (up to a minute).")
    new_cells: bool | None = option(None, "Start tracks for cells nobody prompted (unset: with "
                                          "the learned backend only).")
    divisions: bool = option(True, "Detect cell divisions.")
    box_frame_base: int = option(0, "Number of the first frame in a box file (1 for MOT-style "
                                    "bbox.txt).", minimum=0)
    device: str = device_option()
