"""GEFF (graph exchange file format) export and import of tracking results.

A store written here is a zarr (v2) folder holding two siblings, as the GEFF spec recommends:
``tracks`` is the GEFF graph and ``segmentation`` the (T, Y, X) label array it refers to (a
related object of type ``labels``), so readers such as traccuracy get cells and pixels together.

The graph has one node per cell per frame with ``t``, ``y``, ``x`` (centroid, pixels), ``area``
(pixels), ``seg_id`` (the cell's label in that frame of ``segmentation``) and ``track_id`` (its CTC
track label, here equal to ``seg_id``). Edges link a track's nodes in consecutive frames, and the
last node of a parent track to the first node of each child track (divisions and the tracks that
continue a cell after a gap), so the CTC lineage can be rebuilt exactly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zarr
from geff import GeffMetadata
from geff.core_io import read_to_memory, write_arrays
from geff.validate.data import ValidationConfig
from geff_spec import Axis, PropMetadata, RelatedObject
from pydantic import ValidationError

from celltrail.core.errors import CellTrailError, InputError
from celltrail.core.lineage import Lineage, Track
from celltrail.core.result import TrackingResult, mask_dtype
from celltrail.io.atomic import atomic_dir

#: Names of the GEFF graph group and of the label array beside it.
GRAPH = "tracks"
SEGMENTATION = "segmentation"

_DESCRIPTIONS = {
    "t": "frame index",
    "y": "centroid row (pixels)",
    "x": "centroid column (pixels)",
    "area": "cell area (pixels)",
    "seg_id": "label of the cell in this frame of the segmentation",
    "track_id": "CTC track label (one unbroken run of frames)",
}


@contextmanager
def _label_prop_allowed() -> Iterator[None]:
    """Silence the deprecation of ``label_prop``, which traccuracy 0.4.3 still reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _metadata(dtypes: dict[str, np.dtype]) -> GeffMetadata:
    props = {
        name: PropMetadata(identifier=name, dtype=str(dtypes[name]), description=text)
        for name, text in _DESCRIPTIONS.items()
    }
    with _label_prop_allowed():
        labels = RelatedObject(
            type="labels", path=f"../{SEGMENTATION}", node_prop="seg_id", label_prop="seg_id"
        )
        return GeffMetadata(
            directed=True,
            axes=[
                Axis(name="t", type="time", unit="frame"),
                Axis(name="y", type="space", unit="pixel"),
                Axis(name="x", type="space", unit="pixel"),
            ],
            node_props_metadata=props,
            edge_props_metadata={},
            related_objects=[labels],
        )


def write_geff(result: TrackingResult, path: str | Path, overwrite: bool = False) -> Path:
    """Write a result as a GEFF store (graph + segmentation), atomically; returns ``path``.
    An existing store is replaced only when celltrail wrote it (or with ``overwrite``)."""
    path = Path(path)
    if not len(result.masks):
        raise CellTrailError("a result with no frames cannot be written as GEFF")
    top = max(result.lineage, default=0)
    dtype = mask_dtype(top)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in ("t", "y", "x", "area", "seg_id")}
    frame_labels = []
    with atomic_dir(path, overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=2)
        shape = np.asarray(result.masks[0]).shape
        seg = root.create_array(
            SEGMENTATION, shape=(len(result.masks), *shape), chunks=(1, *shape), dtype=dtype
        )
        for t, mask in enumerate(result.masks):
            mask = np.asarray(mask)
            if mask.shape != shape:
                raise CellTrailError(f"frame {t}: mask shape {mask.shape} is not {shape}")
            if int(mask.max(initial=0)) > top:
                result.validate()  # raises, naming the label that is not in the lineage
            seg[t] = mask
            pixels = np.flatnonzero(mask)  # row-major indices of the cells' pixels
            cell = mask.ravel()[pixels]
            area = np.bincount(cell, minlength=top + 1)
            labels = np.flatnonzero(area)
            rows, cols = np.divmod(pixels, shape[1])
            columns["t"].append(np.full(len(labels), t, dtype=np.int64))
            columns["y"].append(np.bincount(cell, rows, minlength=top + 1)[labels] / area[labels])
            columns["x"].append(np.bincount(cell, cols, minlength=top + 1)[labels] / area[labels])
            columns["area"].append(area[labels])
            columns["seg_id"].append(labels.astype(dtype))
            frame_labels.append(labels)
        result.validate(frame_labels)
        props = {name: np.concatenate(values) for name, values in columns.items()}
        props["track_id"] = props["seg_id"].astype(np.int64)
        node_ids = np.arange(len(props["t"]), dtype=np.int64)
        with _label_prop_allowed():
            write_arrays(
                tmp / GRAPH,
                node_ids=node_ids,
                node_props={name: {"values": v, "missing": None} for name, v in props.items()},
                edge_ids=_edges(props["t"], props["track_id"], result.lineage),
                edge_props={},
                metadata=_metadata({name: v.dtype for name, v in props.items()}),
            )
    return path


