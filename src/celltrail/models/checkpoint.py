"""Reading and writing model checkpoints: plain tensors and values, loaded with
``weights_only=True``; the finished model in half precision, to ship small."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from celltrail.core.errors import ModelError
from celltrail.io.atomic import atomic_file

Optimiser = tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]


class Checkpoint(dict):
    """A checkpoint's entries, with the file they came from and the model they are of, for
    error messages."""

    def __init__(self, entries: dict, path: Path, what: str) -> None:
        super().__init__(entries)
        self.path = path
        self.what = what


def read_checkpoint(path: str | Path, what: str, kind: str | None = None) -> dict:
    """The checkpoint at ``path``; ``what`` names the model in errors, ``kind`` (when given) is
    the ``"kind"`` entry it must carry."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(path, "model file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds on a corrupt file
        raise ModelError(path, f"not a readable model checkpoint ({exc.__class__.__name__})") \
            from exc
    if (not isinstance(state, dict) or "state_dict" not in state or "config" not in state
            or (kind is not None and state.get("kind") != kind)):
        found = state.get("kind") if isinstance(state, dict) else None
        raise ModelError(path, f"not a celltrail {what} checkpoint"
                               + (f" (it holds a model of kind {found!r})" if found else ""))
    if not isinstance(state["config"], dict) or not isinstance(state["state_dict"], dict):
        raise ModelError(path, f"not a celltrail {what} checkpoint (config or weights are not "
                               f"tables)")
    return Checkpoint(state, path, what)


def build_network(state: dict, make: Callable[[dict], nn.Module]) -> nn.Module:
    """``make(config)`` with the checkpoint's weights loaded, in float32 and eval mode; a
    config or weights that do not fit end in a :class:`ModelError` naming the file."""
    path, what = getattr(state, "path", None), getattr(state, "what", "model")
    try:
        net = make(state["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(path, f"its config does not describe a {what} network "
                               f"({type(exc).__name__}: {exc})") from exc
    try:
        load_weights(net, state)
    except (RuntimeError, AttributeError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ModelError(path, f"its weights do not fit the {what} network "
                               f"({(lines[1:] or lines or [type(exc).__name__])[0]})") from exc
    return net.eval()


def load_weights(net: nn.Module, state: dict) -> None:
    """Load a checkpoint's (possibly half-precision) weights into ``net`` in float32."""
    net.load_state_dict({k: v.float() if v.is_floating_point() else v
                         for k, v in state["state_dict"].items()})


def resume_training(net: nn.Module, optimiser: Optimiser, path: str | Path, what: str,
                    kind: str | None = None) -> dict:
    """Load ``path`` into ``net``; an interrupted run's checkpoint also restores the optimiser
    and schedule (its ``"step"`` says where to go on), a finished model is fine-tuned from step
    0. Returns the checkpoint."""
    state = read_checkpoint(path, what, kind)
    load_weights(net, state)
    if "optimiser" in state:
        optimiser[0].load_state_dict(state["optimiser"])
        optimiser[1].load_state_dict(state["schedule"])
    return state


def save_checkpoint(net: nn.Module, path: str | Path, meta: dict,
                    optimiser: Optimiser | None = None) -> None:
    """Write ``net`` (its ``config.to_dict()`` too) and ``meta`` atomically; with the optimiser
    and schedule for resuming, else, as the finished model, in half precision."""
    state: dict[str, object] = {
        **meta, "config": net.config.to_dict(),  # type: ignore[operator]
        "state_dict": {k: v.half() if optimiser is None and v.is_floating_point() else v
                       for k, v in net.state_dict().items()},
    }
    if optimiser is not None:
        state["optimiser"] = optimiser[0].state_dict()
        state["schedule"] = optimiser[1].state_dict()
    with atomic_file(path) as tmp:
        torch.save(state, tmp)
