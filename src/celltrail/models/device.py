"""The torch device a learned method runs on, resolved in one place from its ``device``
option (:func:`celltrail.methods.shared_options.device_option`)."""

from __future__ import annotations

import torch

from celltrail.core.errors import OptionError
from celltrail.threads import use_torch_threads

#: Why a device named outright cannot be used, by device.
MISSING = {
    "cuda": "no CUDA device: torch.cuda.is_available() is False (a CPU build of torch, or no "
            "GPU driver); choose cpu or auto",
    "mps": "no MPS device: torch.backends.mps.is_available() is False (MPS needs Apple "
           "silicon); choose cpu or auto",
}


def resolve_device(name: str) -> torch.device:
    """The device ``name`` names: ``cpu``, ``cuda``, ``mps``, or ``auto`` (CUDA if torch sees
    it, else MPS, else the CPU). A device torch does not see raises :class:`OptionError`.

    Every learned method passes here when it is built, before its network runs, so torch's
    intra-op threads are set here too (:func:`celltrail.threads.use_torch_threads`)."""
    use_torch_threads()
    seen = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(),
            "cpu": True}
    if name == "auto":
        return torch.device(next(device for device, there in seen.items() if there))
    if name not in seen:
        raise OptionError("device", f"must be one of auto, {', '.join(sorted(seen))}, not "
                                    f"{name!r}")
    if not seen[name]:
        raise OptionError("device", MISSING[name])
    return torch.device(name)
