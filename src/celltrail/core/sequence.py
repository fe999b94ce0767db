"""Image sequences read lazily, one frame at a time.

A sequence comes from a folder of TIFF files (the CTC layout ``tTTT.tif`` or any folder of
label images) or of PNG/JPEG files, a multi-page TIFF stack, a numpy or dask array, or, through
bioio (:mod:`celltrail.io.readers`), an OME-TIFF, an OME-Zarr or a microscope file (CZI, ND2,
LIF with the ``formats`` extra). Only headers are read up front, so bad input fails before any
work starts and memory does not grow with the number of frames. A sequence carries its pixel
size (µm) and frame interval (minutes) where the metadata or the caller tells them.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import tifffile

from celltrail.core.errors import InputError, OptionError

TIFF_SUFFIXES = (".tif", ".tiff")
#: Picture formats read as frames of a folder (e.g. Cellpose's ``*_cp_masks.png``).
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: A channel or position: its index, or its name in the file's metadata.
Choice = int | str
_SUPPORTED_KINDS = "biuf"  # bool, signed/unsigned integers, floats


def natural_key(path: Path) -> list[object]:
    """Sort key that orders ``t2.tif`` before ``t10.tif`` (and ``t001.tif`` before ``t1.tif``:
    ties go by name, so the order never depends on the file system's)."""
    parts = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]
    return [*parts, path.name]


def check_frame(shape: tuple[int, ...], dtype: np.dtype, source: str | Path) -> None:
    """Raise :class:`InputError` unless a frame is a 2D image of a numeric dtype."""
    if len(shape) != 2:
        raise InputError(source, f"expected a 2D image, found shape {tuple(shape)}")
    if np.dtype(dtype).kind not in _SUPPORTED_KINDS:
        raise InputError(source, f"unsupported pixel type {np.dtype(dtype)}")


def check_link(path: Path) -> None:
    """Raise :class:`InputError` when ``path`` is a symbolic link that resolves to nothing."""
    if path.is_symlink() and not path.exists():
        raise InputError(path, "broken symbolic link (its target is missing or loops)")


def _family(dtype: np.dtype) -> str:
    """Pixel types that may mix in one sequence: integers of any width, or floats, or bools."""
    kind = np.dtype(dtype).kind
    return "integer" if kind in "iu" else kind


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


