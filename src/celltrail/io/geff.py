"""GEFF (graph exchange file format) export and import of tracking results.

The path written is the GEFF graph group itself, so ``geff validate PATH`` and every GEFF reader
take the path we print. The ``segmentation`` array, the (T, Y, X) labels the graph refers to, is
stored inside that group and declared as its ``labels`` related object (``node_prop`` ``seg_id``),
so readers get cells and pixels together from one folder.

The graph has one node per cell per frame with ``t``, ``y``, ``x`` (centroid, pixels), ``area``
(pixels), ``seg_id`` (the cell's label in that frame of ``segmentation``), ``track_id`` (its CTC
track label, here equal to ``seg_id``), and the spec's ``track_node_props``: ``tracklet_id`` (a
maximal unbranched path of the graph) and ``lineage_id`` (its weakly connected component). A CTC
track is not always a tracklet: a track continued by a single child (after a gap, or as the SIM+
ground truth labels some cells) is one tracklet of two tracks. Edges link a track's nodes in
consecutive frames, and the last node of a parent track to the first node of each child track,
so the CTC lineage can be rebuilt exactly.

Any valid GEFF reads: the graph group is the path given or the one group below it holding GEFF
metadata (``data.zarr/tracks.geff``); the segmentation id of each node comes from a property the
caller names, else the ``labels`` related object's ``node_prop``, else ``seg_id``. A graph
without one (points only, as some trackers write) is placed on label images by the cell under
each node.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from geff import GeffMetadata
from geff.core_io import read_to_memory, write_arrays
from geff.validate.data import ValidationConfig
from geff_spec import Axis, PropMetadata, RelatedObject
from pydantic import ValidationError
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from celltrail.core.errors import CellTrailError, InputError
from celltrail.core.lineage import Lineage, Track
from celltrail.core.result import TrackingResult, mask_dtype
from celltrail.io.atomic import atomic_dir

#: Name of the label array inside the graph group, and the node properties we write.
SEGMENTATION = "segmentation"
SEG_ID, TRACK_ID, TRACKLET_ID, LINEAGE_ID = "seg_id", "track_id", "tracklet_id", "lineage_id"

_DESCRIPTIONS = {
    "t": "frame index",
    "y": "centroid row (pixels)",
    "x": "centroid column (pixels)",
    "area": "cell area (pixels)",
    SEG_ID: "label of the cell in this frame of the segmentation",
    TRACK_ID: "CTC track label: one unbroken run of a cell; a track continued by a single "
              "child changes label, so this is no GEFF tracklet id (see tracklet_id)",
    TRACKLET_ID: "GEFF tracklet: maximal unbranched path of the graph",
    LINEAGE_ID: "GEFF lineage: weakly connected component of the graph",
}
_AXES = [Axis(name="t", type="time", unit="frame"), Axis(name="y", type="space", unit="pixel"),
         Axis(name="x", type="space", unit="pixel")]


@contextmanager
def _legacy_label_prop() -> Iterator[None]:
    """Read stores that still name ``label_prop`` (deprecated in geff-spec 1.2.1; celltrail
    before 0.2 wrote it) without passing geff's deprecation warning on to the user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*label_prop", DeprecationWarning)
        warnings.filterwarnings("ignore", "Deprecated in geff-spec", DeprecationWarning)
        yield


# --- writing -----------------------------------------------------------------------------------


def write_geff(result: TrackingResult, path: str | Path, overwrite: bool = False) -> Path:
    """Write a result as a GEFF graph group holding its segmentation, atomically; returns
    ``path``. An existing store is replaced only when celltrail wrote it (or with ``overwrite``).
    """
    path = Path(path)
    if not len(result.masks):
        raise CellTrailError("a result with no frames cannot be written as GEFF")
    with atomic_dir(path, overwrite) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=2)
        props = _write_segmentation(root, result)
        props[TRACK_ID] = props[SEG_ID].astype(np.int64)
        _write_graph(tmp, props, track_edges(props["t"], props[TRACK_ID], result.lineage), True)
    return path


