"""napari reader: a Cell Tracking Challenge folder or a GEFF store as Image, Labels and Tracks
layers; and the bundled sample as sample data.

Images (``NN``, ``tTTT.tif``) open lazily as a dask array, so long sequences load frame by frame
as they are viewed. Label masks (``NN_GT`` TRA/SEG, result ``maskTTT.tif``) are read whole, as
the Tracks layer needs every frame's centroids and napari can only paint numpy labels. A GEFF
store opens as Tracks, with Labels when it holds a segmentation. The reader claims folders only
(CTC folders and GEFF stores are folders), so napari never asks about plain image files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage
from celltrail.core.sequence import ImageSequence, open_sequence, read_tiff
from celltrail.io.ctc import numbered_files, read_result, read_segmentation_gt, read_tracking_gt
from celltrail.io.geff import geff_result, graph_group, read_geff_tracks
from celltrail.io.tables import tracks_table

#: Layer metadata key of ``{label: parent label}``, which the writer turns back into a lineage.
PARENTS_KEY = "celltrail_parents"

LayerData = tuple[Any, dict[str, Any], str]

#: The bundled sample: a crop of Fluo-N2DH-GOWT1 01 with its ground truth.
SAMPLE = Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop"))


def folder_kind(path: Path) -> str | None:
    """``"gt"`` (``NN_GT``), ``"result"``, ``"images"`` (``tTTT.tif``) or None for other paths."""
    if not path.is_dir():
        return None
    if (path / "TRA").is_dir():
        return "gt"
    if (path / "res_track.txt").is_file() or numbered_files(path, "mask"):
        return "result"
    if numbered_files(path, "t"):
        return "images"
    return None


def napari_get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """The reader of ``path`` if it is a CTC folder or a GEFF store (a zarr folder that is or
    holds a GEFF graph), else None (napari then tries others)."""
    if not isinstance(path, str | Path) or not Path(path).is_dir():
        return None
    folder = Path(path)
    if folder_kind(folder) is not None:
        return read_ctc
    zarr_like = folder.suffix.lower() in (".zarr", ".geff") or any(
        (folder / name).is_file() for name in (".zgroup", "zarr.json"))
    try:
        found = zarr_like and graph_group(folder) is not None
    except InputError:  # several graphs: the reader names them
        found = True
    return read_geff_layers if found else None


def read_ctc(path: str | Path) -> list[LayerData]:
    """The layers of a CTC image, ground-truth or result folder."""
    folder = Path(path)
    kind = folder_kind(folder)
    if kind == "images":
        return [image_layer(open_sequence(folder), folder.name)]
    if kind == "result":
        result = read_result(folder)
        return tracking_layers(result.masks, result.lineage, folder.name)
    truth = read_tracking_gt(folder)
    layers = tracking_layers(truth.masks, truth.lineage, f"{folder.name} TRA")
    if (folder / "SEG").is_dir():
        layers.insert(1, seg_layer(folder, layers[0][0].shape))
    return layers


def read_geff_layers(path: str | Path) -> list[LayerData]:
    """The layers of a GEFF store: Labels and Tracks when it holds a segmentation (relabelled
    to track labels), else Tracks of its nodes' positions."""
    store = Path(path)
    tracks = read_geff_tracks(store)
    if tracks.labels is not None:
        result = geff_result(tracks)
        return tracking_layers(result.masks, result.lineage, store.stem)
    graph = {label: [track.parent] for label, track in tracks.lineage.items() if track.parent}
    meta = {"name": f"{store.stem} tracks", "graph": graph, "tail_length": 10}
    return [(tracks.layer_data(), meta, "tracks")]


def sample_gowt1() -> list[LayerData]:
    """The bundled sample: its images, and its ground truth as Labels and Tracks."""
    return [*read_ctc(SAMPLE / "01"), *read_ctc(SAMPLE / "01_GT")]


def image_layer(sequence: ImageSequence, name: str) -> LayerData:
    """An Image layer reading each frame of ``sequence`` only when napari shows it; the contrast
    is stretched to the first frame's 0.1-99.9 percentiles (napari would use the dtype's range
    for lazy data, and microscopy images use little of it)."""
    read = dask.delayed(sequence.__getitem__)
    frames = [da.from_delayed(read(t), shape=sequence.shape, dtype=sequence.dtype)
              for t in range(len(sequence))]
    low, high = np.percentile(sequence[0], (0.1, 99.9))
    kwargs: dict[str, Any] = {"name": name}
    if high > low:
        kwargs["contrast_limits"] = [float(low), float(high)]
    return da.stack(frames), kwargs, "image"


def tracking_layers(
    masks: Sequence[np.ndarray], lineage: Lineage, name: str
) -> list[LayerData]:
    """A Labels layer of ``masks`` (T, Y, X), and a Tracks layer of its cells' centroids with the
    lineage as napari's ``graph`` (none when no cell is labelled)."""
    stack = np.stack(list(masks))
    parents = {label: track.parent for label, track in lineage.items() if track.parent}
    layers = [(stack, {"name": name, "metadata": {PARENTS_KEY: parents}}, "labels")]
    tracks = tracks_layer(stack, lineage, f"{name} tracks")
    return layers if tracks is None else [*layers, tracks]


def tracks_layer(masks: Sequence[np.ndarray], lineage: Lineage, name: str) -> LayerData | None:
    """Tracks of ``(track id, frame, y, x)`` rows, one per cell per frame; ``graph`` links each
    daughter track to its parent. None when no cell is labelled (napari needs one point)."""
    table = tracks_table(masks, lineage)
    if table.empty:
        return None
    present = set(table["id"].tolist())
    graph = {label: [track.parent] for label, track in lineage.items()
             if label in present and track.parent in present}
    data = table[["id", "frame", "y", "x"]].to_numpy(dtype=np.float64)
    return data, {"name": name, "graph": graph, "tail_length": 10}, "tracks"


def seg_layer(gt_dir: Path, shape: tuple[int, ...]) -> LayerData:
    """The reference segmentations of ``NN_GT/SEG`` as (T, Y, X) labels, empty where a frame has
    none (CTC annotates only some frames)."""
    frames = {}
    for t, path in read_segmentation_gt(gt_dir).items():
        frames[t] = read_tiff(path)
        if t >= shape[0]:
            raise InputError(path, f"frame {t} is beyond the {shape[0]} TRA frames")
        if frames[t].shape != shape[1:]:
            raise InputError(path, f"shape {frames[t].shape} differs from the TRA markers' "
                                   f"{shape[1:]}")
    seg = np.zeros(shape, dtype=np.result_type(np.uint16, *(f.dtype for f in frames.values())))
    for t, frame in frames.items():
        seg[t] = frame
    return seg, {"name": f"{gt_dir.name} SEG", "visible": False}, "labels"