def _picture_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape and dtype of a PNG or JPEG file, read from its header only."""
    import imageio.v3 as iio  # here: only folders of pictures need it

    try:
        props = iio.improps(path)
    except Exception as exc:
        raise InputError(path, f"not a readable {path.suffix[1:].upper()} file ({exc})") from exc
    return tuple(props.shape), props.dtype, 1


def _read_picture(path: Path) -> np.ndarray:
    """Read a PNG or JPEG file, turning any read failure into an :class:`InputError`."""
    import imageio.v3 as iio

    try:
        return iio.imread(path)
    except Exception as exc:
        raise InputError(path, f"not a readable {path.suffix[1:].upper()} file ({exc})") from exc


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES


class ImageSequence(Sequence[np.ndarray]):
    """A time-ordered sequence of 2D frames of one shape, read on demand.

    Frames are returned as read (no dtype conversion). ``name`` names the source in messages;
    ``pixel_size`` (µm) and ``interval`` (minutes between frames) are None where unknown.
    """

    pixel_size: float | None = None
    interval: float | None = None

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

    def with_scale(self, pixel_size: float | None, interval: float | None) -> ImageSequence:
        """This sequence with the pixel size (µm) and frame interval (minutes) given, each
        replacing what the metadata said (None keeps it); a value not positive is an error."""
        for name, value in (("pixel_size", pixel_size), ("interval", interval)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise OptionError(name, f"must be a positive finite number, not {value:g}")
        self.pixel_size = self.pixel_size if pixel_size is None else float(pixel_size)
        self.interval = self.interval if interval is None else float(interval)
        return self

    def _checked(self, frame: np.ndarray, t: int) -> np.ndarray:
        check_frame(frame.shape, frame.dtype, self.source_of(t))
        if frame.shape != self.shape:
            raise InputError(
                self.source_of(t), f"frame shape {frame.shape} differs from {self.shape}"
            )
        if frame.dtype.kind == "f" and not np.isfinite(frame).all():
            bad = int(np.count_nonzero(~np.isfinite(frame)))
            raise InputError(self.source_of(t), f"{bad} pixels are NaN or infinite")
        return frame


class FolderSequence(ImageSequence):
    """One TIFF, PNG or JPEG file per frame, sorted by the numbers in the file names."""

    def __init__(self, files: list[Path], name: str) -> None:
        self.files = files
        shape, dtype = None, None
        for path in files:
            fshape, fdtype, _ = (_tiff_header if _is_tiff(path) else _picture_header)(path)
            check_frame(fshape, fdtype, path)
            if shape is None:
                shape, dtype = fshape, fdtype
            elif fshape != shape:
                raise InputError(path, f"frame shape {fshape} differs from {shape} of {files[0]}")
            elif _family(fdtype) != _family(dtype):
                raise InputError(path, f"pixel type {np.dtype(fdtype)} differs from "
                                       f"{np.dtype(dtype)} of {files[0]}")
        super().__init__(name, shape, dtype, len(files))

    def source_of(self, t: int) -> str:
        return str(self.files[t])

    def _read(self, t: int) -> np.ndarray:
        path = self.files[t]
        return self._checked((read_tiff if _is_tiff(path) else _read_picture)(path), t)


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
    """Frames held in a (T, Y, X) numpy array or any array-like indexable on axis 0 (a dask
    array's frames are computed one at a time, as read)."""

    def __init__(self, array: np.ndarray, name: str = "<array>") -> None:
        if array.ndim != 3:
            raise InputError(name, f"expected a (T, Y, X) array, found shape "
                                   f"{tuple(array.shape)}")
        check_frame(array.shape[1:], array.dtype, name)
        self.array = array
        super().__init__(name, tuple(array.shape[1:]), array.dtype, array.shape[0])

    def _read(self, t: int) -> np.ndarray:
        frame = self.array[t]
        if hasattr(frame, "compute"):  # dask: in this thread, never on a distributed client
            frame = frame.compute(scheduler="synchronous")
        return np.asarray(frame)


class SteppedSequence(ImageSequence):
    """Every ``step``-th frame of another sequence (temporal subsampling), read on demand."""

    def __init__(self, base: ImageSequence, step: int) -> None:
        self.base = base
        self.step = step
        super().__init__(base.name, base.shape, base.dtype, -(-len(base) // step))
        self.pixel_size = base.pixel_size
        self.interval = None if base.interval is None else base.interval * step

    def source_of(self, t: int) -> str:
        return self.base.source_of(t * self.step)

    def _read(self, t: int) -> np.ndarray:
        return self.base[t * self.step]


def tiff_files(folder: Path, allow_gaps: bool = False,
               suffixes: tuple[str, ...] = TIFF_SUFFIXES) -> list[Path]:
    """The TIFF files (or those of other ``suffixes``) of a folder in natural order. When every
    name holds a number, the numbers are the frames: two files of one frame, or a frame missing
    between the first and the last (unless ``allow_gaps``), are errors naming the files; so is
    a broken link."""
    files = []
    for path in folder.iterdir():
        if path.suffix.lower() not in suffixes:
            continue
        check_link(path)
        if path.is_file():
            files.append(path)
    files.sort(key=natural_key)
    numbers = [re.findall(r"\d+", p.stem) for p in files]
    if files and all(numbers):
        check_numbering(files, [int(found[-1]) for found in numbers], allow_gaps)
    return files


def check_numbering(files: list[Path], numbers: list[int], allow_gaps: bool) -> None:
    """Raise :class:`InputError` on two files of one frame number or, unless ``allow_gaps``,
    a number missing between the first and the last."""
    frames: dict[int, list[Path]] = {}
    for path, number in zip(files, numbers, strict=True):
        frames.setdefault(number, []).append(path)
    for frame, paths in frames.items():
        if len(paths) > 1:
            raise InputError(paths[1], f"holds frame {frame}, as does {paths[0].name}")
    ordered = sorted(frames)
    for before, after in pairwise(ordered):
        if after != before + 1 and not allow_gaps:
            raise InputError(frames[after][0], f"frame numbers jump from {before} "
                                               f"({frames[before][0].name}) to {after}: frame "
                                               f"{before + 1} is missing (--allow-gaps tracks "
                                               f"them as consecutive frames)")


class LabelSequence(ImageSequence):
    """Label images (another sequence's frames), each checked as read: integers, no label
    below 0 or beyond int64."""

    def __init__(self, base: ImageSequence) -> None:
        if base.dtype.kind not in "iu":
            raise InputError(base.name, f"label images must hold integers, found {base.dtype}")
        self.base = base
        super().__init__(base.name, base.shape, base.dtype, len(base))
        self.pixel_size, self.interval = base.pixel_size, base.interval

    def source_of(self, t: int) -> str:
        return self.base.source_of(t)

    def _read(self, t: int) -> np.ndarray:
        frame = self.base[t]
        if frame.dtype.kind not in "iu":
            raise InputError(self.source_of(t), f"label images must hold integers, found "
                                                f"{frame.dtype}")
        if frame.size and frame.min() < 0:
            raise InputError(self.source_of(t), f"negative label {frame.min()}")
        if frame.dtype == np.uint64 and frame.size and frame.max() > np.iinfo(np.int64).max:
            raise InputError(self.source_of(t), f"label {frame.max()} is beyond int64")
        return frame


def open_sequence(
    source: str | os.PathLike | np.ndarray,
    allow_gaps: bool = False,
    channel: Choice | None = None,
    position: Choice | None = None,
    pixel_size: float | None = None,
    interval: float | None = None,
) -> ImageSequence:
    """Open a folder of TIFF, PNG or JPEG frames, a TIFF stack, an OME-TIFF, an OME-Zarr, a
    microscope file or a (T, Y, X) numpy or dask array as an image sequence.

    ``channel`` and ``position`` (scene) pick, by index or name, one of several; a file with
    several and none picked is an error listing them. ``pixel_size`` (µm) and ``interval``
    (minutes) replace what the metadata says. ``allow_gaps``: see :func:`tiff_files`.
    """
    if isinstance(source, str | os.PathLike):
        sequence = _open_path(Path(source), allow_gaps, channel, position)
    elif all(hasattr(source, name) for name in ("shape", "dtype", "ndim", "__getitem__")):
        sequence = _open_array(source, channel, position)
    else:
        raise InputError(None, f"cannot read images from a {type(source).__name__}: expected a "
                               f"file or folder path, or a (T, Y, X) numpy or dask array")
    return sequence.with_scale(pixel_size, interval)


def choose(source: str | Path, what: str, names: Sequence[str], chosen: Choice | None) -> int:
    """The index of the ``what`` (channel, position) ``chosen`` by index or name among
    ``names``; with none chosen, 0 when there is only one, else an error listing them."""
    shown = ", ".join(f"{i} {name}".rstrip() for i, name in enumerate(names[:12]))
    shown += f" and {len(names) - 12} more" * (len(names) > 12)
    count = f"{len(names)} {what}{'s' * (len(names) != 1)} ({shown})"
    if chosen is None:
        if len(names) == 1:
            return 0
        raise InputError(source, f"holds {count}: choose one with --{what} N")
    if isinstance(chosen, str) and chosen in names:
        return list(names).index(chosen)
    text = str(chosen)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    raise InputError(source, f"no {what} {chosen!r}: it holds {count}")


def is_zarr(path: Path) -> bool:
    """Whether ``path`` is a Zarr store (v2 or v3), e.g. an OME-Zarr image."""
    return path.is_dir() and any((path / name).is_file()
                                 for name in ("zarr.json", ".zattrs", ".zgroup"))


def _needs_bioio(path: Path) -> bool:
    """Whether a file is for bioio rather than the fast TIFF path: any other format, an
    OME-TIFF (metadata, channels, scenes) or an ImageJ hyperstack of more than 3 axes."""
    if not _is_tiff(path):
        return True
    try:
        with tifffile.TiffFile(path) as tif:
            return tif.is_ome or (tif.is_imagej and len(tif.series[0].shape) > 3)
    except (OSError, ValueError, IndexError, struct.error):  # tifffile on a damaged file
        return False  # the fast path names the damage


def _open_path(path: Path, allow_gaps: bool, channel: Choice | None,
               position: Choice | None) -> ImageSequence:
    """A sequence from a file or folder: bioio for OME and microscope formats, else ours."""
    check_link(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if is_zarr(path) or (path.is_file() and _needs_bioio(path)):
        from celltrail.io.readers import open_bioimage  # here: bioio takes seconds to import

        return open_bioimage(path, channel, position)
    choose(path, "channel", [""], channel)
    choose(path, "position", [""], position)
    if path.is_dir():
        files = tiff_files(path, allow_gaps) or tiff_files(path, allow_gaps, PICTURE_SUFFIXES)
        if not files:
            raise InputError(path, "folder holds no TIFF images (.tif/.tiff), nor PNG or JPEG "
                                   "(.png/.jpg/.jpeg)")
        sequence: ImageSequence = FolderSequence(files, str(path))
        first = files[0]
    else:
        sequence, first = StackSequence(path), path
    if _is_tiff(first):
        sequence.pixel_size, sequence.interval = _celltrail_scale(first)
    return sequence


def as_sequence(images: object) -> ImageSequence:
    """``images`` as an image sequence: itself if it is one, else :func:`open_sequence` of it."""
    return images if isinstance(images, ImageSequence) else open_sequence(images)  # type: ignore[arg-type]


def _celltrail_scale(path: Path) -> tuple[float | None, float | None]:
    """The pixel size (µm) and frame interval (minutes) that celltrail wrote into a TIFF's
    JSON description (:class:`~celltrail.core.result.MaskStore`); None where absent."""
    with tifffile.TiffFile(path) as tif:
        found = (tif.shaped_metadata or ({},))[0]

    def positive(key: str) -> float | None:
        value = found.get(key)
        return float(value) if isinstance(value, int | float) and value > 0 else None

    return positive("pixel_size_um"), positive("interval_min")


def _open_array(array: np.ndarray, channel: Choice | None,
                position: Choice | None) -> ImageSequence:
    """A sequence from a (T, Y, X) array, or a (T, C, Y, X) one with ``channel`` given."""
    name = f"<{type(array).__name__}>"
    choose(name, "position", [""], position)
    if array.ndim == 4 and channel is not None:
        return ArraySequence(array[:, choose(name, "channel", [""] * array.shape[1], channel)],
                             name)
    choose(name, "channel", [""], channel)
    if array.ndim == 4:
        raise InputError(name, f"expected a (T, Y, X) array, found shape {tuple(array.shape)}: "
                               f"for a (T, C, Y, X) array, choose a channel")
    return ArraySequence(array, name)


def open_labels(source: str | os.PathLike | np.ndarray, allow_gaps: bool = False,
                **options: object) -> LabelSequence:
    """Open label images (a segmentation) as :func:`open_sequence` opens images (same
    options), checking that they hold non-negative integer labels."""
    return LabelSequence(open_sequence(source, allow_gaps, **options))  # type: ignore[arg-type]


def normalise(image: np.ndarray, percentiles: tuple[float, float] = (1, 99.8)) -> np.ndarray:
    """Percentile normalisation (``percentiles`` map to 0 and 1), float32."""
    lo, hi = np.percentile(image, percentiles)
    return ((image.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)).astype(np.float32)
