"""Training CellBoxify from full masks or from bounding boxes only."""

from celltrail.training.cellboxify.data import Sample, Sampler, TrainImage, training_images
from celltrail.training.cellboxify.loop import TrainParams, detector_losses, train

__all__ = ["Sample", "Sampler", "TrainImage", "TrainParams", "detector_losses", "train",
           "training_images"]
