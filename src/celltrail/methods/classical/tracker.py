"""The classical baseline: threshold + watershed segmentation, then constraint-based linking."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from celltrail.core.errors import InputError
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence
from celltrail.linking import get_linker
from celltrail.methods.base import Tracker, prefetch_map
from celltrail.methods.classical.options import ClassicalOptions
from celltrail.methods.embedtrack.size import generalist_diameter
from celltrail.segmentation import Segmenter


class ClassicalTracker(Tracker):
    """Segment each frame with a modality preset, then link (by default with our constraint
    linker)."""

    name = "classical"
    Options = ClassicalOptions

    def __init__(self, options: ClassicalOptions | None = None, **values: Any) -> None:
        super().__init__(options, **values)
        self.link = get_linker(self.options.linker)
        self.segmenter = self.new_segmenter()

    def new_segmenter(self) -> Segmenter:
        """A segmenter with the options' preset and diameter (see :func:`sequence_segmenter`)."""
        return sequence_segmenter(self.options.preset, self.options.diameter)

    def settings(self) -> dict[str, str]:
        """Method, preset and diameter used, and where the preset and diameter came from."""
        scale = self.segmenter.scale
        if scale is None:
            return {"method": self.name}
        return {"method": self.name, "preset": f"{scale.preset} ({scale.preset_from})",
                "diameter": f"{scale.diameter:.1f} px ({scale.diameter_from})"}

    def segment_frames(
        self, images: ImageSequence, on_frame: Callable[[int], None] | None = None
    ) -> Iterator[np.ndarray]:
        """Label images of every frame, segmented ahead in worker threads; ``on_frame(t)``
        after frame ``t``."""
        self.segmenter = self.new_segmenter()  # scale and preset fixed per sequence
        fix_sequence_scale(self.segmenter, images)  # before the workers start
        for t, labels in enumerate(prefetch_map(self.segmenter, images)):
            if on_frame is not None:
                on_frame(t)
            yield labels

    def run(self, images: ImageSequence, prompts: None, store: MaskStore,
            on_frame: Callable[[int], None]) -> TrackingResult:
        """Segment and link every frame; masks go to ``store`` as they are final."""
        frames = self.segment_frames(images, on_frame)
        return self.link(frames, store=store, cell_diameter=self.segmenter.diameter)


def sequence_segmenter(preset: str, diameter: float | None) -> Segmenter:
    """The classical segmenter of a sequence: ``auto`` preset and a missing diameter are fixed
    on its first frame, the generalist network measuring the cells where the frame's blobs do
    not tell their size."""
    return Segmenter(preset, diameter=diameter, fallback=generalist_diameter)


def fix_sequence_scale(segmenter: Segmenter, images: ImageSequence) -> float:
    """Fix ``segmenter``'s cell diameter on the sequence's first frame; a refused estimate
    ends in an :class:`InputError` naming that frame's file and asking for ``--diameter``."""
    try:
        return segmenter.fix_scale(images[0])
    except InputError as exc:
        if exc.path is not None:
            raise
        raise InputError(images.source_of(0), exc.problem) from None
