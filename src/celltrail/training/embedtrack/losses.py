"""EmbedTrack's losses (Löffler & Mikut, Sec. 3.2), on one image pair at a time.

Every instance m of a frame has a pixel set P_m and a centre c_m (the medoid, so it lies inside
the cell). With e_i = p_i + o_i the shifted pixel positions and s_m = exp(w_s · mean bandwidth
over P_m), the Gaussian score d_m,i = exp(−Σ_axes (c_m − e_i)² / s_m) should be high exactly on
P_m: the Lovász hinge of 2·d_m − 1 against the mask trains offsets and bandwidths jointly for
the Jaccard index. The variance loss keeps bandwidths constant within an instance; the seed loss
regresses the seediness to d_m on cells and to 0 on the background. The tracking loss is the
Lovász hinge of the tracking-shifted pixels at t around the cell's centre at t − 1.

Every term is normalised per image, as EmbedSeg's reference loss does rather than as Eq. (7),
(9) and (11) print it: the instance, variance and tracking terms are means over the image's
instances, the seed term is the sum of squared errors over all pixels divided by H · W. Summed
over instances, a crop of many cells outweighed the others and a mixture of sequences did not
learn (docs/benchmarks.md, EmbedTrack generalist).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from celltrail.models.embedtrack import COORD_UNIT, W_S, pixel_grid

#: Loss weights of Eq. (10) and (12): w_var = 10, all others 1.
W_INSTANCE, W_VAR, W_SEED, W_FG, W_SEG, W_TRACK = 1.0, 10.0, 1.0, 1.0, 1.0, 1.0


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss at the sorted ground truth."""
    total = gt_sorted.sum()
    intersection = total - gt_sorted.cumsum(0)
    union = total + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász hinge loss (Berman et al.) of flat ``logits`` (real) against binary ``labels``."""
    logits, labels = logits.reshape(-1), labels.reshape(-1).float()
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    errors_sorted, order = torch.sort(errors, descending=True)
    return torch.dot(torch.relu(errors_sorted), lovasz_grad(labels[order]))


@dataclass
class Instances:
    """The instances of one frame (crop): label image and each label's centre in pixels."""

    labels: torch.Tensor  #: (H, W) int64, 0 background
    ids: torch.Tensor  #: (M,) labels
    centres: torch.Tensor  #: (M, 2) float (row, col) in crop pixels; may lie outside the crop


def _scores(shifted: torch.Tensor, centre: torch.Tensor, bandwidth: torch.Tensor) -> torch.Tensor:
    """d_i = exp(−Σ_axes (c − e_i)² / s) with s = exp(w_s · bandwidth) per axis."""
    s = torch.exp(W_S * bandwidth)
    return torch.exp(-(((shifted - centre[:, None, None]) ** 2) / s[:, None, None]).sum(0))


def segmentation_loss(prediction: torch.Tensor, frame: Instances
                      ) -> tuple[dict[str, torch.Tensor], dict[int, torch.Tensor]]:
    """The terms of Eq. (10) for one frame, unweighted and normalised per image: ``instance``
    (Eq. 7) and ``variance`` (Eq. 3) averaged over instances, ``seed`` (Eq. 9, with w_fg) the
    squared errors summed over all pixels / (H · W); ``prediction`` is (5, H, W) from the
    network. Also returns each instance's mean bandwidth, which the tracking loss uses."""
    shifted = pixel_grid(*prediction.shape[1:]) + prediction[:2]
    bandwidth, seed = prediction[2:4], prediction[4]
    zero = prediction.sum() * 0.0
    instance, variance = zero, zero
    seed_error = (seed[frame.labels == 0] ** 2).sum()
    means: dict[int, torch.Tensor] = {}
    for label, centre in zip(frame.ids.tolist(), frame.centres, strict=True):
        inside = frame.labels == label
        if not inside.any():
            continue
        s_pixels = bandwidth[:, inside]
        s_mean = s_pixels.mean(1)
        means[label] = s_mean
        variance = variance + ((s_pixels - s_mean[:, None]) ** 2).sum(0).mean()
        score = _scores(shifted, centre / COORD_UNIT, s_mean)
        instance = instance + lovasz_hinge(2.0 * score - 1.0, inside)
        seed_error = seed_error + W_FG * ((seed[inside] - score[inside].detach()) ** 2).sum()
    count = max(1, len(means))
    return {"instance": instance / count, "variance": variance / count,
            "seed": seed_error / seed.numel()}, means


def weighted_segmentation_loss(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. (10) from the terms of :func:`segmentation_loss`."""
    return W_INSTANCE * terms["instance"] + W_VAR * terms["variance"] + W_SEED * terms["seed"]


def tracking_loss(offsets: torch.Tensor, frame: Instances, previous_centres: torch.Tensor,
                  valid: torch.Tensor, bandwidths: dict[int, torch.Tensor]) -> torch.Tensor:
    """Eq. (11) averaged over the instances it covers: ``offsets`` (2, H, W) from t to t − 1;
    ``previous_centres`` (M, 2) gives each instance of ``frame`` the centre (pixels) of its
    cell, or its mother, at t − 1, where ``valid``."""
    shifted = pixel_grid(*offsets.shape[1:]) + offsets
    loss, count = offsets.sum() * 0.0, 0
    for label, centre, ok in zip(frame.ids.tolist(), previous_centres, valid.tolist(),
                                 strict=True):
        if ok and label in bandwidths:
            score = _scores(shifted, centre / COORD_UNIT, bandwidths[label])
            loss = loss + lovasz_hinge(2.0 * score - 1.0, frame.labels == label)
            count += 1
    return loss / max(1, count)
