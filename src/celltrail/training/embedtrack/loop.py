"""EmbedTrack's training loop: Adam with a one-cycle schedule (Sec. 4.3), resumable.

The model keeps what inference needs from its training data: the minimum instance size (half of
the 1st percentile of training mask areas, Sec. 3.3) and the median cell diameter; a generalist
also keeps the canonical cell diameter its training data were rescaled to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from celltrail.core.errors import InputError
from celltrail.models.embedtrack import EmbedTrackConfig, EmbedTrackNet, load_checkpoint
from celltrail.training.embedtrack.data import (
    Sample,
    SampleParams,
    Sampler,
    TrainingSequence,
    has_masks,
    rescale_sequence,
)
from celltrail.training.embedtrack.losses import (
    W_SEG,
    W_TRACK,
    segmentation_loss,
    tracking_loss,
    weighted_segmentation_loss,
)
from celltrail.training.steps import resume_run, run_steps

#: Checkpoint every this many steps; validation loss on :data:`VALIDATION_SAMPLES` fixed pairs.
CHECKPOINT_EVERY = 100
VALIDATION_SAMPLES = 8


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings; the paper trains with Adam at 5e-4 and a one-cycle schedule."""

    steps: int = 2000
    batch: int = 2
    lr: float = 5e-4
    seed: int = 0
    sample: SampleParams = field(default_factory=SampleParams)
    config: EmbedTrackConfig = field(default_factory=EmbedTrackConfig)
    #: a generalist's cell diameter (pixels): every sequence is rescaled to it for training and
    #: the checkpoint keeps it, so inference rescales its input the same way; None (per-dataset
    #: models) trains at each sequence's own scale
    canonical_diameter: float | None = None


#: Passes over the training frames' crops when none are given (the paper trains 15 epochs).
EPOCHS = 15.0
#: Fine-tuning a finished model (``--from``): fewer steps at a tenth of the learning rate, as
#: for BoxTrack's prompt segmenter.
FINE_TUNE_STEPS = 300
FINE_TUNE_LR = TrainParams.lr / 10


def fine_tune_params(start: str | Path, steps: int | None = None, batch: int = 2,
                     seed: int = 0) -> TrainParams:
    """Settings to fine-tune the model at ``start``: its architecture and, for a
    scale-normalised generalist, its canonical cell size (the user's cells are rescaled to it)."""
    state = load_checkpoint(start)
    canonical = state.get("canonical_diameter")
    return TrainParams(steps=steps or FINE_TUNE_STEPS, batch=batch, lr=FINE_TUNE_LR, seed=seed,
                       config=EmbedTrackConfig.from_dict(state["config"]),
                       canonical_diameter=None if canonical is None else float(canonical))


def batch_loss(net: EmbedTrackNet, samples: Sequence[Sample]) -> torch.Tensor:
    """Eq. (12) summed over each pair's frames, averaged over the batch."""
    image = torch.stack([s.image for s in samples])
    previous = torch.stack([s.previous for s in samples])
    seg, seg_previous, offsets = net(image, previous)
    total = seg.sum() * 0.0
    for b, sample in enumerate(samples):
        if sample.before is not None:
            terms = segmentation_loss(seg_previous[b], sample.before)[0]
            total = total + W_SEG * weighted_segmentation_loss(terms)
        if sample.current is not None:
            terms, bandwidths = segmentation_loss(seg[b], sample.current)
            total = total + W_SEG * weighted_segmentation_loss(terms) + W_TRACK * tracking_loss(
                offsets[b], sample.current, sample.track_centres, sample.track_valid, bandwidths)
    return total / len(samples)


def steps_per_epoch(sequences: Sequence[TrainingSequence], params: TrainParams) -> int:
    """Steps for one pass over the training frames' crops: each frame pair counts as many
    crops as its frame has crop areas (the paper cuts frames into overlapping crops)."""
    crops = 0.0
    for seq in sequences:
        height, width = seq.frames[0].image.shape
        per_frame = max(1.0, height * width / params.sample.crop**2)
        pairs = sum(has_masks(seq.frames, t) for t in range(1, seq.split))
        crops += pairs * per_frame
    return max(1, round(crops / params.batch))


def min_instance_size(areas: np.ndarray) -> int:
    """Half the 1st percentile of the training mask areas (Sec. 3.3)."""
    return max(1, int(0.5 * np.percentile(areas, 1)))


def train(
    sequences: Sequence[TrainingSequence],
    out: str | Path,
    params: TrainParams | None = None,
    resume: str | Path | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Train an :class:`EmbedTrackNet` and save it at ``out``, checkpointing as it goes.

    ``resume`` continues an interrupted run from its last checkpoint, or fine-tunes a finished
    model (such as a shipped one) for ``params.steps`` steps.
    """
    params = params or TrainParams()
    if params.canonical_diameter is not None:
        sequences = [rescale_sequence(s, params.canonical_diameter) for s in sequences]
    torch.set_flush_denormal(True)  # tiny activations would otherwise slow CPU steps down
    torch.manual_seed(params.seed)
    net = EmbedTrackNet(params.config)
    diameter = float(np.median([s.diameter for s in sequences]))
    net.init_output(diameter / 2)
    optimiser = torch.optim.Adam(net.parameters(), lr=params.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, params.lr, total_steps=params.steps)
    run = resume_run(net, (optimiser, schedule), resume, "EmbedTrack", "embedtrack", params.seed)
    sampler = Sampler(sequences, params.sample, np.random.default_rng([params.seed, run.start]))
    validation = _validation_set(sequences, params)
    areas = np.concatenate([s.areas for s in sequences])
    meta = {"kind": "embedtrack", "trained_on": [s.name for s in sequences],
            "min_size": min_instance_size(areas), "diameter": diameter,
            "params": {"steps": params.steps, "batch": params.batch, "lr": params.lr,
                       "seed": params.seed, **asdict(params.sample)}}
    if params.canonical_diameter is not None:
        meta["canonical_diameter"] = float(params.canonical_diameter)
    return run_steps(
        net, (optimiser, schedule),
        lambda: batch_loss(net, [sampler.sample() for _ in range(params.batch)]),
        params.steps, run, out, meta, CHECKPOINT_EVERY, progress,
        validate=lambda: _validate(net, validation))


def _validation_set(sequences: Sequence[TrainingSequence], params: TrainParams) -> list[Sample]:
    """Fixed, unaugmented pairs from the last 10% of frames (none if they have no masks)."""
    try:
        sampler = Sampler(sequences, params.sample, np.random.default_rng(params.seed),
                          validation=True)
    except InputError:
        return []
    return [sampler.sample() for _ in range(VALIDATION_SAMPLES)]


def _validate(net: EmbedTrackNet, samples: list[Sample]) -> float:
    if not samples:
        return float("nan")
    net.eval()
    with torch.no_grad():
        return float(np.mean([float(batch_loss(net, [s])) for s in samples]))
