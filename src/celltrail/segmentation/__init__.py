"""Cell segmentation: classical threshold + watershed pipeline with modality presets, and the
cell scale and modality measured from the images."""

from celltrail.segmentation.classical import (
    AUTO,
    DEFAULT_PRESET,
    PRESETS,
    Segmenter,
    SegmentParams,
    estimate_diameter,
    resolve_scale,
    segment,
)
from celltrail.segmentation.scale import Scale

__all__ = ["AUTO", "DEFAULT_PRESET", "PRESETS", "Scale", "SegmentParams", "Segmenter",
           "estimate_diameter", "resolve_scale", "segment"]
