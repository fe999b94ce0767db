"""What the training loops share: resuming a run, and checkpointed optimisation steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from celltrail.models.checkpoint import Optimiser, resume_training, save_checkpoint


@dataclass
class Run:
    """Where a run stands: the next step, the history of checkpoints, seconds spent so far."""

    start: int = 0
    history: list[list[float]] = field(default_factory=list)
    elapsed: float = 0.0


def resume_run(net: nn.Module, optimiser: Optimiser, resume: str | Path | None, what: str,
               kind: str, seed: int) -> Run:
    """A fresh run, or the one ``resume`` holds: an interrupted run goes on where it stopped
    (reseeded for its next step), a finished model is fine-tuned from step 0."""
    if resume is None:
        return Run()
    state = resume_training(net, optimiser, resume, what, kind)
    if "optimiser" not in state:
        return Run()
    run = Run(int(state["step"]), list(state["history"]), float(state["seconds"]))
    torch.manual_seed(seed + run.start)
    return run


def run_steps(net: nn.Module, optimiser: Optimiser, step_loss: Callable[[], torch.Tensor],
              steps: int, run: Run, out: str | Path, meta: dict, every: int,
              progress: Callable[[int, float], None] | None = None, clip: float | None = None,
              validate: Callable[[], float] | None = None) -> Path:
    """Optimise ``step_loss()`` from ``run.start`` to ``steps``; every ``every`` steps and at
    the end, add ``[step, mean loss, validation loss]`` to the history and save a checkpoint
    (with the optimiser to resume, the last one in half precision to ship)."""
    clock, running = time.perf_counter() - run.elapsed, []
    for step in range(run.start, steps):
        net.train()
        loss = step_loss()
        optimiser[0].zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        optimiser[0].step()
        optimiser[1].step()
        running.append(float(loss.detach()))
        if progress is not None:
            progress(step, running[-1])
        done = step + 1
        if done % every == 0 or done == steps:
            entry = [done, float(np.mean(running))]
            run.history.append(entry if validate is None else [*entry, validate()])
            running = []
            save_checkpoint(net, out, meta | {"step": done, "history": run.history,
                                              "seconds": time.perf_counter() - clock},
                            None if done == steps else optimiser)
    return Path(out)