def _write_segmentation(root: zarr.Group, result: TrackingResult) -> dict[str, np.ndarray]:
    """Store the masks as ``segmentation`` and return the node columns of their cells."""
    top = max(result.lineage, default=0)
    dtype = mask_dtype(top)
    shape = np.asarray(result.masks[0]).shape
    seg = root.create_array(
        SEGMENTATION, shape=(len(result.masks), *shape), chunks=(1, *shape), dtype=dtype
    )
    columns: dict[str, list[np.ndarray]] = {name: [] for name in ("t", "y", "x", "area", SEG_ID)}
    frame_labels = []
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
        columns[SEG_ID].append(labels.astype(dtype))
        frame_labels.append(labels)
    result.validate(frame_labels)
    return {name: np.concatenate(values) for name, values in columns.items()}


def _write_graph(
    store: Path, props: dict[str, np.ndarray], edges: np.ndarray, segmentation: bool
) -> None:
    """Write the graph of ``props`` (node columns) and ``edges`` (node-index pairs) into the
    group ``store``, adding tracklet and lineage ids."""
    props[TRACKLET_ID] = tracklet_ids(len(props["t"]), edges)
    props[LINEAGE_ID] = lineage_ids(len(props["t"]), edges)
    metadata = GeffMetadata(
        directed=True,
        axes=_AXES,
        node_props_metadata={
            name: PropMetadata(identifier=name, dtype=str(values.dtype),
                               description=_DESCRIPTIONS[name])
            for name, values in props.items()
        },
        edge_props_metadata={},
        track_node_props={"tracklet": TRACKLET_ID, "lineage": LINEAGE_ID},
        related_objects=[RelatedObject(type="labels", path=SEGMENTATION, node_prop=SEG_ID)]
        if segmentation else None,
    )
    write_arrays(  # a store object: given a path, geff refuses any existing folder
        zarr.storage.LocalStore(store),
        node_ids=np.arange(len(props["t"]), dtype=np.int64),
        node_props={name: {"values": v, "missing": None} for name, v in props.items()},
        edge_ids=edges.astype(np.int64),
        edge_props={},
        metadata=metadata,
    )


def track_edges(t: np.ndarray, label: np.ndarray, lineage: Lineage) -> np.ndarray:
    """(E, 2) node-index pairs of the nodes (frame ``t``, track ``label``) of a lineage:
    consecutive nodes of each track, then parent end → child start."""
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


def _components(n: int, edges: np.ndarray) -> np.ndarray:
    """1-based weakly connected component of each of ``n`` nodes linked by ``edges``."""
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64) + 1


def tracklet_ids(n: int, edges: np.ndarray) -> np.ndarray:
    """GEFF tracklet id of each node: an edge stays inside a tracklet when its source has no
    other successor and its target no other predecessor, so tracklets are the maximal
    unbranched paths the spec asks for (1-based, in node order)."""
    out_deg = np.bincount(edges[:, 0], minlength=n)
    in_deg = np.bincount(edges[:, 1], minlength=n)
    inner = (out_deg[edges[:, 0]] == 1) & (in_deg[edges[:, 1]] == 1)
    return _components(n, edges[inner])


def lineage_ids(n: int, edges: np.ndarray) -> np.ndarray:
    """GEFF lineage id of each node: its weakly connected component (1-based, in node order)."""
    return _components(n, edges)


