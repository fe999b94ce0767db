"""Training CellBoxify from full masks or from bounding boxes only (the box-only losses, or
self-training on a box-only model's masks)."""

from celltrail.training.cellboxify.data import (
    Sample,
    Sampler,
    TrainImage,
    box_only_teacher,
    training_images,
)
from celltrail.training.cellboxify.loop import TrainParams, detector_losses, train

__all__ = ["Sample", "Sampler", "TrainImage", "TrainParams", "box_only_teacher", "detector_losses",
           "train", "training_images"]
