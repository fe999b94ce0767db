"""Options several methods share, defined once: the classical detector's modality preset and
cell diameter, the linker, the model (a shipped name or a checkpoint path) and the device a
network runs on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celltrail.methods.options import option
from celltrail.segmentation.classical import AUTO, DEFAULT_PRESET, PRESETS

#: The linker used unless one is named.
DEFAULT_LINKER = "celltrail"
#: Where a network may run: ``auto`` takes CUDA, else MPS, else the CPU
#: (:func:`celltrail.models.device.resolve_device`).
DEVICES = ("auto", "cpu", "cuda", "mps")
#: The device used unless one is named: the CPU, where every method is tested.
DEFAULT_DEVICE = "cpu"
#: The device option's help.
DEVICE_HELP = ("Where the network runs: cpu, cuda, mps, or auto (CUDA, else MPS, else the CPU); "
               "only cpu is tested.")


def preset_names() -> Sequence[str]:
    """The modality presets: ``auto`` (chosen from the first frame) and every fixed one."""
    return (AUTO, *PRESETS)


def linker_names() -> Sequence[str]:
    """The linkers by name (importing them on first use)."""
    from celltrail.linking import LINKERS

    return tuple(LINKERS)


def preset_option() -> Any:
    """The modality preset of the classical segmentation (the classical method, BoxTrack's
    classical backend, CAP's detector)."""
    return option(DEFAULT_PRESET, f"Modality of the classical segmentation (BoxTrack: its "
                                  f"classical backend; CAP: its detector): "
                                  f"{', '.join(preset_names())}; auto chooses from the first "
                                  f"frame.", choices=preset_names)


def diameter_option() -> Any:
    """The cell diameter in pixels, estimated from the images when not given."""
    return option(None, "Cell diameter in pixels of the classical segmentation (CAP: its "
                        "detector); estimated from the images if not given.", positive=True)


def model_option(default: str) -> Any:
    """The model of a method with a default one."""
    return option(default, "The model: a name (`celltrail models`) or a checkpoint path.")


def linker_option() -> Any:
    """How masks are linked over time."""
    return option(DEFAULT_LINKER, f"How masks are linked over time: "
                                  f"{' or '.join(linker_names())}.", choices=linker_names)


def required_model_option(method: str, kind: str) -> Any:
    """The model of a method that has no default one (each model fits one kind of data)."""

    def problem() -> str:
        from celltrail.models.zoo import model_names

        return (f"{method} needs a model: a checkpoint path or a model by name "
                f"({', '.join(model_names(kind)) or 'none'})")

    return option(None, "The model: a name (`celltrail models`) or a checkpoint path; required "
                        "(each is trained on one kind of data).", required=problem)


def device_option() -> Any:
    """Where a learned method's network runs."""
    return option(DEFAULT_DEVICE, DEVICE_HELP, choices=DEVICES)
