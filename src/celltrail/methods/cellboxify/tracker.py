"""CellBoxify as the segmenter of the classical linker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence
from celltrail.linking import get_linker
from celltrail.methods.base import Tracker
from celltrail.methods.cellboxify.options import CellBoxifyOptions
from celltrail.methods.cellboxify.segmenter import CellBoxifySegmenter


class CellBoxifyTracker(Tracker):
    """Segment each frame with a CellBoxify model on the options' device, then link."""

    name = "cellboxify"
    Options = CellBoxifyOptions

    def __init__(self, options: CellBoxifyOptions | None = None, **values: Any) -> None:
        super().__init__(options, **values)
        self.segmenter = CellBoxifySegmenter(self.options.model, self.options.min_score,
                                             self.options.device)
        self.device = self.segmenter.device
        self.link = get_linker(self.options.linker)

    def run(self, images: ImageSequence, prompts: None, store: MaskStore,
            on_frame: Callable[[int], None]) -> TrackingResult:
        """Segment and link every frame; masks go to ``store`` as they are final."""

        def frames() -> Iterator[np.ndarray]:
            for t, image in enumerate(images):
                labels = self.segmenter(np.asarray(image))
                on_frame(t)
                yield labels

        return self.link(frames(), store=store)