def _edges(t: np.ndarray, label: np.ndarray, lineage: Lineage) -> np.ndarray:
    """(E, 2) node-index pairs: consecutive nodes of each track, then parent end → child start."""
    order = np.lexsort((t, label))  # nodes of a track together, in time order
    same = label[order][1:] == label[order][:-1]
    links = np.stack([order[:-1][same], order[1:][same]], axis=1)
    node = {(int(label[i]), int(t[i])): int(i) for i in range(len(t))}
    parents = [
        (node[(track.parent, lineage[track.parent].end)], node[(track.label, track.begin)])
        for track in lineage.values()
        if track.parent
    ]
    return np.concatenate([links, np.array(parents, dtype=np.int64).reshape(-1, 2)])


def _geff_group(path: Path) -> Path:
    """The GEFF group of a store: ``path`` itself or its ``tracks`` group."""
    if not path.exists():
        raise InputError(path, "GEFF store not found")
    for group in (path, path / GRAPH):
        try:
            if "geff" in zarr.open_group(group, mode="r").attrs:
                return group
        except (FileNotFoundError, ValueError, zarr.errors.GroupNotFoundError):
            continue
    raise InputError(path, f"not a GEFF store (no GEFF metadata in it or in its '{GRAPH}' group)")


def read_geff(path: str | Path, masks: Sequence[np.ndarray] | None = None) -> TrackingResult:
    """Read a GEFF store as a tracking result, rebuilding the CTC lineage from its graph.

    ``path`` is a store written by :func:`write_geff` or any GEFF group. ``masks`` (e.g.
    ``read_result(res_dir).masks``) pairs the graph with label images when the store holds none;
    by default they are its ``labels`` related object. A track is a run of nodes in consecutive
    frames, each the only successor of the one before, with the same ``track_id`` (or declared
    tracklet id) where nodes have one; that id is the track's label unless an earlier track took
    it, otherwise tracks are numbered in order of their first frame. Regions are relabelled from
    their segmentation id to their track label where the two differ.
    """
    path = Path(path)
    group = _geff_group(path)
    try:
        with _label_prop_allowed():
            geff = read_to_memory(group, data_validation=ValidationConfig(graph=True))
    except (ValidationError, ValueError, KeyError, FileNotFoundError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"malformed GEFF store ({first})") from exc
    meta = geff["metadata"]
    if not meta.directed:
        raise InputError(path, "the GEFF graph is undirected; a lineage needs a directed graph")
    time = next((axis.name for axis in meta.axes or [] if axis.type == "time"), None)
    if time is None:
        raise InputError(path, "the GEFF metadata declares no time axis")
    labels = next((obj for obj in meta.related_objects or [] if obj.type == "labels"), None)
    with _label_prop_allowed():
        seg_prop = (labels.node_prop or labels.label_prop or "seg_id") if labels else "seg_id"
    props = geff["node_props"]
    tracklet = "track_id" if "track_id" in props else (meta.track_node_props or {}).get("tracklet")
    t, seg = (_integers(path, props, name) for name in (time, seg_prop))
    ids = None if tracklet is None else _integers(path, props, tracklet)
    lineage, node_label = _lineage(geff["node_ids"], geff["edge_ids"], t, ids, path)
    if masks is None:
        masks = _stored_masks(path, group, None if labels is None else labels.path)
    return TrackingResult(_relabel(path, masks, t, seg, node_label, seg_prop), lineage)


def _integers(path: Path, props: dict, name: str) -> np.ndarray:
    """Node property ``name`` as int64, checked: present on every node, whole numbers."""
    if name not in props or (props[name].get("missing") is not None
                             and bool(np.any(props[name]["missing"]))):
        raise InputError(path, f"the nodes lack the property '{name}'")
    values = np.asarray(props[name]["values"])
    if values.ndim != 1 or values.dtype.kind not in "iuf" or np.any(values != np.round(values)):
        raise InputError(path, f"node property '{name}' is not one integer per node")
    return values.astype(np.int64)