def write_tracks_geff(
    data: np.ndarray, parents: dict[int, int], path: str | Path, overwrite: bool = False
) -> Path:
    """Write napari-style tracks (rows ``track id, frame, y, x``; ``parents`` maps a track to
    its parent) as a points-only GEFF graph group, atomically; returns ``path``."""
    path = Path(path)
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != 4:
        raise InputError(path, f"expected tracks of rows (track id, frame, y, x), found shape "
                               f"{data.shape}")
    label, t = data[:, 0].astype(np.int64), data[:, 1].astype(np.int64)
    if np.any(data[:, :2] != np.stack([label, t], axis=1)):
        raise InputError(path, "track ids and frames must be whole numbers")
    pairs = np.unique(np.stack([label, t], axis=1), axis=0, return_counts=True)
    if np.any(pairs[1] > 1):
        twice = pairs[0][np.argmax(pairs[1] > 1)]
        raise InputError(path, f"track {twice[0]} has several points in frame {twice[1]}")
    lineage = Lineage(Track(int(k), int(t[label == k].min()), int(t[label == k].max()),
                            int(parents.get(int(k), 0))) for k in np.unique(label))
    errors = lineage.structure_errors()
    if errors:
        raise InputError(path, errors[0])
    props = {"t": t, "y": data[:, 2], "x": data[:, 3], TRACK_ID: label}
    with atomic_dir(path, overwrite) as tmp:
        zarr.open_group(tmp, mode="w", zarr_format=2)
        _write_graph(tmp, props, track_edges(t, label, lineage), False)
    return path


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeffTracks:
    """A GEFF graph in CTC terms, one array entry per node."""

    path: Path  #: the path the caller gave (errors name it)
    group: Path  #: the GEFF graph group
    lineage: Lineage
    label: np.ndarray  #: CTC track label of each node
    t: np.ndarray  #: frame of each node
    seg: np.ndarray | None  #: segmentation id of each node, if the graph has them
    seg_prop: str | None  #: the property ``seg`` came from
    yx: np.ndarray | None  #: (N, 2) pixel position of each node, if known
    yx_problem: str  #: why ``yx`` is None
    labels: str | None  #: path of the ``labels`` related object, relative to ``group``

    def layer_data(self) -> np.ndarray:
        """Rows ``track label, frame, y, x`` (napari's Tracks layout), by label and frame."""
        if self.yx is None:
            raise InputError(self.path, self.yx_problem)
        rows = np.column_stack([self.label, self.t, self.yx]).astype(np.float64)
        return rows[np.lexsort((self.t, self.label))]


def graph_group(path: str | Path) -> Path | None:
    """The GEFF graph group of ``path``: itself, or the only folder below it (two levels deep)
    holding GEFF metadata; None when there is none. Several raise :class:`InputError`."""
    path = Path(path)
    if _is_graph(path):
        return path
    found = _nested_graphs(path, depth=2)
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(path)) for p in found)
        raise InputError(path, f"holds several GEFF graphs ({names}): give the one to read")
    return found[0] if found else None


def _is_graph(path: Path) -> bool:
    """Whether ``path`` is a zarr group with GEFF metadata."""
    try:
        return "geff" in zarr.open_group(path, mode="r").attrs
    except (FileNotFoundError, ValueError, zarr.errors.GroupNotFoundError, OSError):
        return False


