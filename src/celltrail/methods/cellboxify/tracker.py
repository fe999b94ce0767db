"""CellBoxify as the segmenter of the classical linker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence
from celltrail.linking import get_linker
from celltrail.methods.cellboxify.segmenter import MIN_SCORE, CellBoxifySegmenter


class CellBoxifyTracker:
    """Segment each frame with a CellBoxify model, then link (``linker``: one of
    :data:`celltrail.linking.LINKERS`)."""

    name = "cellboxify"

    def __init__(self, model: str | Path, min_score: float = MIN_SCORE,
                 linker: str = "celltrail") -> None:
        self.segmenter = CellBoxifySegmenter(model, min_score)
        self.link = get_linker(linker)

    def track(
        self,
        images: ImageSequence,
        store: MaskStore | None = None,
        on_frame: Callable[[int], None] | None = None,
    ) -> TrackingResult:
        """Segment and link every frame; masks go to ``store`` as they are final."""

        def frames() -> Iterator[np.ndarray]:
            for t, image in enumerate(images):
                labels = self.segmenter(np.asarray(image))
                if on_frame is not None:
                    on_frame(t)
                yield labels

        return self.link(frames(), store=store)
