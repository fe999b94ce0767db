"""CAP's losses (eq. 4–5): γ-discounted trajectory loss over the updates and the visibility
cross-entropy of the last update. Distances are in feature pixels (working pixels / stride).

The two daughters of a cell are interchangeable, so each cell's daughter targets are swapped
where that fits its final predicted points better.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from celltrail.models.cap import STRIDE

#: γ of eq. (4), as in CoTracker, whose update scheme CAP follows.
GAMMA = 0.8


def match_daughters(points: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
                    ) -> torch.Tensor:
    """(N,) True where a cell's daughter targets should be swapped: ``points`` and ``target``
    (T, N, 3, 2), ``valid`` (T, N, 3)."""
    swapped = target[:, :, [0, 2, 1]]
    swapped_valid = valid[:, :, [0, 2, 1]]
    keep = ((points - target).norm(dim=-1) * valid).sum((0, 2))
    swap = ((points - swapped).norm(dim=-1) * swapped_valid).sum((0, 2))
    return swap < keep


def swap_daughters(x: torch.Tensor, swap: torch.Tensor) -> torch.Tensor:
    """``x`` (T, N, 3, …) with D1 and D2 exchanged for the cells where ``swap`` (N,) is set."""
    order = torch.tensor([0, 2, 1])
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return torch.where(swap.view(shape), x[:, :, order], x)


def trajectory_loss(history: list[torch.Tensor], target: torch.Tensor, valid: torch.Tensor,
                    gamma: float = GAMMA) -> torch.Tensor:
    """Eq. (4): Σ_m γ^(M−m) · mean distance of the supervised points, in feature pixels."""
    weight = valid.float()
    count = weight.sum().clamp(min=1.0)
    total = target.new_zeros(())
    for m, points in enumerate(history, start=1):
        distance = (points - target).norm(dim=-1) / STRIDE
        total = total + gamma ** (len(history) - m) * (distance * weight).sum() / count
    return total


def visibility_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
                    ) -> torch.Tensor:
    """Eq. (5): binary cross-entropy of the supervised visibilities."""
    weight = valid.float()
    loss = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
    return (loss * weight).sum() / weight.sum().clamp(min=1.0)
