"""EmbedTrack's pixel clustering (Löffler & Mikut 2022, Sec. 3.3): network outputs → instances.

Foreground pixels (seediness above a threshold) are shifted by their predicted offsets; pixels
on which many shifted pixels land are candidate cell centres. Candidates are taken by falling
seediness, and each claims the foreground pixels whose shifted position lies within its
clustering bandwidth (score d > 0.5, the margin the training loss aims for). A pixel keeps its
best score so far and moves to a later instance only if it scores higher there, so pixels on a
boundary end up with the closest centre.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from celltrail.models.embedtrack import COORD_UNIT, W_S

_LN2 = float(np.log(2.0))


def cluster(prediction: np.ndarray, min_size: int, seed_threshold: float = 0.5,
            min_votes: int = 5) -> np.ndarray:
    """Instance labels (H, W) int32, 0 background, instances 1..n, from a (5, H, W) prediction.

    ``prediction`` holds offset (y, x), bandwidth (y, x) and seediness, as the network gives
    them. A candidate centre is a foreground pixel whose 3×3 neighbourhood receives more than
    ``min_votes`` shifted pixels; ties in seediness go to the earlier pixel in raster order.
    A new instance is kept if it takes at least ``min_size`` pixels and fewer than half that
    many pixels of its proposal (score > 0.5) already belong to an earlier instance. Pixels it
    takes over may shrink an earlier instance below ``min_size``; such instances are dropped at
    the end, so every returned instance has at least ``min_size`` pixels.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    if prediction.ndim != 3 or prediction.shape[0] != 5:
        raise ValueError(f"prediction must have shape (5, H, W), not {prediction.shape}")
    height, width = prediction.shape[1:]
    bandwidth = ndi.uniform_filter(prediction[2:4], size=(1, 3, 3), mode="mirror")
    rows, cols = np.nonzero(prediction[4] > seed_threshold)
    seediness = prediction[4, rows, cols]
    ey = rows / COORD_UNIT + prediction[0, rows, cols]
    ex = cols / COORD_UNIT + prediction[1, rows, cols]
    candidates = np.flatnonzero(_neighbour_votes(ey, ex, height, width)[rows, cols] > min_votes)
    order = candidates[np.argsort(-seediness[candidates], kind="stable")]
    scale = np.exp(W_S * bandwidth[:, rows, cols])  # (2, n): s_j per axis

    by_y = np.argsort(ey, kind="stable")  # a window in y is a slice of this order
    ey_sorted = ey[by_y]
    instance = np.zeros(rows.size, dtype=np.int32)
    best = np.zeros(rows.size)
    open_ = np.zeros(rows.size, dtype=bool)
    open_[candidates] = True
    count = 0
    for j in order:
        if not open_[j]:
            continue
        sy, sx = scale[:, j]
        # d > 0.5 needs (Δy)²/s_y < ln 2 and (Δx)²/s_x < ln 2: only pixels in this window.
        reach_y, reach_x = np.sqrt(sy * _LN2), np.sqrt(sx * _LN2)
        lo, hi = np.searchsorted(ey_sorted, [ey[j] - reach_y, ey[j] + reach_y], side="left")
        near = by_y[lo:hi]
        near = near[np.abs(ex[near] - ex[j]) < reach_x]
        score = np.exp(-((ey[near] - ey[j]) ** 2) / sy - (ex[near] - ex[j]) ** 2 / sx)
        proposal, score = near[score > 0.5], score[score > 0.5]
        gains = score > best[proposal]
        joined = proposal[gains]
        colliding = np.count_nonzero(instance[proposal])
        if joined.size >= max(min_size, 1) and colliding < 0.5 * joined.size:
            count += 1
            instance[joined] = count
            best[joined] = score[gains]
            open_[joined] = False

    sizes = np.bincount(instance, minlength=count + 1)
    kept = np.flatnonzero(sizes >= min_size)
    kept = kept[kept > 0]
    lut = np.zeros(count + 1, dtype=np.int32)
    lut[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
    labels = np.zeros((height, width), dtype=np.int32)
    labels[rows, cols] = lut[instance]
    return labels


def _neighbour_votes(ey: np.ndarray, ex: np.ndarray, height: int, width: int) -> np.ndarray:
    """How many shifted pixels land in each pixel's 3×3 neighbourhood (those off-image count
    nowhere)."""
    iy = np.rint(ey * COORD_UNIT).astype(np.int64)
    ix = np.rint(ex * COORD_UNIT).astype(np.int64)
    inside = (iy >= 0) & (iy < height) & (ix >= 0) & (ix < width)
    votes = np.bincount(iy[inside] * width + ix[inside], minlength=height * width)
    return ndi.convolve(votes.reshape(height, width), np.ones((3, 3), dtype=np.int64),
                        mode="constant")
