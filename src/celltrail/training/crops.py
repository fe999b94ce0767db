"""Where a training crop is cut: anywhere, or around the masked cells of a frame whose masks
leave cells out."""

from __future__ import annotations

import numpy as np


def crop_corner(shape: tuple[int, ...], size: int, rng: np.random.Generator,
                around: np.ndarray | None = None) -> tuple[int, int]:
    """A ``size`` crop's top-left corner in a frame of ``shape``: anywhere (hanging over the
    edge of a smaller frame), or, given a boolean image ``around`` with something in it, such
    that a random pixel of it lies in the crop's middle half. On a frame that masks 1-2 of its
    25 cells, random crops would mostly hold no cell to learn from."""
    if around is not None and around.any():
        ys, xs = np.nonzero(around)
        i = int(rng.integers(len(ys)))
        return tuple(int(c - size // 2 + rng.integers(-size // 4, size // 4 + 1))
                     for c in (ys[i], xs[i]))
    return tuple(int(rng.integers(min(0, n - size), max(1, n - size + 1))) for n in shape[:2])
