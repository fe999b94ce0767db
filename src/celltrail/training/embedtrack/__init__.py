"""Training EmbedTrack on CTC-layout sequences: data, losses and the training loop."""

from celltrail.training.embedtrack.data import SampleParams, load_sequence
from celltrail.training.embedtrack.loop import TrainParams, steps_per_epoch, train

__all__ = ["SampleParams", "TrainParams", "load_sequence", "steps_per_epoch", "train"]
