"""The classical baseline: threshold + watershed segmentation, then constraint-based linking."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from celltrail.core.errors import InputError
from celltrail.core.result import MaskStore, TrackingResult
from celltrail.core.sequence import ImageSequence
from celltrail.linking import link
from celltrail.methods.base import prefetch_map
from celltrail.segmentation import DEFAULT_PRESET, Segmenter


class ClassicalTracker:
    """Segment each frame with a modality preset, then link with the review's constraints."""

    name = "classical"

    def __init__(self, preset: str = DEFAULT_PRESET, diameter: float | None = None) -> None:
        self.segmenter = Segmenter(preset, diameter=diameter)

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
        """Label images of every frame, segmented ahead in worker threads."""
        try:
            self.segmenter.fix_scale(images[0])  # before the workers start
        except InputError as exc:
            if exc.path is not None:
                raise
            raise InputError(images.source_of(0), exc.problem) from None
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
        return link(frames, store=store, cell_diameter=self.segmenter.diameter)