def _stored_masks(path: Path, group: Path, labels: str | None) -> list[np.ndarray]:
    """The frames of the store's ``labels`` related object (a (T, Y, X) array)."""
    if labels is None:
        raise InputError(path, "the store has no 'labels' related object: pass the masks")
    try:
        array = zarr.open_array(os.path.normpath(group / labels), mode="r")
    except (FileNotFoundError, ValueError, zarr.errors.ArrayNotFoundError) as exc:
        raise InputError(
            path, f"the labels '{labels}' named in the GEFF metadata cannot be read"
        ) from exc
    if array.ndim != 3:
        raise InputError(path, f"the labels '{labels}' have shape {array.shape}, not (T, Y, X)")
    return list(np.asarray(array))


def _lineage(
    node_ids: np.ndarray, edge_ids: np.ndarray, t: np.ndarray, tracklet: np.ndarray | None,
    path: Path,
) -> tuple[Lineage, np.ndarray]:
    """The lineage of a graph and the track label of each node."""
    n = len(node_ids)
    sorter = np.argsort(node_ids)
    src, dst = (sorter[np.searchsorted(node_ids, edge_ids[:, k], sorter=sorter)] for k in (0, 1))
    backwards = np.flatnonzero(t[dst] <= t[src])
    if len(backwards):
        a, b = src[backwards[0]], dst[backwards[0]]
        raise InputError(
            path, f"edge {node_ids[a]} -> {node_ids[b]} does not go forward in time "
            f"(frame {t[a]} to {t[b]})"
        )
    in_deg, out_deg = np.bincount(dst, minlength=n), np.bincount(src, minlength=n)
    if np.any(in_deg > 1):
        merge = node_ids[np.argmax(in_deg > 1)]
        raise InputError(path, f"node {merge} has several incoming edges (tracks merge)")
    same = (t[dst] == t[src] + 1) & (out_deg[src] == 1) & (in_deg[dst] == 1)
    if tracklet is not None:
        same &= tracklet[src] == tracklet[dst]
    following, predecessor = np.full(n, -1), np.full(n, -1)
    following[src[same]] = dst[same]
    predecessor[dst] = src
    starts = np.setdiff1d(np.arange(n), dst[same])
    starts = starts[np.lexsort((node_ids[starts], t[starts]))]  # by first frame
    label = np.zeros(n, dtype=np.int64)
    taken: set[int] = set()
    fresh = 1 if tracklet is None else max(int(tracklet.max(initial=0)), 0) + 1
    tracks = []
    for start in starts:
        wanted = int(tracklet[start]) if tracklet is not None else 0
        if wanted <= 0 or wanted in taken:
            wanted, fresh = fresh, fresh + 1
        taken.add(wanted)
        end = start
        label[end] = wanted
        while following[end] >= 0:
            end = following[end]
            label[end] = wanted
        parent = int(label[predecessor[start]]) if predecessor[start] >= 0 else 0
        tracks.append(Track(wanted, int(t[start]), int(t[end]), parent))
    return Lineage(tracks), label


def _relabel(
    path: Path, masks: Sequence[np.ndarray], t: np.ndarray, seg: np.ndarray,
    node_label: np.ndarray, seg_prop: str,
) -> list[np.ndarray]:
    """The masks with each node's region (``seg_prop``) given the node's track label."""
    if len(t) and (t.min() < 0 or t.max() >= len(masks)):
        frame = t.min() if t.min() < 0 else t.max()
        raise InputError(path, f"a node lies in frame {frame}, outside the {len(masks)} masks")
    dtype = mask_dtype(int(node_label.max(initial=0)))
    order = np.lexsort((seg, t))
    bounds = np.searchsorted(t[order], np.arange(len(masks) + 1))
    out = []
    for frame, mask in enumerate(masks):
        mask = np.asarray(mask)
        at = order[bounds[frame]:bounds[frame + 1]]
        ids, labels = seg[at], node_label[at]
        if np.any(ids[1:] == ids[:-1]):
            repeated = ids[1:][ids[1:] == ids[:-1]][0]
            raise InputError(path, f"frame {frame}: several nodes have {seg_prop} {repeated}")
        present = np.unique(mask[mask > 0])
        if not np.array_equal(present, ids):
            missing = np.setdiff1d(ids, present)
            if len(missing):
                raise InputError(
                    path, f"frame {frame}: no region with {seg_prop} {missing[0]} in the masks"
                )
            extra = np.setdiff1d(present, ids)[0]
            raise InputError(path, f"frame {frame}: mask label {extra} has no node")
        if np.array_equal(ids, labels):
            out.append(mask)
        else:
            index = np.searchsorted(ids, mask)  # only read where mask > 0, where it is exact
            out.append(np.where(mask > 0, labels[np.minimum(index, len(ids) - 1)], 0)
                       .astype(dtype))
    return out
