"""GEFF export and import: exact round trips, a faithful graph, the same TRA, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geff
import networkx as nx
import numpy as np
import pytest
from traccuracy import run_metrics
from traccuracy.loaders import load_ctc_data, load_geff_data
from traccuracy.matchers import CTCMatcher
from traccuracy.metrics import CTCMetrics

from celltrail.core import CellTrailError, InputError, Lineage, Track, TrackingResult
from celltrail.io.ctc import read_tracking_gt, write_result
from celltrail.io.geff import read_geff, write_geff
from celltrail.metrics import evaluate
from tests.test_metrics import perturbed_result

pytestmark = [  # what geff and traccuracy say about themselves
    pytest.mark.filterwarnings("ignore:.*label_prop:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Deprecated in geff-spec:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:'res_boxes':UserWarning"),
    pytest.mark.filterwarnings("ignore:.*json_encoders"),
]


def assert_identical(a: TrackingResult, b: TrackingResult) -> None:
    np.testing.assert_array_equal(a.lineage.to_array(), b.lineage.to_array())
    assert len(a.masks) == len(b.masks)
    for x, y in zip(a.masks, b.masks, strict=True):
        np.testing.assert_array_equal(x, y)
        assert np.asarray(x).dtype == np.asarray(y).dtype


def square(mask: np.ndarray, row: int, col: int, label: int) -> None:
    """Paint a 2×2 cell (centroid ``row + 0.5, col + 0.5``, area 4)."""
    mask[row:row + 2, col:col + 2] = label


def division_and_gap() -> TrackingResult:
    """Cell 1 (frames 0-1) divides into 2 and 3; 3 is missed in frame 4 and continues as 4;
    cell 5 (frames 0-2) has a single child 6 (frames 3-5), as in the SIM+ ground truth."""
    masks = [np.zeros((12, 12), np.uint16) for _ in range(6)]
    for t in range(6):
        square(masks[t], 8, 8, 5 if t <= 2 else 6)
        if t <= 1:
            square(masks[t], 2, 2, 1)
        else:
            square(masks[t], 1, 1, 2)
            if t != 4:
                square(masks[t], 4, 4, 3 if t < 4 else 4)
    lineage = Lineage([Track(1, 0, 1), Track(2, 2, 5, 1), Track(3, 2, 3, 1), Track(4, 5, 5, 3),
                       Track(5, 0, 2), Track(6, 3, 5, 5)])
    return TrackingResult(masks, lineage)


def test_sample_ground_truth_round_trip(sample: Path, tmp_path: Path) -> None:
    truth = read_tracking_gt(sample / "01_GT")
    store = write_geff(truth, tmp_path / "gt.zarr")
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == [
        "segmentation", "tracks"]
    assert [p.name for p in tmp_path.iterdir()] == ["gt.zarr"]  # no temporary left behind
    assert_identical(read_geff(store), truth)
    assert_identical(read_geff(store / "tracks"), truth)  # the GEFF group itself reads too
    graph, _ = geff.read(store / "tracks")
    assert graph.number_of_nodes() == sum(len(np.unique(m)) - 1 for m in truth.masks)
    track_ends = len(truth.lineage) - sum(1 for tr in truth.lineage.values() if tr.parent)
    assert graph.number_of_edges() == graph.number_of_nodes() - track_ends


def test_division_and_gap_round_trip_and_graph(tmp_path: Path) -> None:
    result = division_and_gap()
    assert result.errors() == []
    store = write_geff(result, tmp_path / "res.zarr")
    assert_identical(read_geff(store), result)
    graph, meta = geff.read(store / "tracks")
    key = {n: (int(d["t"]), int(d["seg_id"])) for n, d in graph.nodes(data=True)}
    edges = {(key[a], key[b]) for a, b in graph.edges}
    assert {e for e in edges if e[0][1] != e[1][1]} == {
        ((1, 1), (2, 2)), ((1, 1), (2, 3)),  # division
        ((3, 3), (5, 4)),  # gap: the continuation starts two frames later
        ((2, 5), (3, 6)),  # single child
    }
    assert len(edges) == 9 + 4  # links within the six tracks (15 nodes), plus those four
    first = next(d for d in graph.nodes.values() if d["t"] == 0 and d["seg_id"] == 1)
    assert (first["y"], first["x"], first["area"], first["track_id"]) == (2.5, 2.5, 4, 1)
    assert [(a.name, a.type) for a in meta.axes] == [("t", "time"), ("y", "space"),
                                                    ("x", "space")]
    labels = meta.related_objects[0]
    assert (labels.type, labels.path, labels.node_prop, labels.label_prop) == (
        "labels", "../segmentation", "seg_id", "seg_id")


def test_traccuracy_on_geff_equals_ctc_metrics_on_ctc(sample: Path, tmp_path: Path) -> None:
    gt_dir = sample / "01_GT"
    result = perturbed_result(gt_dir, seed=3)  # misses, false positives, switches; no merges
    ours = evaluate(gt_dir, write_result(result, tmp_path / "01_RES"), threads=1)
    store = write_geff(result, tmp_path / "res.zarr")
    gt = load_ctc_data(str(gt_dir / "TRA"), str(gt_dir / "TRA" / "man_track.txt"), run_checks=False)
    pred = load_geff_data(str(store / "tracks"), load_geff_seg=True)
    theirs = run_metrics(gt, pred, matcher=CTCMatcher(), metrics=[CTCMetrics()])[0][0]["results"]
    assert 0.5 < ours["TRA"] < 0.99
    assert theirs["TRA"] == pytest.approx(ours["TRA"], abs=1e-6)


def test_foreign_geff_with_masks_passed(tmp_path: Path) -> None:
    """Another tool's graph: per-frame segmentation ids, no track ids, masks kept elsewhere."""
    masks = [np.zeros((8, 8), np.uint16) for _ in range(3)]
    square(masks[0], 0, 0, 7)  # one cell, dividing after frame 1 ...
    square(masks[1], 0, 1, 2)
    square(masks[2], 0, 0, 1)
    square(masks[2], 4, 4, 3)
    square(masks[0], 5, 0, 4)  # ... and one passing through
    square(masks[1], 5, 1, 1)
    square(masks[2], 5, 2, 2)
    graph = nx.DiGraph()
    for node, (t, seg) in enumerate([(0, 7), (1, 2), (2, 1), (2, 3), (0, 4), (1, 1), (2, 2)]):
        graph.add_node(node, t=t, y=0.0, x=0.0, seg_id=seg)
    graph.add_edges_from([(0, 1), (1, 2), (1, 3), (4, 5), (5, 6)])
    geff.write(graph, tmp_path / "other.zarr", axis_names=["t", "y", "x"],
               axis_types=["time", "space", "space"])
    result = read_geff(tmp_path / "other.zarr", masks=masks)
    np.testing.assert_array_equal(result.lineage.to_array(),
                                  [[1, 0, 1, 0], [2, 0, 2, 0], [3, 2, 2, 1], [4, 2, 2, 1]])
    assert result.errors() == []
    assert [int(m[0, 0]) for m in result.masks] == [1, 0, 3]  # first daughter, numbered by node
    assert [int(m[5, t]) for t, m in enumerate(result.masks)] == [2, 2, 2]


