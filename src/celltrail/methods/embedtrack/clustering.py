"""EmbedTrack's pixel clustering (Löffler & Mikut 2022, Sec. 3.3): network outputs → instances.

Foreground pixels (seediness above a threshold) are shifted by their predicted offsets; pixels
on which many shifted pixels land are candidate cell centres. Candidates are taken by falling
seediness, and each claims the foreground pixels whose shifted position lies within its
clustering bandwidth (score d > 0.5, the margin the training loss aims for). A pixel keeps its
best score so far and moves to a later instance only if it scores higher there, so pixels on a
boundary end up with the closest centre. Candidates that cannot win any more (too few free
pixels in reach) are found in bulk from per-bin pixel counts and skipped, which leaves the
result as it is and bounds the time a frame of false seeds takes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from celltrail.models.embedtrack import COORD_UNIT, W_S

_LN2 = float(np.log(2.0))
#: Candidates whose hope is judged together (speed only: the result does not depend on it).
_CHUNK = 1024
#: Relative margin that keeps the bounds of :class:`_Hopeless` safe from rounding.
_EPS = 1e-6


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

    claims = _Claims(ey, ex, scale, max(min_size, 1))
    claims.open_[candidates] = True
    hopeless = _Hopeless(ey, ex, height, width)
    for start in range(0, order.size, _CHUNK):
        chunk = order[start:start + _CHUNK]
        chunk = chunk[claims.open_[chunk]]
        reach = np.sqrt(scale[:, chunk] * _LN2)
        for j in chunk[~hopeless(ey[chunk], ex[chunk], reach, claims.need)]:
            if claims.open_[j]:
                hopeless.take(claims.try_seed(j))
    instance, count = claims.instance, claims.count

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


class _Claims:
    """Which instance holds each foreground pixel, and how well (its score)."""

    def __init__(self, ey: np.ndarray, ex: np.ndarray, scale: np.ndarray, need: int) -> None:
        self.ey, self.ex, self.scale, self.need = ey, ex, scale, need
        reach_y = np.sqrt(scale[0] * _LN2)
        self.windows = _Windows(ey, ex, float(np.median(reach_y)) if ey.size else 1.0)
        self.instance = np.zeros(ey.size, dtype=np.int32)
        self.best = np.zeros(ey.size)
        self.open_ = np.zeros(ey.size, dtype=bool)
        self.count = 0

    def try_seed(self, j: int) -> np.ndarray:
        """Start an instance at candidate ``j`` if it wins; the pixels it took that were free."""
        ey, ex = self.ey, self.ex
        sy, sx = self.scale[:, j]
        # d > 0.5 needs (Δy)²/s_y < ln 2 and (Δx)²/s_x < ln 2: only pixels in this window.
        reach_y, reach_x = np.sqrt(sy * _LN2), np.sqrt(sx * _LN2)
        near = self.windows.near(ey[j], ex[j], reach_y, reach_x)
        score = np.exp(-((ey[near] - ey[j]) ** 2) / sy - (ex[near] - ex[j]) ** 2 / sx)
        proposal, score = near[score > 0.5], score[score > 0.5]
        gains = score > self.best[proposal]
        joined = proposal[gains]
        colliding = np.count_nonzero(self.instance[proposal])
        if joined.size < self.need or colliding >= 0.5 * joined.size:
            return joined[:0]
        self.count += 1
        freed = joined[self.instance[joined] == 0]
        self.instance[joined] = self.count
        self.best[joined] = score[gains]
        self.open_[joined] = False
        return freed


class _Hopeless:
    """Finds candidates that cannot win, from counts of free and taken pixels per one-pixel bin
    of the embedding, without looking at their pixels.

    With ``u`` free and ``c`` taken pixels in its proposal, a candidate wins only if
    ``c < joined / 2`` and ``need <= joined <= u + c``, hence only if ``c < u`` and
    ``u > need / 2``. Per bin row of its window, the bins that meet the ellipse bound ``u``
    from above and the bins inside it bound ``c`` from below; free pixels are only ever taken,
    so a candidate found hopeless stays hopeless. On a frame of noise nearly every pixel is a
    candidate and, once the frame is taken, each would cost a scan of its window: judged here
    in chunks, the result is the same and the time bounded.
    """

    def __init__(self, ey: np.ndarray, ex: np.ndarray, height: int, width: int) -> None:
        self.shape = (height, width)
        self.rows = np.clip(np.floor(ey * COORD_UNIT), 0, height - 1).astype(np.int64)
        self.cols = np.clip(np.floor(ex * COORD_UNIT), 0, width - 1).astype(np.int64)
        self.free = np.bincount(self.rows * width + self.cols,
                                minlength=height * width).reshape(self.shape)
        self.all = self._prefix(self.free)
        self.free_prefix = self._prefix(self.free)

    @staticmethod
    def _prefix(counts: np.ndarray) -> np.ndarray:
        """Running sums along each row, a zero column first: a row's bins a..b sum to
        ``p[r, b + 1] - p[r, a]``."""
        return np.pad(np.cumsum(counts, axis=1), ((0, 0), (1, 0)))

    def take(self, pixels: np.ndarray) -> None:
        """Mark free pixels (indices of the foreground) as taken."""
        if pixels.size:
            np.subtract.at(self.free, (self.rows[pixels], self.cols[pixels]), 1)
            touched = np.unique(self.rows[pixels])
            self.free_prefix[touched, 1:] = np.cumsum(self.free[touched], axis=1)

    def _sum(self, prefix: np.ndarray, r: np.ndarray, c0: np.ndarray, c1: np.ndarray,
             where: np.ndarray) -> np.ndarray:
        """Per candidate, the sum over its rows ``r`` (where ``where``) of bins c0..c1."""
        width = self.shape[1]
        c0, c1 = np.clip(c0, 0, width - 1), np.clip(c1, 0, width - 1)
        return np.where(where, prefix[r, c1 + 1] - prefix[r, c0], 0).sum(axis=1)

    def __call__(self, ey: np.ndarray, ex: np.ndarray, reach: np.ndarray, need: int
                 ) -> np.ndarray:
        """Which candidates (embeddings ``ey``, ``ex``; window half-sides ``reach`` (2, m))
        cannot win now."""
        height = self.shape[0]
        cy, cx = (ey * COORD_UNIT)[:, None], (ex * COORD_UNIT)[:, None]
        ay, ax = (reach * COORD_UNIT)[:, :, None]
        top = np.clip(np.floor(cy - ay), 0, height - 1).astype(np.int64)
        bottom = np.clip(np.floor(cy + ay), 0, height - 1).astype(np.int64)
        r = top + np.arange(int((bottom - top).max(initial=0)) + 1)
        rows = r <= bottom
        r = np.minimum(r, height - 1)
        # nearest and farthest |Δy| within bin row r (the edge rows hold what lies beyond)
        near = np.maximum(0.0, np.maximum(r - cy, cy - r - 1))
        near = np.where(r == 0, np.maximum(0.0, cy - 1), near)
        near = np.where(r == height - 1, np.maximum(0.0, height - 1 - cy), near)
        far = np.maximum(np.abs(r - cy), np.abs(r + 1 - cy))
        outer_y, outer_x = ay * (1 + _EPS), ax * (1 + _EPS)
        rows &= near < outer_y
        half = outer_x * np.sqrt(np.clip(1 - (near / outer_y) ** 2, 0, None))
        free = self._sum(self.free_prefix, r, np.floor(cx - half).astype(np.int64),
                         np.floor(cx + half).astype(np.int64), rows)
        inner_y, inner_x = ay * (1 - _EPS), ax * (1 - _EPS)
        half = inner_x * np.sqrt(np.clip(1 - (far / inner_y) ** 2, 0, None))
        c0 = np.maximum(np.floor(cx - half).astype(np.int64) + 1, 1)
        c1 = np.minimum(np.floor(cx + half).astype(np.int64) - 1, self.shape[1] - 2)
        inside = rows & (far < inner_y) & (r >= 1) & (r <= height - 2) & (c1 >= c0)
        taken = (self._sum(self.all, r, c0, c1, inside)
                 - self._sum(self.free_prefix, r, c0, c1, inside))
        return (2 * free <= need) | (taken >= free)


class _Windows:
    """Foreground pixels indexed by their embedding, to find those in a window fast: bands
    ``height`` tall in y, each sorted by x, so that a window is a few slices (the bands'
    height sets the speed, not the result)."""

    def __init__(self, ey: np.ndarray, ex: np.ndarray, height: float) -> None:
        self.ey, self.ex, self.height = ey, ex, max(height, 1e-12)
        band = np.floor(ey / self.height).astype(np.int64)
        self.order = np.lexsort((ex, band))
        self.x = ex[self.order]
        self.first = int(band.min(initial=0))
        self.starts = np.searchsorted(band[self.order],
                                      np.arange(self.first, int(band.max(initial=0)) + 2))

    def near(self, y: float, x: float, reach_y: float, reach_x: float) -> np.ndarray:
        """Pixels with ``y - reach_y <= ey < y + reach_y`` and ``|ex - x| < reach_x``."""
        lo_band = max(int(np.floor((y - reach_y) / self.height)) - self.first, 0)
        hi_band = min(int(np.floor((y + reach_y) / self.height)) - self.first,
                      len(self.starts) - 2)
        parts = [np.zeros(0, dtype=np.int64)]
        for band in range(lo_band, hi_band + 1):
            a, b = self.starts[band], self.starts[band + 1]
            lo, hi = np.searchsorted(self.x[a:b], [x - reach_x, x + reach_x])
            parts.append(self.order[a + lo:a + hi])
        near = np.concatenate(parts)
        keep = ((self.ey[near] >= y - reach_y) & (self.ey[near] < y + reach_y)
                & (np.abs(self.ex[near] - x) < reach_x))
        return near[keep]