def _nested_graphs(folder: Path, depth: int) -> list[Path]:
    """The folders below ``folder`` that are GEFF graph groups (not those inside one: GEFF
    nests graphs in graphs). The parents need not be zarr groups (``geff convert-ctc`` writes
    ``data.zarr/tracks.geff`` into a plain folder)."""
    found: list[Path] = []
    if not folder.is_dir() or folder.is_symlink():
        return found
    for child in sorted(folder.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if _is_graph(child):
            found.append(child)
        elif depth > 1:
            found += _nested_graphs(child, depth - 1)
    return found


def read_geff_tracks(path: str | Path, seg_prop: str | None = None) -> GeffTracks:
    """Read the graph of a GEFF store and rebuild its CTC lineage.

    A track is a run of nodes in consecutive frames, each the only successor of the one before,
    with the same track id where nodes have one (``track_id``, else the declared tracklet id);
    that id is the track's label unless an earlier track took it, otherwise tracks are
    numbered in order of their first frame. ``seg_prop`` names the node property holding each
    node's label in the segmentation (default: the ``labels`` related object's, else
    ``seg_id`` when present, else none: a graph of points).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "GEFF store not found")
    group = graph_group(path)
    if group is None:
        raise InputError(path, "not a GEFF store (no GEFF metadata in it or in a group below)")
    geff = _load(path, group)
    meta, props = geff["metadata"], geff["node_props"]
    if not meta.directed:
        raise InputError(path, "the GEFF graph is undirected; a lineage needs a directed graph")
    time = next((axis.name for axis in meta.axes or [] if axis.type == "time"), None)
    if time is None:
        raise InputError(path, "the GEFF metadata declares no time axis")
    labels = next((obj for obj in meta.related_objects or [] if obj.type == "labels"), None)
    seg_prop = seg_prop or _labels_prop(labels) or (SEG_ID if SEG_ID in props else None)
    tracklet = TRACK_ID if TRACK_ID in props else (meta.track_node_props or {}).get("tracklet")
    t = _integers(path, props, time)
    ids = None if tracklet is None else _integers(path, props, tracklet)
    lineage, label = _lineage(geff["node_ids"], geff["edge_ids"], t, ids, path)
    yx, problem = _positions(meta, props)
    return GeffTracks(path, group, lineage, label, t,
                      None if seg_prop is None else _integers(path, props, seg_prop), seg_prop,
                      yx, problem, None if labels is None else labels.path)


def _load(path: Path, group: Path) -> dict:
    """The graph group in memory, its structure and graph checked by geff."""
    try:
        with _legacy_label_prop():
            return read_to_memory(group, data_validation=ValidationConfig(graph=True))
    except (ValidationError, ValueError, KeyError, FileNotFoundError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"malformed GEFF store ({first})") from exc


def _labels_prop(labels: RelatedObject | None) -> str | None:
    """The node property a ``labels`` related object names (``label_prop`` in old stores)."""
    if labels is None:
        return None
    with _legacy_label_prop():
        return labels.node_prop or labels.label_prop


def _positions(meta: GeffMetadata, props: dict) -> tuple[np.ndarray | None, str]:
    """(N, 2) pixel positions (row, column) of the nodes, or None and why not. The row and
    column axes are the display hints' vertical and horizontal ones, else ``y`` and ``x``, else
    the last two spatial axes; a further spatial axis must be constant (a 2D graph)."""
    space = {axis.name: axis for axis in meta.axes or [] if axis.type == "space"}
    hints = meta.display_hints
    if hints is not None:
        names = [hints.display_vertical, hints.display_horizontal]
    else:
        names = ["y", "x"] if {"y", "x"} <= set(space) else list(space)[-2:]
    if len(names) < 2 or not set(names) <= set(space):
        return None, "the GEFF metadata declares no spatial axes for rows and columns"
    for name in set(space) - set(names):
        if np.ptp(np.asarray(props[name]["values"], dtype=np.float64), initial=0):
            return None, f"the graph is 3D (axis '{name}' varies); celltrail reads 2D graphs"
    units = {space[name].unit for name in names} - {None, "pixel"}
    if units:
        return None, (f"node positions are in {units.pop()}, not pixels: they cannot be placed "
                      f"on label images")
    return np.column_stack([np.asarray(props[n]["values"], dtype=np.float64) for n in names]), ""


def _integers(path: Path, props: dict, name: str) -> np.ndarray:
    """Node property ``name`` as int64, checked: present on every node, whole numbers."""
    if name not in props or (props[name].get("missing") is not None
                             and bool(np.any(props[name]["missing"]))):
        raise InputError(path, f"the nodes lack the property '{name}'")
    values = np.asarray(props[name]["values"])
    if values.ndim != 1 or values.dtype.kind not in "iuf" or np.any(values != np.round(values)):
        raise InputError(path, f"node property '{name}' is not one integer per node")
    return values.astype(np.int64)


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


def read_geff(
    path: str | Path, masks: Sequence[np.ndarray] | None = None, seg_prop: str | None = None
) -> TrackingResult:
    """Read a GEFF store as a tracking result (CTC lineage and relabelled masks).

    ``masks`` (e.g. ``read_result(res_dir).masks``) pairs the graph with label images when the
    store holds none; by default they are its ``labels`` related object. Each node's region is
    the label its segmentation id names (``seg_prop``, see :func:`read_geff_tracks`); a graph
    without segmentation ids is placed on the masks, each node taking the cell under it (or,
    off every cell, the nearest one within that cell's radius). Regions are relabelled to the
    track label of their node.
    """
    return geff_result(read_geff_tracks(path, seg_prop), masks)


def geff_result(tracks: GeffTracks, masks: Sequence[np.ndarray] | None = None) -> TrackingResult:
    """The tracking result of a graph read by :func:`read_geff_tracks` (see :func:`read_geff`)."""
    if masks is None:
        masks = _stored_masks(tracks.path, tracks.group, tracks.labels)
    if tracks.seg is not None:
        seg = tracks.seg
    elif tracks.yx is None:
        raise InputError(tracks.path, f"the nodes have no segmentation id and {tracks.yx_problem}"
                                      f" (name the property holding it with --seg-prop)")
    else:
        seg = _cells_under(tracks, masks)
    return TrackingResult(_relabel(tracks.path, masks, tracks.t, seg, tracks.label,
                                   tracks.seg_prop), tracks.lineage)


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


def _cells_under(tracks: GeffTracks, masks: Sequence[np.ndarray]) -> np.ndarray:
    """The mask label of the cell under each node (nodes outside the frames are left to
    :func:`_relabel`, which names them). A node off every cell takes the nearest one if it lies
    within that cell's equivalent radius (a centroid of a curved cell can lie outside it)."""
    assert tracks.yx is not None
    seg = np.zeros(len(tracks.t), dtype=np.int64)
    for frame, mask in enumerate(masks):
        at = np.flatnonzero(tracks.t == frame)
        if not len(at):
            continue
        mask = np.asarray(mask)
        pos = np.round(tracks.yx[at]).astype(np.int64)
        inside = np.all((pos >= 0) & (pos < mask.shape), axis=1)
        if not inside.all():
            node = at[np.argmin(inside)]
            raise InputError(tracks.path, f"frame {frame}: the node at (y, x) = "
                                          f"{_at(tracks.yx[node])} lies outside the "
                                          f"{mask.shape[0]}x{mask.shape[1]} masks")
        seg[at] = mask[pos[:, 0], pos[:, 1]]
        off = np.flatnonzero(seg[at] == 0)
        if len(off):
            seg[at[off]] = _nearest_cells(tracks, mask, pos[off], frame, at[off])
    return seg


def _nearest_cells(
    tracks: GeffTracks, mask: np.ndarray, pos: np.ndarray, frame: int, nodes: np.ndarray
) -> np.ndarray:
    """Labels of the cells nearest to ``pos`` (points on background), each within the
    equivalent radius of its cell."""
    assert tracks.yx is not None
    far = np.ones(len(pos), dtype=bool)
    near = np.zeros(len(pos), dtype=np.int64)
    if mask.any():
        distance, (rows, cols) = ndimage.distance_transform_edt(mask == 0, return_indices=True)
        near = mask[rows[pos[:, 0], pos[:, 1]], cols[pos[:, 0], pos[:, 1]]].astype(np.int64)
        radius = np.sqrt(np.bincount(mask.ravel()) / np.pi)
        far = distance[pos[:, 0], pos[:, 1]] > radius[near]
    if far.any():
        where = _at(tracks.yx[nodes[np.argmax(far)]])
        raise InputError(tracks.path, f"frame {frame}: the node at (y, x) = {where} lies on no "
                                      f"cell of the masks")
    return near


def _at(yx: np.ndarray) -> str:
    return f"({yx[0]:.1f}, {yx[1]:.1f})"


def _relabel(
    path: Path, masks: Sequence[np.ndarray], t: np.ndarray, seg: np.ndarray,
    node_label: np.ndarray, seg_prop: str | None,
) -> list[np.ndarray]:
    """The masks with each node's region given the node's track label."""
    if len(t) and (t.min() < 0 or t.max() >= len(masks)):
        frame = t.min() if t.min() < 0 else t.max()
        raise InputError(path, f"a node lies in frame {frame}, outside the {len(masks)} masks")
    naming = "mask label" if seg_prop is None else seg_prop
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
            raise InputError(path, f"frame {frame}: several nodes have {naming} {repeated}")
        present = np.unique(mask[mask > 0])
        if not np.array_equal(present, ids):
            missing = np.setdiff1d(ids, present)
            if len(missing):
                raise InputError(
                    path, f"frame {frame}: no region with {naming} {missing[0]} in the masks"
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
