"""Microscopy files read through bioio: OME-TIFF, OME-Zarr, ImageJ hyperstacks and, with the
``formats`` extra, CZI, ND2 and LIF.

One channel of one position (scene) becomes a lazy (T, Y, X) sequence: bioio gives a dask array
and each frame is computed when it is read, so memory stays flat in the sequence's length. The
pixel size (µm) and frame interval (minutes) come from the metadata where a reader states them
with their units.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from celltrail.core.errors import InputError
from celltrail.core.sequence import (
    TIFF_SUFFIXES,
    Choice,
    ImageSequence,
    check_frame,
    choose,
)

#: The microscope formats of the ``formats`` extra, by suffix: the plugin each needs.
FORMAT_PLUGINS = {".czi": "bioio-czi", ".nd2": "bioio-nd2", ".lif": "bioio-lif"}
#: Readers whose pixel sizes are defaults rather than metadata (1.0 for any plain TIFF).
UNTRUSTED_METADATA = ("bioio_tifffile", "bioio_imageio")


class BioSequence(ImageSequence):
    """(T, Y, X) frames cut from a bioio image, each read by ``read(t)`` when asked for."""

    def __init__(self, path: Path, name: str, shape: tuple[int, ...], dtype: np.dtype,
                 read: Callable[[int], np.ndarray]) -> None:
        check_frame(tuple(shape[1:]), dtype, path)
        self.path = path
        self.read = read
        super().__init__(name, tuple(shape[1:]), dtype, shape[0])

    def source_of(self, t: int) -> str:
        return f"{self.name} (frame {t})"

    def _read(self, t: int) -> np.ndarray:
        try:
            frame = np.asarray(self.read(t))
        except Exception as exc:
            raise InputError(self.path, f"cannot read frame {t} ({exc})") from exc
        return self._checked(frame, t)


def _tiff_reader(path: Path, scene: int, planes: dict[str, int],
                 frames: int) -> Callable[[int], np.ndarray] | None:
    """Frame ``t`` of a TIFF series, ``planes`` naming the plane of each axis (``t`` for the
    time axis), read through tifffile's zarr view of its pages: some 50 times faster than
    bioio's reading, which opens the file for each frame. None where the series has another
    axis of more than one plane or another number of frames."""
    import zarr

    tif = tifffile.TiffFile(path)  # stays open for the sequence's life, as the view needs it
    series = tif.series[scene]
    sizes = dict(zip(series.axes, series.shape, strict=True))
    time_axis = next(axis for axis, plane in planes.items() if plane < 0)
    if any(size > 1 for axis, size in sizes.items() if axis not in "TCZSYX") \
            or sizes.get(time_axis, 1) != frames:
        tif.close()
        return None
    array = zarr.open(series.aszarr(level=0), mode="r")

    def read(t: int) -> np.ndarray:
        index = {**planes, time_axis: t, "Y": slice(None), "X": slice(None)}
        return array[tuple(index.get(axis, 0) for axis in series.axes)]

    return read


def _bioimage(path: Path) -> Any:
    """The bioio image of ``path``, or an :class:`InputError` saying what to install or what
    is wrong."""
    from bioio import BioImage
    from bioio_base.exceptions import UnsupportedFileFormatError

    logging.getLogger("bioio").setLevel(logging.ERROR)  # its tries of each plugin are noise
    try:
        return BioImage(path)
    except UnsupportedFileFormatError:
        plugin = FORMAT_PLUGINS.get(path.suffix.lower())
        if plugin is not None and find_spec(plugin.replace("-", "_")) is not None:
            raise InputError(path, f"not a readable {path.suffix[1:].upper()} file ({plugin} "
                                   f"cannot read it)") from None
        if plugin is not None:
            raise InputError(path, f"reading {path.suffix} files needs {plugin}: pip install "
                                   f"'celltrail[formats]'") from None
        raise InputError(path, "expected a folder of TIFF, PNG or JPEG frames, a TIFF stack, an "
                               "OME-TIFF, an OME-Zarr, or CZI, ND2, LIF (with pip install "
                               "'celltrail[formats]')") from None
    except Exception as exc:
        raise InputError(path, f"not a readable image ({' '.join(str(exc).split())})") from exc


def open_bioimage(path: Path, channel: Choice | None = None,
                  position: Choice | None = None) -> ImageSequence:
    """One channel of one position of ``path`` as a lazy (T, Y, X) sequence with the pixel
    size and frame interval of its metadata (None where it has none).

    A file without time points whose only other axis is its channels or z-planes (a stack that
    tifffile wrote as ``.ome.tif``, or Fiji's slices) is read along that axis, with a warning.
    """
    with warnings.catch_warnings():  # the plugins' deprecation notices are not the user's
        warnings.simplefilter("ignore", DeprecationWarning)
        return _open_bioimage(path, channel, position)


def _open_bioimage(path: Path, channel: Choice | None, position: Choice | None) -> ImageSequence:
    """:func:`open_bioimage` without the plugins' deprecation notices."""
    image = _bioimage(path)
    scene = choose(path, "position", [str(s) for s in image.scenes], position)
    image.set_scene(scene)
    dims = image.dims
    time_axis = _time_axis(path, dims, channel)
    names = [str(c) for c in image.channel_names or ()]
    planes = {"T": 0, "C": choose(path, "channel", names if len(names) == dims.C
                                  else [""] * dims.C, channel) if time_axis != "C" else 0,
              "Z": 0, **({"S": 0} if "S" in dims.order else {}), time_axis: -1}
    if dims.Z > 1 and time_axis != "Z":
        raise InputError(path, f"holds {dims.Z} z-planes: celltrail tracks 2D time-lapse "
                               f"(T, Y, X)")
    if "S" in dims.order and dims.S > 1:
        raise InputError(path, f"holds colour images ({dims.S} samples per pixel): expected "
                               f"one grey value per pixel")
    length = getattr(dims, time_axis)
    read = _tiff_reader(path, scene, planes, length) \
        if path.suffix.lower() in TIFF_SUFFIXES else None
    if read is None:
        frames = image.get_image_dask_data(
            f"{time_axis}YX", **{k: v for k, v in planes.items() if k != time_axis})
        read = lambda t: frames[t].compute(scheduler="synchronous")  # noqa: E731
    name = str(path) if len(image.scenes) == 1 else f"{path} [position {scene}]"
    sequence = BioSequence(path, name, (length, dims.Y, dims.X), image.dtype, read)
    if type(image.reader).__module__.split(".")[0] not in UNTRUSTED_METADATA:
        sequence.pixel_size = pixel_size_um(image)
        sequence.interval = interval_min(image) if time_axis == "T" else None
    return sequence


def _time_axis(path: Path, dims: Any, channel: Choice | None) -> str:
    """``T``, or the one axis of several planes (C or Z) of a file without time points and
    without a channel chosen, which is then read as time (warning that it is)."""
    stacked = [axis for axis in "CZ" if getattr(dims, axis) > 1]
    if dims.T > 1 or channel is not None or len(stacked) != 1:
        return "T"
    what = {"C": "channels", "Z": "z-planes"}[stacked[0]]
    warnings.warn(f"{path}: no time axis; its {getattr(dims, stacked[0])} {what} are read as "
                  f"frames", stacklevel=6)
    return stacked[0]


def _convert(value: float | None, unit: object, to: str) -> float | None:
    """``value`` in ``unit`` (a pint unit or its name) as a positive number of ``to``, or None
    where the value is missing or not positive, or the unit unknown."""
    from bioio_base.types import ureg

    if value is None or unit is None or not np.isfinite(value) or value <= 0:
        return None
    try:
        return float(ureg.Quantity(float(value), str(unit)).to(to).magnitude)
    except (AttributeError, TypeError, ValueError):  # pint: an unknown or incompatible unit
        return None


def _ome_pixels(image: Any) -> Any:
    """The OME ``Pixels`` of the current scene where the reader's metadata is OME, else None."""
    from ome_types import OME

    metadata = image.metadata
    if isinstance(metadata, OME) and image.current_scene_index < len(metadata.images):
        return metadata.images[image.current_scene_index].pixels
    return None


def pixel_size_um(image: Any) -> float | None:
    """The pixel size (along X) in µm; a length without unit is taken in µm, OME's default."""
    unit = image.dimension_properties.X.unit
    pixels = _ome_pixels(image)
    if unit is None and pixels is not None and pixels.physical_size_x_unit is not None:
        unit = pixels.physical_size_x_unit.value
    return _convert(image.physical_pixel_sizes.X, unit or "micrometer", "micrometer")


def interval_min(image: Any) -> float | None:
    """The time between frames in minutes: bioio's interval, else OME's ``TimeIncrement``
    (in seconds unless its unit says otherwise); None where the unit is not known."""
    interval = image.time_interval
    if isinstance(interval, timedelta):
        return _convert(interval.total_seconds(), "second", "minute")
    if interval is not None:
        return _convert(interval, image.dimension_properties.T.unit, "minute")
    pixels = _ome_pixels(image)
    if pixels is None or pixels.time_increment is None:
        return None
    unit = pixels.time_increment_unit.value if pixels.time_increment_unit else "s"
    return _convert(pixels.time_increment, unit, "minute")
