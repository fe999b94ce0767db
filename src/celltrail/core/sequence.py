"""Image sequences read lazily, one frame at a time.

A sequence comes from a folder of TIFF files (the CTC layout ``tTTT.tif`` or any folder of
label images), a multi-page TIFF stack, or a numpy array. Only headers are read up front, so bad
input fails before any work starts and memory does not grow with the number of frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tifffile

from celltrail.core.errors import InputError

TIFF_SUFFIXES = (".tif", ".tiff")
_SUPPORTED_KINDS = "biuf"  # bool, signed/unsigned integers, floats


def natural_key(path: Path) -> list[object]:
    """Sort key that orders ``t2.tif`` before ``t10.tif``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def check_frame(shape: tuple[int, ...], dtype: np.dtype, source: str | Path) -> None:
    """Raise :class:`InputError` unless a frame is a 2D image of a numeric dtype."""
    if len(shape) != 2:
        raise InputError(source, f"expected a 2D image, found shape {tuple(shape)}")
    if np.dtype(dtype).kind not in _SUPPORTED_KINDS:
        raise InputError(source, f"unsupported pixel type {np.dtype(dtype)}")


def _tiff_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and page count of a TIFF file, read from its header only."""
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise InputError(path, "not a readable TIFF file (it holds no image)")
            series = tif.series[0]
            return tuple(series.shape), series.dtype, len(series.pages)
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise InputError(path, f"not a readable TIFF file ({exc})") from exc


def read_tiff(path: Path) -> np.ndarray:
    """Read a whole TIFF file, turning any read failure into an :class:`InputError`."""
    try:
        return tifffile.imread(path)
    except Exception as exc:
        raise InputError(path, f"not a readable TIFF file ({exc})") from exc


class ImageSequence(Sequence[np.ndarray]):
    """A time-ordered sequence of 2D frames of one shape, read on demand.

    Frames are returned as read (no dtype conversion). ``name`` names the source in messages.
    """

    def __init__(self, name: str, shape: tuple[int, int], dtype: np.dtype, length: int) -> None:
        self.name = name
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._length = length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, t: int) -> np.ndarray:  # type: ignore[override]
        if not -self._length <= t < self._length:
            raise IndexError(f"frame {t} out of range for {self._length} frames")
        return self._read(t % self._length)

    def __iter__(self) -> Iterator[np.ndarray]:
        for t in range(self._length):
            yield self._read(t)

    def _read(self, t: int) -> np.ndarray:
        raise NotImplementedError

    def source_of(self, t: int) -> str:
        """Where frame ``t`` comes from, for error messages."""
        return self.name

    def every(self, step: int) -> ImageSequence:
        """A lazy view of every ``step``-th frame (0, step, 2*step, ...); no frame is read now."""
        if step < 1:
            raise InputError(None, f"frame step must be at least 1, got {step}")
        return self if step == 1 else SteppedSequence(self, step)

    def _checked(self, frame: np.ndarray, t: int) -> np.ndarray:
        check_frame(frame.shape, frame.dtype, self.source_of(t))
        if frame.shape != self.shape:
            raise InputError(
                self.source_of(t), f"frame shape {frame.shape} differs from {self.shape}"
            )
        return frame


class FolderSequence(ImageSequence):
    """One TIFF file per frame, sorted by the numbers in the file names."""

    def __init__(self, files: list[Path], name: str) -> None:
        self.files = files
        shape, dtype = None, None
        for path in files:
            fshape, fdtype, _ = _tiff_header(path)
            check_frame(fshape, fdtype, path)
            if shape is None:
                shape, dtype = fshape, fdtype
            elif fshape != shape:
                raise InputError(path, f"frame shape {fshape} differs from {shape} of {files[0]}")
        super().__init__(name, shape, dtype, len(files))

    def source_of(self, t: int) -> str:
        return str(self.files[t])

    def _read(self, t: int) -> np.ndarray:
        return self._checked(read_tiff(self.files[t]), t)


class StackSequence(ImageSequence):
    """A multi-page TIFF stack (T, Y, X) read page by page."""

    def __init__(self, path: Path) -> None:
        self.path = path
        shape, dtype, npages = _tiff_header(path)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise InputError(path, f"expected a (T, Y, X) stack, found shape {shape}")
        if npages not in (1, shape[0]):
            raise InputError(path, f"{npages} pages do not match {shape[0]} frames")
        check_frame(shape[1:], dtype, path)
        self._paged = npages == shape[0]
        super().__init__(str(path), tuple(shape[1:]), dtype, shape[0])

    def source_of(self, t: int) -> str:
        return f"{self.path} (frame {t})"

    def _read(self, t: int) -> np.ndarray:
        try:
            if self._paged:
                frame = tifffile.imread(self.path, key=t)
            else:  # one page holding every frame: memory-map it where the layout allows
                frame = np.asarray(tifffile.memmap(self.path, mode="r")[t])
        except Exception as exc:
            raise InputError(self.path, f"cannot read frame {t} ({exc})") from exc
        return self._checked(frame, t)


class ArraySequence(ImageSequence):
    """Frames held in a (T, Y, X) numpy array (or any array-like indexable on axis 0)."""

    def __init__(self, array: np.ndarray, name: str = "<array>") -> None:
        if array.ndim != 3:
            raise InputError(name, f"expected a (T, Y, X) array, found shape {array.shape}")
        check_frame(array.shape[1:], array.dtype, name)
        self.array = array
        super().__init__(name, tuple(array.shape[1:]), array.dtype, array.shape[0])

    def _read(self, t: int) -> np.ndarray:
        return np.asarray(self.array[t])


class SteppedSequence(ImageSequence):
    """Every ``step``-th frame of another sequence (temporal subsampling), read on demand."""

    def __init__(self, base: ImageSequence, step: int) -> None:
        self.base = base
        self.step = step
        super().__init__(base.name, base.shape, base.dtype, -(-len(base) // step))

    def source_of(self, t: int) -> str:
        return self.base.source_of(t * self.step)

    def _read(self, t: int) -> np.ndarray:
        return self.base[t * self.step]


def tiff_files(folder: Path) -> list[Path]:
    """The TIFF files of a folder in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES]
    return sorted(files, key=natural_key)


def open_sequence(source: str | Path | np.ndarray) -> ImageSequence:
    """Open a folder of TIFF frames, a TIFF stack or a (T, Y, X) array as an image sequence."""
    if isinstance(source, np.ndarray):
        return ArraySequence(source)
    path = Path(source)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        files = tiff_files(path)
        if not files:
            raise InputError(path, "folder holds no TIFF images (.tif/.tiff)")
        return FolderSequence(files, str(path))
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise InputError(path, "expected a folder of TIFF frames or a .tif/.tiff stack")
    return StackSequence(path)


def normalise(image: np.ndarray, percentiles: tuple[float, float] = (1, 99.8)) -> np.ndarray:
    """Percentile normalisation (``percentiles`` map to 0 and 1), float32."""
    lo, hi = np.percentile(image, percentiles)
    return ((image.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)).astype(np.float32)
