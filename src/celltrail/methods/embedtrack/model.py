"""Finding an EmbedTrack model: a shipped one by dataset name, or a user's checkpoint file."""

from __future__ import annotations

from pathlib import Path

from celltrail.core.errors import InputError

#: Shipped weights, one file per training dataset (``<dataset>.pt``).
WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "embedtrack"


def shipped_models() -> list[str]:
    """Names of the models that ship with celltrail."""
    return sorted(p.stem for p in WEIGHTS.glob("*.pt"))


def model_path(model: str | Path) -> Path:
    """The checkpoint for ``model``: a shipped dataset name, else a file path."""
    if (WEIGHTS / f"{model}.pt").is_file() and Path(model).suffix != ".pt":
        return WEIGHTS / f"{model}.pt"
    path = Path(model)
    if not path.is_file():
        names = ", ".join(shipped_models()) or "none"
        raise InputError(path, f"no such model file, and not a shipped model ({names})")
    return path
