"""The one small interface every tracking method fulfils, and the registry of methods."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from celltrail.core.errors import InputError
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence

In = TypeVar("In")
Out = TypeVar("Out")


class Tracker(Protocol):
    """Turns an image sequence into a tracking result.

    ``store`` receives the label masks frame by frame as they are final, so a method can stream a
    long sequence without holding it in memory; ``on_frame(t)`` is called as frame ``t`` is done
    (for progress bars).
    """

    name: str

    def track(
        self,
        images: ImageSequence,
        store: MaskStore | None = None,
        on_frame: Callable[[int], None] | None = None,
    ) -> TrackingResult:
        """Segment and track every frame of ``images``."""
        ...


def prefetch_map(
    func: Callable[[In], Out], items: Iterable[In], workers: int = 2, ahead: int = 4
) -> Iterator[Out]:
    """``map(func, items)`` in worker threads, in order, with at most ``ahead`` results pending.

    Bounded so memory stays flat on long sequences; threads help because numpy, scipy and
    tifffile release the GIL in their heavy loops.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(func, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _registry() -> dict[str, Callable[..., Tracker]]:
    from celltrail.methods.boxtrack import BoxTracker
    from celltrail.methods.cap import CAPTracker
    from celltrail.methods.cellboxify import CellBoxifyTracker
    from celltrail.methods.classical import ClassicalTracker
    from celltrail.methods.embedtrack import EmbedTracker

    return {"boxtrack": BoxTracker, "cap": CAPTracker, "cellboxify": CellBoxifyTracker,
            "classical": ClassicalTracker, "embedtrack": EmbedTracker}


def get_tracker(name: str, **options: object) -> Tracker:
    """Build the tracker called ``name`` with its options."""
    registry = _registry()
    if name not in registry:
        choices = ", ".join(sorted(registry))
        raise InputError(None, f"unknown method {name!r}; choose one of {choices}")
    return registry[name](**options)
