"""The one small interface every tracking method fulfils: a :class:`Tracker` built from its
options once, then run on any number of sequences with their prompts."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from celltrail.core.errors import OptionError
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence, as_sequence
from celltrail.methods.options import Options
from celltrail.threads import threads

In = TypeVar("In")
Out = TypeVar("Out")


class Tracker(ABC):
    """Turns image sequences into tracking results.

    Built once from its options (a model is loaded then), a tracker's :meth:`track` runs on each
    sequence with that sequence's prompts. Subclasses set :attr:`name` and :attr:`Options` and
    supply :meth:`run`; this class owns what every method shares: the options' validation, the
    images' and the store's defaults, and the settings and extra outputs the result carries.
    """

    #: The method's registry key.
    name: ClassVar[str]
    #: The method's options class.
    Options: ClassVar[type[Options]]
    #: Files beyond the CTC result that ``TrackingResult.save`` writes for this method.
    outputs: ClassVar[tuple[str, ...]] = ()
    #: The torch device a learned method's network runs on (None: a method without one).
    device: Any = None

    def __init__(self, options: Options | None = None, **values: Any) -> None:
        self.options = make_options(self.Options, options, values)

    def track(
        self,
        images: object,
        prompts: object = None,
        store: MaskStore | None = None,
        on_frame: Callable[[int], None] | None = None,
    ) -> TrackingResult:
        """Segment and track every frame of ``images`` (a path, an array or an
        :class:`ImageSequence`) from ``prompts`` (what the method takes: see its
        :meth:`read_prompts`). Masks go to ``store`` frame by frame (default: memory);
        ``on_frame(t)`` is called as frame ``t`` is done."""
        sequence = as_sequence(images)
        result = self.run(sequence, self.read_prompts(prompts, sequence),
                          MaskStore() if store is None else store, on_frame or _ignore)
        result.settings = self.settings()
        if self.device is not None:  # where the network ran, and whether auto chose it
            chosen = getattr(self.options, "device", None)
            result.settings["device"] = str(self.device) + (" (auto)" * (chosen == "auto"))
        result.outputs = self.outputs
        result.pixel_size, result.interval = sequence.pixel_size, sequence.interval
        return result

    @abstractmethod
    def run(self, images: ImageSequence, prompts: Any, store: MaskStore,
            on_frame: Callable[[int], None]) -> TrackingResult:
        """The method's work: every frame into ``store``, ``on_frame(t)`` after frame ``t``."""

    def read_prompts(self, prompts: object, images: ImageSequence) -> Any:
        """The prompts in the form :meth:`run` takes, checked against ``images`` (call it first
        to find bad prompts before any work; :meth:`track` takes what it returns as it is); a
        method without prompts refuses any."""
        if prompts is not None:
            raise OptionError("prompts", f"method {self.name} takes no prompts")
        return None

    def settings(self) -> dict[str, str]:
        """The settings used and where they came from, for the end-of-run summary."""
        return {"method": self.name}


def make_options(kind: type[Options], options: Options | None,
                 values: dict[str, Any]) -> Options:
    """``options`` (default: ``kind()``) with ``values`` set; a name that is not an option of
    ``kind`` raises :class:`OptionError`."""
    known = {f.name for f in kind.fields()}
    for name in values:
        if name not in known:
            raise OptionError(name, f"not an option of method {kind.method}; its options are "
                                    f"{', '.join(sorted(known)) or 'none'}")
    if options is None:
        return kind(**values)
    if not isinstance(options, kind):
        raise OptionError("options", f"method {kind.method} takes {kind.__name__}, not "
                                     f"{type(options).__name__}")
    return dataclasses.replace(options, **values)


def _ignore(t: int) -> None:
    """The progress callback when none is given."""


def prefetch_map(
    func: Callable[[In], Out], items: Iterable[In], workers: int | None = None,
    ahead: int | None = None,
) -> Iterator[Out]:
    """``map(func, items)`` in ``workers`` threads (default: celltrail's thread setting,
    :func:`celltrail.threads.threads`), in order, with at most ``ahead`` results pending
    (default: two per worker).

    Bounded so memory stays flat on long sequences; threads help because numpy, scipy and
    tifffile release the GIL in their heavy loops.
    """
    workers = threads() if workers is None else workers
    ahead = 2 * workers if ahead is None else ahead
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(func, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
