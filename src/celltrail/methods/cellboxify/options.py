"""Options of CellBoxify as a tracker (its masks linked over time)."""

from __future__ import annotations

from dataclasses import dataclass

from celltrail.methods.options import Options, option
from celltrail.methods.shared_options import linker_option


def _needs_model() -> str:
    from celltrail.models.zoo import model_names

    return (f"cellboxify needs a model: a checkpoint path or a model by name "
            f"({', '.join(model_names('cellboxify')) or 'none'})")


@dataclass(frozen=True)
class CellBoxifyOptions(Options):
    """Instance segmentation learnt from boxes, then linking."""

    method = "cellboxify"

    model: str | None = option(None, "The model: a name (`celltrail models`) or a checkpoint "
                                     "path; required (each is trained on one kind of data).",
                               required=_needs_model)
    min_score: float = option(0.5, "Detections at least this confident become cells.",
                              positive=True)
    linker: str = linker_option()
