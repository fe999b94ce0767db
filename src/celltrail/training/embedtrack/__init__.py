"""Training EmbedTrack on CTC-layout sequences: data, losses and the training loop."""

from celltrail.training.embedtrack.data import SampleParams, load_sequence
from celltrail.training.embedtrack.loop import (
    EPOCHS,
    FINE_TUNE_STEPS,
    TrainParams,
    fine_tune_params,
    steps_per_epoch,
    train,
)

__all__ = ["EPOCHS", "FINE_TUNE_STEPS", "SampleParams", "TrainParams", "fine_tune_params",
           "load_sequence", "steps_per_epoch", "train"]
