"""Adapting BoxTrack's learned segmenter to the user's sequence from its own first-frame prompts.

On the prompted frame every cell has a box: each box holds one cell and everything outside the
boxes is background. That is exactly the supervision of box-only training
(:mod:`celltrail.training.prompt_segmenter` with ``supervision="box"``: CellBoxify's box
projection and pairwise terms, the foreground head learning the boxes' interiors, background
prompts where no box lies), so a copy of the network is fine-tuned on that one frame with the same
sampler (random crops, quarter turns, flips, scale, gain, offset and noise) for a fixed number of
steps, with a time cap. The shipped weights are read, never written: the copy lives in memory.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from celltrail.methods.boxtrack.config import AdaptParams
from celltrail.methods.boxtrack.learned import LearnedPromptSegmenter, canonical_image
from celltrail.training.prompt_segmenter import TrainParams, TrainSequence, _Sampler, losses


@dataclass
class Adapted:
    """The adapted segmenter and what it took."""

    segmenter: LearnedPromptSegmenter
    steps: int
    seconds: float
    cut_short: bool


def frame_sequence(image: np.ndarray, boxes: np.ndarray, scale: float,
                   hidden: Sequence[int] = ()) -> TrainSequence:
    """One frame as box-only training data at the encoder's scale: the ellipse inscribed in
    each ``(x0, y0, x1, y1)`` box is cell ``i + 1`` (its box is the prompt; larger cells are
    drawn first so a small neighbour keeps its extent). Cells at the indices ``hidden`` are
    held out: never prompted, never background."""
    x = canonical_image(image, scale)[0, 0].numpy()
    labels = np.zeros(x.shape, dtype=np.int32)
    yy, xx = (axis + 0.5 for axis in np.ogrid[:x.shape[0], :x.shape[1]])  # pixel centres
    scaled = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale
    sizes = np.prod(scaled[:, 2:] - scaled[:, :2], axis=1)
    for i in np.argsort(-sizes, kind="stable"):
        centre = (scaled[i, :2] + scaled[i, 2:]) / 2
        half = np.maximum((scaled[i, 2:] - scaled[i, :2]) / 2, 0.5)
        inside = ((xx - centre[0]) / half[0]) ** 2 + ((yy - centre[1]) / half[1]) ** 2 <= 1
        labels[inside] = i + 1
    return TrainSequence("prompted frame", {0: x}, {0: labels},
                         frozenset(int(i) + 1 for i in hidden))


def on_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A training batch moved to ``device``."""
    return {name: value.to(device) for name, value in batch.items()}


def box_loss(net: torch.nn.Module, sequence: TrainSequence, batches: int = 8,
             seed: int = 1) -> float:
    """Mean total box-only loss of ``net`` on ``batches`` fixed (seeded) batches of
    ``sequence``: how well it fits the prompts (lower is better)."""
    sampler = _Sampler([sequence], TrainParams(batch=4, supervision="box"),
                       np.random.default_rng(seed))
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    with torch.no_grad():
        total = [float(losses(net, on_device(sampler.sample(), device), "box")["total"])
                 for _ in range(batches)]
    net.train(was_training)
    return float(np.mean(total))


def adapt(segmenter: LearnedPromptSegmenter, image: np.ndarray, boxes: np.ndarray,
          params: AdaptParams | None = None, hidden: Sequence[int] = ()) -> Adapted:
    """A copy of ``segmenter`` fine-tuned on ``image`` from its prompt ``boxes``
    (``(x0, y0, x1, y1)``, full-resolution pixels), the cells at indices ``hidden`` held out.
    The segmenter's scale must be set (from the prompts) first."""
    params = params or AdaptParams()
    start = time.perf_counter()
    sequence = frame_sequence(image, boxes, segmenter.scale, hidden)
    net = copy.deepcopy(segmenter.net).to(segmenter.device).train()  # where it runs
    sampler = _Sampler([sequence], TrainParams(batch=params.batch, supervision="box"),
                       np.random.default_rng(params.seed))
    optimiser = torch.optim.AdamW(net.parameters(), lr=params.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser,
                                                 lambda step: 1 - step / params.steps)
    done, threads = 0, torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        while done < params.steps and time.perf_counter() - start < params.seconds:
            loss = losses(net, on_device(sampler.sample(), segmenter.device), "box")["total"]
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            done += 1
    finally:
        torch.set_num_threads(threads)
    adapted = LearnedPromptSegmenter(net.eval(), [*segmenter.trained_on, "prompted frame"],
                                     segmenter.device)
    adapted.scale = segmenter.scale
    return Adapted(adapted, done, time.perf_counter() - start, done < params.steps)
