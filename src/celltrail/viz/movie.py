"""Overlay movies: cell contours, track ids, trails and the frame number (and time) on every
frame, as an animated GIF or MP4 video."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage
from celltrail.io.atomic import SIGNATURE, atomic_file
from celltrail.viz.overlay import TRAIL, overlay_frames

MOVIE_SUFFIXES = (".gif", ".mp4")
#: Frames beyond which a GIF draws a warning that an MP4 is smaller.
GIF_FRAMES = 100
#: How many times smaller an MP4 is than a GIF of the same overlays (``python
#: benchmarks/movie_sizes.py``): 1.9 on the bundled sample (40 frames of 384x384, 2.39 against
#: 1.25 MB), 2.6 to 3.6 on the shared CTC sequences; image noise fills both files.
MP4_SMALLER = 2
#: What a movie's suffix chooses, for the commands' help.
MOVIE_FORMATS = (f".gif or .mp4 (an .mp4 is {MP4_SMALLER}-3.6 times smaller on CTC data; a GIF "
                 "plays anywhere, in slides and web pages too)")


def check_movie_path(path: str | Path) -> Path:
    """``path`` as a Path, or :class:`InputError` unless it names a .gif or .mp4 file."""
    path = Path(path)
    if path.suffix.lower() not in MOVIE_SUFFIXES:
        raise InputError(path, "a movie must be written as .gif or .mp4")
    return path


def write_movie(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    path: str | Path,
    fps: int = 5,
    progress: Callable[[int, int], None] | None = None,
    lineage: Lineage | None = None,
    trail: int = TRAIL,
    numbers: bool = True,
) -> Path:
    """Write the overlay of every frame (see :func:`overlay_frames`) as a movie, atomically:
    an animated GIF that loops forever for ``.gif``, H.264 video for ``.mp4`` (odd-sized frames
    gain a black row or column, as H.264 needs even sizes).

    With ``lineage`` the cells take family colours (a daughter a shade of her mother's colour)
    and trail lines through their last ``trail`` centroids. With ``numbers`` every frame shows
    its number and, where ``images`` know their interval, the time. ``progress(done, total)``
    is called after each frame. A GIF of more than :data:`GIF_FRAMES` frames draws a warning.
    """
    path = check_movie_path(path)
    if len(images) == 0 or len(images) != len(masks):
        raise InputError(None, f"a movie needs one mask per image and at least one frame "
                               f"(found {len(images)} images, {len(masks)} masks)")
    if fps < 1:
        raise InputError(path, f"frame rate must be at least 1 per second, found {fps}")
    frames = (picture for _, picture in overlay_frames(images, masks, lineage, trail,
                                                       progress=progress, numbers=numbers))
    first = next(frames)
    with atomic_file(path) as tmp:
        if path.suffix.lower() == ".gif":
            first.save(tmp, format="GIF", save_all=True, append_images=frames,
                       duration=round(1000 / fps), loop=0, comment=SIGNATURE.encode())
        else:
            _write_mp4(tmp, chain([first], frames), first.size, fps)
    if path.suffix.lower() == ".gif" and len(images) > GIF_FRAMES:
        warnings.warn(f"{path}: a GIF of {len(images)} frames is large "
                      f"({path.stat().st_size / 1e6:.1f} MB); .mp4 is about {MP4_SMALLER} times "
                      "smaller", stacklevel=2)
    return path


def _write_mp4(
    path: Path, pictures: Iterator[Image.Image], size: tuple[int, int], fps: int
) -> None:
    """Encode RGB pictures as H.264 MP4 (named explicitly: ``path`` is a temporary name)."""
    width, height = size[0] + size[0] % 2, size[1] + size[1] % 2
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=fps, codec="libx264", macro_block_size=1,
        output_params=["-f", "mp4", "-metadata", f"comment={SIGNATURE}"], ffmpeg_log_level="error",
    )
    writer.send(None)  # start ffmpeg
    try:
        for picture in pictures:
            rgb = np.asarray(picture)
            pad = ((0, height - rgb.shape[0]), (0, width - rgb.shape[1]), (0, 0))
            writer.send(np.pad(rgb, pad))
    finally:
        writer.close()