def test_foreign_track_ids_reused_after_division_and_gap(tmp_path: Path) -> None:
    """A daughter keeping its mother's track id, and a cell keeping its id over a gap, become
    new CTC tracks (fresh labels above the largest id) whose parent is the earlier run."""
    masks = [np.zeros((8, 8), np.uint16) for _ in range(3)]
    nodes = [(0, 0, 7), (1, 0, 7), (2, 0, 7), (2, 3, 8), (0, 6, 9), (2, 6, 9)]  # t, row, track
    graph = nx.DiGraph()
    for node, (t, row, track) in enumerate(nodes):
        square(masks[t], row, 0, node + 1)
        graph.add_node(node, t=t, y=row + 0.5, x=0.5, seg_id=node + 1, track_id=track)
    graph.add_edges_from([(0, 1), (1, 2), (1, 3), (4, 5)])
    geff.write(graph, tmp_path / "ids.zarr", axis_names=["t", "y", "x"],
               axis_types=["time", "space", "space"])
    result = read_geff(tmp_path / "ids.zarr", masks=masks)
    np.testing.assert_array_equal(
        result.lineage.to_array(),
        [[7, 0, 1, 0], [8, 2, 2, 7], [9, 0, 0, 0], [10, 2, 2, 7], [11, 2, 2, 9]])
    assert [int(result.masks[2][row, 0]) for row in (0, 3, 6)] == [10, 8, 11]
    assert result.errors() == []


