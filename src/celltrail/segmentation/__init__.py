"""Cell segmentation: classical threshold + watershed pipeline with modality presets."""

from celltrail.segmentation.classical import (
    PRESETS,
    Segmenter,
    SegmentParams,
    estimate_diameter,
    segment,
)

__all__ = ["PRESETS", "SegmentParams", "Segmenter", "estimate_diameter", "segment"]
