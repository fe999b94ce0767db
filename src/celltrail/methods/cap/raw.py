"""Rolling-as-window (RAW) inference (Algorithm 1 of the CAP paper)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from celltrail.methods.cap.points import PointTracks, read_window

#: ``predict(start, stop, queries)``: points (T, N, 3, 2) and boolean visibilities (T, N, 3) of
#: the (N, 2) queries over frames ``start .. stop − 1``, the queries given in frame ``start``.
Predict = Callable[[int, int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def rolling_windows(predict: Predict, frames: int, queries: np.ndarray, window: int,
                    on_window: Callable[[int], None] | None = None, radius: float = 0.0
                    ) -> PointTracks:
    """Track ``queries`` (N, 2), given in frame 0, through ``frames`` frames in windows of
    ``window`` frames.

    Each window's predictions are read frame by frame; at the first frame where a cell divides,
    its daughters join the queries (eq. 6) and the next window starts at that frame. A window
    without division is read to its end and the next one starts at its last frame.
    ``on_window(t)`` is told each time frames up to ``t`` are final. A daughter within
    ``radius`` of another cell is that cell (see :func:`read_window`).
    """
    if window < 2:
        raise ValueError(f"a window needs at least 2 frames, not {window}")
    tracks = PointTracks()
    labels = [tracks.new(0, 0, q) for q in np.asarray(queries, dtype=np.float32)]
    start = 0
    while start < frames - 1 and labels:
        stop = min(start + window, frames)
        current = np.stack([tracks[label].positions[start] for label in labels])
        points, visible = predict(start, stop, current)
        start, labels = read_window(points, visible, labels, start, tracks, radius=radius)
        if on_window is not None:
            on_window(start)
    return tracks
