"""CAP's training loop: AdamW with a one-cycle schedule (Table 5 of the supplement), one window
per step, resumable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from celltrail.models.cap import SPACING, CAPConfig, CAPNet
from celltrail.training.cap.data import SampleParams, Sampler, TrainingSequence, Window
from celltrail.training.cap.losses import (
    match_daughters,
    swap_daughters,
    trajectory_loss,
    visibility_loss,
)
from celltrail.training.steps import resume_run, run_steps

#: Checkpoint every this many steps.
CHECKPOINT_EVERY = 100
#: Gradient norm clip (CoTracker's).
CLIP = 1.0


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings of Table 5: AdamW, one-cycle to 5e-4 with 5% warm-up, linear
    annealing, no momentum cycling, weight decay 1e-5, ε 1e-8."""

    steps: int = 1200
    lr: float = 5e-4
    weight_decay: float = 1e-5
    seed: int = 0
    sample: SampleParams = field(default_factory=SampleParams)
    config: CAPConfig = field(default_factory=CAPConfig)


def window_loss(net: CAPNet, window: Window) -> tuple[torch.Tensor, dict[str, float]]:
    """Trajectory plus visibility loss of one window, and the two terms."""
    out = net(window.frames, window.queries)
    target = window.target
    points = torch.from_numpy(target.points)
    valid = torch.from_numpy(target.point_valid)
    visible = torch.from_numpy(target.visible)
    visible_valid = torch.from_numpy(target.visible_valid)
    swap = match_daughters(out.points[-1].detach(), points, valid)
    points, valid = swap_daughters(points, swap), swap_daughters(valid, swap)
    visible, visible_valid = swap_daughters(visible, swap), swap_daughters(visible_valid, swap)
    tra = trajectory_loss(out.points, points, valid)
    vis = visibility_loss(out.visibility, visible, visible_valid)
    return tra + vis, {"trajectory": float(tra.detach()), "visibility": float(vis.detach())}


def train(
    sequences: Sequence[TrainingSequence],
    out: str | Path,
    params: TrainParams | None = None,
    resume: str | Path | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Train a :class:`CAPNet` and save it at ``out``, checkpointing as it goes.

    ``resume`` continues an interrupted run from its last checkpoint, or fine-tunes a finished
    model (such as a shipped one) for ``params.steps`` steps.
    """
    params = params or TrainParams()
    torch.set_flush_denormal(True)  # tiny activations would otherwise slow CPU steps down
    torch.manual_seed(params.seed)
    net = CAPNet(params.config)
    optimiser = torch.optim.AdamW(net.parameters(), lr=params.lr,
                                  weight_decay=params.weight_decay, eps=1e-8)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, params.lr, total_steps=params.steps, pct_start=0.05,
        anneal_strategy="linear", cycle_momentum=False)
    run = resume_run(net, (optimiser, schedule), resume, "CAP", "cap", params.seed)
    sampler = Sampler(list(sequences), params.sample,
                      np.random.default_rng([params.seed, run.start]))
    meta = {"kind": "cap", "trained_on": [s.name for s in sequences], "spacing": SPACING,
            "window": params.sample.length,
            "params": {"steps": params.steps, "lr": params.lr, "seed": params.seed,
                       **asdict(params.sample)}}
    return run_steps(net, (optimiser, schedule), lambda: window_loss(net, sampler.sample())[0],
                     params.steps, run, out, meta, CHECKPOINT_EVERY, progress, clip=CLIP)
