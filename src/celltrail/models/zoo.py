"""The model zoo: every model celltrail can load, found by name (or taken from a path).

Models are looked up by kind (``prompt_segmenter``, ``embedtrack``, ``cap``, ``cellboxify``)
in three places, first match winning, so that users can drop in their own or updated models:
the folder named by the environment variable ``CELLTRAIL_MODELS``, the user cache
(``$XDG_CACHE_HOME/celltrail/models``, by default ``~/.cache/celltrail/models``), then the
package's own weights; each holds ``<kind>/<name>.pt``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from celltrail.core.errors import ModelError

#: The kinds of network celltrail trains and loads, by the method that uses them.
KINDS = {"prompt_segmenter": "boxtrack", "embedtrack": "embedtrack", "cap": "cap",
         "cellboxify": "cellboxify"}
#: The environment variable naming a folder of models that override the others.
ENV = "CELLTRAIL_MODELS"
#: The models shipped inside the package.
PACKAGE = Path(__file__).resolve().parents[1] / "weights"


def user_cache() -> Path:
    """Where a user's downloaded or trained models go, by the XDG convention."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "celltrail" / "models"


def search_path() -> list[tuple[str, Path]]:
    """The folders models are looked up in, first match winning, with where each comes from."""
    places = [("cache", user_cache()), ("package", PACKAGE)]
    if os.environ.get(ENV):
        places.insert(0, (ENV, Path(os.environ[ENV])))
    return places


@dataclass(frozen=True)
class ModelInfo:
    """A model found in the zoo: its kind, name, file and where it was found."""

    kind: str
    name: str
    path: Path
    origin: str


def available_models(kind: str | None = None) -> list[ModelInfo]:
    """Every model (of ``kind``, or of all kinds) by name; a name found in an earlier place of
    :func:`search_path` hides the same name later on."""
    found: dict[tuple[str, str], ModelInfo] = {}
    for origin, root in search_path():
        for each in [kind] if kind else list(KINDS):
            for path in sorted((root / each).glob("*.pt")):
                found.setdefault((each, path.stem), ModelInfo(each, path.stem, path, origin))
    return sorted(found.values(), key=lambda m: (m.kind, m.name))


def model_names(kind: str) -> list[str]:
    """The names of the models of ``kind``."""
    return [m.name for m in available_models(kind)]


def model_path(kind: str, model: str | Path) -> Path:
    """The file of ``model``: a model of ``kind`` by name, else an existing checkpoint path."""
    path = Path(model)
    if path.suffix != ".pt":
        for info in available_models(kind):
            if info.name == str(model):
                return info.path
    if path.is_file():
        return path
    names = ", ".join(model_names(kind)) or "none"
    raise ModelError(path, f"no such model file, and not the name of any {kind} model "
                             f"({names})")
