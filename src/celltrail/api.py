"""celltrail from Python: track a sequence in one call, or load a tracker once and run it on
many sequences.

>>> import celltrail
>>> result = celltrail.track("Fluo-N2DH-GOWT1/01", method="classical")  # doctest: +SKIP
>>> result.save("01_RES")  # the files `celltrail track` writes  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from celltrail.core.result import MaskStore, TrackingResult
from celltrail.methods.base import Tracker
from celltrail.methods.options import Options
from celltrail.methods.registry import DEFAULT_METHOD, get_method


def load_tracker(method: str = DEFAULT_METHOD, options: Options | None = None,
                 **values: Any) -> Tracker:
    """A tracker of ``method`` (a key of :data:`celltrail.methods.METHODS`) with its options,
    given as an options object and/or by name; its model, if any, is loaded now. Call its
    ``track(images, prompts)`` on each sequence."""
    return get_method(method).load(options, **values)


def track(images: object, method: str = DEFAULT_METHOD, prompts: object = None, *,
          store: MaskStore | None = None, on_frame: Callable[[int], None] | None = None,
          **options: Any) -> TrackingResult:
    """Segment and track ``images`` (a path to a CTC folder or a TIFF stack, a numpy or dask
    array of shape (T, Y, X), or an :class:`~celltrail.core.sequence.ImageSequence`) with
    ``method`` and its ``options`` (e.g. ``diameter=30``); ``prompts`` are what the method
    takes (BoxTrack: a box file, a CTC ground-truth folder or a box table; CAP: a CTC
    ground-truth folder). Masks go to ``store`` (default: memory); ``on_frame(t)`` reports
    progress. ``result.save(folder)`` writes what ``celltrail track`` writes."""
    return load_tracker(method, **options).track(images, prompts, store, on_frame)


def evaluate(gt: str | Path, res: str | Path) -> dict[str, object]:
    """The CTC and MOT metrics of the result folder ``res`` against the ground truth ``gt``
    (py-ctcmetrics)."""
    from celltrail.metrics.ctc import evaluate as score

    return score(gt, res)
