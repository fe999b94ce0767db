"""Training CAP from tracking ground truth only."""

from celltrail.training.cap.data import SampleParams, Sampler, TrainingSequence, load_sequence
from celltrail.training.cap.loop import TrainParams, train, window_loss

__all__ = ["SampleParams", "Sampler", "TrainParams", "TrainingSequence", "load_sequence",
           "train", "window_loss"]
