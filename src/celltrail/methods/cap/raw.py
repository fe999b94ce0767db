"""Rolling-as-window (RAW) inference (Algorithm 1 of the CAP paper)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from celltrail.methods.cap.points import PointTracks, Review, read_window

#: ``predict(start, stop, queries)``: points (T, N, 3, 2) and boolean visibilities (T, N, 3) of
#: the (N, 2) queries over frames ``start .. stop − 1``, the queries given in frame ``start``.
Predict = Callable[[int, int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def rolling_windows(predict: Predict, frames: int, queries: np.ndarray, window: int,
                    on_window: Callable[[int], None] | None = None, radius: float = 0.0,
                    review: Review | None = None, shortest: int | None = None,
                    persist: bool = False) -> PointTracks:
    """Track ``queries`` (N, 2), given in frame 0, through ``frames`` frames in windows of
    ``window`` frames.

    Each window's predictions are read frame by frame; at the first frame where a cell divides,
    its daughters join the queries (eq. 6) and the next window starts at that frame. A window
    without division is read to its end and the next one starts at its last frame.
    ``on_window(t)`` is told each time frames up to ``t`` are final. A daughter within
    ``radius`` of another cell is that cell. ``review`` drops points and finds the cells that
    appear in a frame (entering the field, or lost by their track): they join the queries like
    daughters ("a new cell", Algorithm 1; see :func:`read_window`). With ``shortest``, a
    window that was cut short is followed by one of twice the frames read, at least
    ``shortest``, and a window read to its end by one twice as long, at most ``window``:
    where cells appear often, windows are not computed in full to be read for a frame or two.
    ``persist``: see :func:`read_window`.
    """
    if window < 2:
        raise ValueError(f"a window needs at least 2 frames, not {window}")
    tracks = PointTracks()
    labels = [tracks.new(0, 0, q) for q in np.asarray(queries, dtype=np.float32)]
    start, length = 0, window
    while start < frames - 1 and (labels or review is not None):
        if labels:
            stop = min(start + length, frames)
            current = np.stack([tracks[label].positions[start] for label in labels])
            points, visible = predict(start, stop, current)
            last, labels = read_window(points, visible, labels, start, tracks, radius=radius,
                                       review=review, persist=persist)
            if shortest is not None:  # cut short: twice the frames read; else twice as long
                length = min(window, 2 * length if last == stop - 1
                             else max(shortest, 2 * (last - start)))
            start = last
        else:  # nothing to track: look for cells frame by frame
            start += 1
            found = review(start, [], np.zeros((0, 2), np.float32))[2]
            labels = [tracks.new(0, start, where) for where in found]
        if on_window is not None:
            on_window(start)
    return tracks
