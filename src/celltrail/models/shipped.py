"""Models that ship inside the package, one file per training dataset, found by name or path."""

from __future__ import annotations

from pathlib import Path

from celltrail.core.errors import InputError

#: Where shipped weights live: ``weights/<kind>/<name>.pt``.
WEIGHTS_ROOT = Path(__file__).resolve().parents[1] / "weights"


class ShippedWeights:
    """The shipped models of one kind (``"embedtrack"``, ``"cap"``)."""

    def __init__(self, kind: str) -> None:
        self.folder = WEIGHTS_ROOT / kind

    def names(self) -> list[str]:
        """Names of the models that ship with celltrail."""
        return sorted(p.stem for p in self.folder.glob("*.pt"))

    def path(self, model: str | Path) -> Path:
        """The checkpoint for ``model``: a shipped model's name, else a file path."""
        if (self.folder / f"{model}.pt").is_file() and Path(model).suffix != ".pt":
            return self.folder / f"{model}.pt"
        path = Path(model)
        if not path.is_file():
            names = ", ".join(self.names()) or "none"
            raise InputError(path, f"no such model file, and not a shipped model ({names})")
        return path
