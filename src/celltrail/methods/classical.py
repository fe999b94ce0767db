"""The classical baseline: threshold + watershed segmentation, then constraint-based linking."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence
from celltrail.linking import get_linker
from celltrail.methods.base import prefetch_map
from celltrail.segmentation import Segmenter


class ClassicalTracker:
    """Segment each frame with a modality preset, then link (by default with our constraint
    linker; ``linker`` names one of :data:`celltrail.linking.LINKERS`)."""

    name = "classical"

    def __init__(self, preset: str = "fluo-nuclei", diameter: float | None = None,
                 linker: str = "celltrail") -> None:
        self.segmenter = Segmenter(preset, diameter=diameter)
        self.link = get_linker(linker)

    def segment_frames(
        self, images: ImageSequence, on_frame: Callable[[int], None] | None = None
    ) -> Iterator[np.ndarray]:
        """Label images of every frame, segmented ahead in worker threads."""
        self.segmenter.fix_scale(images[0])  # before the workers start
        for t, labels in enumerate(prefetch_map(self.segmenter, images)):
            if on_frame is not None:
                on_frame(t)
            yield labels

    def track(
        self,
        images: ImageSequence,
        store: MaskStore | None = None,
        on_frame: Callable[[int], None] | None = None,
    ) -> TrackingResult:
        """Segment and link every frame; masks go to ``store`` as they are final."""
        frames = self.segment_frames(images, on_frame)
        return self.link(frames, store=store, cell_diameter=self.segmenter.diameter)
