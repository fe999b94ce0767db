"""The registry of tracking methods: one line per method.

Each :class:`Method` names its options class (defaults live there only), the prompts it takes,
the kind of model it loads, and its tracker class, imported only when a tracker is built (so
listing the methods, or running ``classical``, does not import torch). The CLI, the batch
manifest and the napari widget are derived from this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from celltrail.core.errors import OptionError
from celltrail.methods.base import Tracker
from celltrail.methods.boxtrack.options import BoxTrackOptions
from celltrail.methods.cap.options import CAPOptions
from celltrail.methods.cellboxify.options import CellBoxifyOptions
from celltrail.methods.classical.options import ClassicalOptions
from celltrail.methods.embedtrack.options import EmbedTrackOptions
from celltrail.methods.options import Field, Options

#: What a method's prompts are: ``boxes`` (one box per cell on the frames they are given for)
#: or ``queries`` (the cells of the first frame, from a CTC ground truth).
PROMPT_KINDS = ("boxes", "queries")


@dataclass(frozen=True)
class Method:
    """A tracking method: its key, options class, tracker (``"module:Class"``), prompts
    (``None``, or one of :data:`PROMPT_KINDS` and whether they are required), model kind
    (:data:`celltrail.models.zoo.KINDS`) and a one-line summary."""

    name: str
    options: type[Options]
    tracker: str
    summary: str
    prompts: str | None = None
    needs_prompts: bool = False
    model_kind: str | None = None

    def tracker_class(self) -> type[Tracker]:
        """The tracker class, imported now."""
        module, _, name = self.tracker.partition(":")
        return getattr(import_module(module), name)

    def load(self, options: Options | None = None, **values: Any) -> Tracker:
        """A tracker of this method with ``options`` and/or option ``values``."""
        return self.tracker_class()(options, **values)


#: Every method by key (:func:`register` adds one).
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its key must be new)."""
    if method.name in METHODS:
        raise ValueError(f"a method called {method.name!r} is registered already")
    if method.prompts not in (None, *PROMPT_KINDS):
        raise ValueError(f"prompts must be one of {PROMPT_KINDS} or None")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The method called ``name``."""
    if name not in METHODS:
        raise OptionError("method", f"unknown method {name!r}; choose one of "
                                    f"{', '.join(METHODS)}")
    return METHODS[name]


def fields_by_name(methods: dict[str, Method] | None = None
                   ) -> dict[str, list[tuple[Method, Field]]]:
    """Every option of ``methods`` (default: all registered) by name, with the methods that
    have it: what a front end offers, and to which methods each option applies."""
    found: dict[str, list[tuple[Method, Field]]] = {}
    for method in (METHODS if methods is None else methods).values():
        for f in method.options.fields():
            found.setdefault(f.name, []).append((method, f))
    return found


def check_applies(method: Method, given: dict[str, object]) -> None:
    """Refuse an option ``method`` does not have, naming the methods it applies to."""
    by_name = fields_by_name()
    for name in given:
        if name not in {f.name for f in method.options.fields()}:
            owners = [m.name for m, _ in by_name.get(name, [])]
            where = f"method {either(owners)} only" if owners else "no method"
            raise OptionError(name, f"applies to {where}, not {method.name}")


def either(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


#: The method used unless one is named.
DEFAULT_METHOD = "classical"

register(Method("classical", ClassicalOptions, "celltrail.methods.classical:ClassicalTracker",
                "threshold and watershed segmentation, then linking"))
register(Method("boxtrack", BoxTrackOptions, "celltrail.methods.boxtrack:BoxTracker",
                "follows the cells given by one box each", prompts="boxes",
                needs_prompts=True, model_kind="prompt_segmenter"))
register(Method("embedtrack", EmbedTrackOptions, "celltrail.methods.embedtrack:EmbedTracker",
                "one CNN for segmentation and tracking",
                model_kind="embedtrack"))
register(Method("cap", CAPOptions, "celltrail.methods.cap:CAPTracker",
                "tracks the first frame's cells as points", prompts="queries",
                model_kind="cap"))
register(Method("cellboxify", CellBoxifyOptions, "celltrail.methods.cellboxify:CellBoxifyTracker",
                "masks of a CellBoxify model, linked (needs a model)", model_kind="cellboxify"))