def test_failed_write_keeps_the_old_store(tmp_path: Path) -> None:
    good = division_and_gap()
    store = write_geff(good, tmp_path / "res.zarr")
    bad = division_and_gap()
    bad.masks[4][0, 0] = 9
    with pytest.raises(CellTrailError, match="frame 4: label 9 is not in the lineage table"):
        write_geff(bad, store)
    assert [p.name for p in tmp_path.iterdir()] == ["res.zarr"]
    assert_identical(read_geff(store), good)


def edit_attrs(store: Path, change) -> None:
    """Edit the GEFF metadata of a store in place."""
    attrs_file = store / "tracks" / ".zattrs"
    attrs = json.loads(attrs_file.read_text())
    change(attrs["geff"])
    attrs_file.write_text(json.dumps(attrs))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda s: shutil.rmtree(s), "GEFF store not found"),
        (lambda s: shutil.rmtree(s / "tracks"),
         "not a GEFF store (no GEFF metadata in it or in its 'tracks' group)"),
        (lambda s: shutil.rmtree(s / "tracks" / "nodes" / "props" / "t"),
         "malformed GEFF store (Property t is in the metadata but missing from the property "
         "group)"),
        (lambda s: edit_attrs(s, lambda g: g.update(axes=None)),
         "the GEFF metadata declares no time axis"),
        (lambda s: edit_attrs(s, lambda g: g.update(directed=False)),
         "the GEFF graph is undirected; a lineage needs a directed graph"),
        (lambda s: shutil.rmtree(s / "segmentation"),
         "the labels '../segmentation' named in the GEFF metadata cannot be read"),
        (lambda s: edit_attrs(s, lambda g: g.update(related_objects=None)),
         "the store has no 'labels' related object: pass the masks"),
    ],
)
def test_damaged_store_has_one_clear_error(tmp_path: Path, damage, problem: str) -> None:
    store = write_geff(division_and_gap(), tmp_path / "res.zarr")
    damage(store)
    with pytest.raises(InputError) as err:
        read_geff(store)
    assert str(err.value) == f"{store}: {problem}"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda g: g.add_edge(2, 0), "edge 2 -> 0 does not go forward in time (frame 1 to 0)"),
        (lambda g: g.add_edge(1, 2), "node 2 has several incoming edges (tracks merge)"),
        (lambda g: g.nodes[1].update(seg_id=5), "frame 0: no region with seg_id 5 in the masks"),
        (lambda g: g.remove_node(1), "frame 0: mask label 2 has no node"),
    ],
)
def test_graph_that_is_no_lineage(tmp_path: Path, edit, problem: str) -> None:
    masks = [np.zeros((6, 6), np.uint16) for _ in range(2)]
    square(masks[0], 0, 0, 1)
    square(masks[0], 3, 3, 2)
    square(masks[1], 0, 0, 1)
    graph = nx.DiGraph()
    for node, (t, seg) in enumerate([(0, 1), (0, 2), (1, 1)]):
        graph.add_node(node, t=t, y=0.0, x=0.0, seg_id=seg)
    graph.add_edge(0, 2)
    edit(graph)
    geff.write(graph, tmp_path / "g.zarr", axis_names=["t", "y", "x"],
               axis_types=["time", "space", "space"])
    with pytest.raises(InputError) as err:
        read_geff(tmp_path / "g.zarr", masks=masks)
    assert str(err.value) == f"{tmp_path / 'g.zarr'}: {problem}"
