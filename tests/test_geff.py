"""GEFF export and import: valid by geff's own checks, exact round trips, a faithful graph, the
same TRA, other tools' stores (geff's CTC converter, points only), clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geff
import networkx as nx
import numpy as np
import pytest
import zarr
from geff._cli import app as geff_cli  # the `geff` command users run
from geff.convert import from_ctc_to_geff
from geff.core_io import read_to_memory
from geff.validate.data import ValidationConfig
from geff.validate.segmentation import axes_match_seg_dims, has_seg_ids_at_time_points
from geff.validate.tracks import validate_tracklets
from traccuracy import run_metrics
from traccuracy.loaders import load_ctc_data, load_geff_data
from traccuracy.matchers import CTCMatcher
from traccuracy.metrics import CTCMetrics
from typer.testing import CliRunner

from celltrail.core import CellTrailError, InputError, Lineage, Track, TrackingResult
from celltrail.io.ctc import read_result, read_tracking_gt, write_result
from celltrail.io.geff import read_geff, write_geff
from celltrail.metrics import evaluate
from tests.test_cli import one_error_line, run
from tests.test_metrics import perturbed_result

pytestmark = [  # what traccuracy says about itself
    pytest.mark.filterwarnings("ignore:'res_boxes':UserWarning"),
    pytest.mark.filterwarnings("ignore:.*json_encoders"),
]
GEFF_CHECKS = ValidationConfig(graph=True, sphere=True, ellipsoid=True, lineage=True,
                               tracklet=True)


def assert_valid_geff(store: Path) -> dict:
    """Every check geff 1.3 has passes on ``store`` (the path we print): structure, graph,
    declared tracklets and lineages, and the segmentation it names. Returns it in memory."""
    geff.validate_structure(store)
    memory = read_to_memory(store, data_validation=GEFF_CHECKS)
    meta = memory["metadata"]
    assert meta.track_node_props == {"tracklet": "tracklet_id", "lineage": "lineage_id"}
    for labels in meta.related_objects or []:
        seg = np.asarray(zarr.open_array(store / labels.path, mode="r"))
        props = memory["node_props"]
        assert axes_match_seg_dims(memory, seg)[0]
        ok, errors = has_seg_ids_at_time_points(seg, props["t"]["values"],
                                                props[labels.node_prop]["values"], meta)
        assert ok, errors
    return memory


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


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_sample_ground_truth_round_trip(sample: Path, tmp_path: Path) -> None:
    truth = read_tracking_gt(sample / "01_GT")
    store = write_geff(truth, tmp_path / "gt.zarr")
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) == [
        "edges", "nodes", "segmentation"]  # the path written is the graph group
    assert [p.name for p in tmp_path.iterdir()] == ["gt.zarr"]  # no temporary left behind
    assert_valid_geff(store)
    assert_identical(read_geff(store), truth)
    graph, _ = geff.read(store)
    assert graph.number_of_nodes() == sum(len(np.unique(m)) - 1 for m in truth.masks)
    track_ends = len(truth.lineage) - sum(1 for tr in truth.lineage.values() if tr.parent)
    assert graph.number_of_edges() == graph.number_of_nodes() - track_ends


def test_division_and_gap_round_trip_and_graph(tmp_path: Path) -> None:
    result = division_and_gap()
    assert result.errors() == []
    store = write_geff(result, tmp_path / "res.zarr")
    memory = assert_valid_geff(store)
    assert_identical(read_geff(store), result)
    graph, meta = geff.read(store)
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
    assert (labels.type, labels.path, labels.node_prop) == ("labels", "segmentation", "seg_id")
    # tracklets: the mother; each daughter, the second one with its continuation after the gap;
    # cell 5 with its single child. Lineages: the two families.
    by_track = {}
    for d in graph.nodes.values():
        by_track.setdefault(int(d["track_id"]), set()).add((d["tracklet_id"], d["lineage_id"]))
    assert all(len(ids) == 1 for ids in by_track.values())
    tracklet = {k: next(iter(v))[0] for k, v in by_track.items()}
    lineage = {k: next(iter(v))[1] for k, v in by_track.items()}
    assert len(set(tracklet.values())) == 4
    assert tracklet[3] == tracklet[4] and tracklet[5] == tracklet[6]
    assert len({tracklet[1], tracklet[2], tracklet[3]}) == 3
    assert lineage[1] == lineage[2] == lineage[3] == lineage[4] != lineage[5] == lineage[6]
    # a CTC track label is no GEFF tracklet: geff's own check says why
    ok, errors = validate_tracklets(memory["node_ids"], memory["edge_ids"],
                                    memory["node_props"]["track_id"]["values"])
    assert not ok and errors and all("Not maximal" in e for e in errors)


def test_traccuracy_on_geff_equals_ctc_metrics_on_ctc(sample: Path, tmp_path: Path) -> None:
    gt_dir = sample / "01_GT"
    result = perturbed_result(gt_dir, seed=3)  # misses, false positives, switches; no merges
    ours = evaluate(gt_dir, write_result(result, tmp_path / "01_RES"), threads=1)
    store = write_geff(result, tmp_path / "res.zarr")
    gt = load_ctc_data(str(gt_dir / "TRA"), str(gt_dir / "TRA" / "man_track.txt"), run_checks=False)
    # traccuracy 0.4.3 reads only the deprecated label_prop: name the segmentation instead
    pred = load_geff_data(str(store), seg_path=str(store / "segmentation"),
                          seg_property="seg_id")
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
    attrs_file = store / ".zattrs"
    attrs = json.loads(attrs_file.read_text())
    change(attrs["geff"])
    attrs_file.write_text(json.dumps(attrs))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda s: shutil.rmtree(s), "GEFF store not found"),
        (lambda s: (s / ".zattrs").unlink(),
         "not a GEFF store (no GEFF metadata in it or in a group below)"),
        (lambda s: shutil.rmtree(s / "nodes" / "props" / "t"),
         "malformed GEFF store (Property t is in the metadata but missing from the property "
         "group)"),
        (lambda s: edit_attrs(s, lambda g: g.update(axes=None)),
         "the GEFF metadata declares no time axis"),
        (lambda s: edit_attrs(s, lambda g: g.update(directed=False)),
         "the GEFF graph is undirected; a lineage needs a directed graph"),
        (lambda s: shutil.rmtree(s / "segmentation"),
         "the labels 'segmentation' named in the GEFF metadata cannot be read"),
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


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_store_of_celltrail_before_the_graph_group_layout_reads(tmp_path: Path) -> None:
    """Older celltrail stores: ``OUT.zarr/tracks`` beside ``OUT.zarr/segmentation``, named by the
    deprecated ``label_prop``. They read as before, from the root, without a warning."""
    result = division_and_gap()
    graph = write_geff(result, tmp_path / "g.zarr")
    old = tmp_path / "old.zarr"
    (old / "tracks").mkdir(parents=True)
    for name in ("nodes", "edges", ".zattrs", ".zgroup"):
        (graph / name).rename(old / "tracks" / name)
    (graph / "segmentation").rename(old / "segmentation")
    (old / ".zgroup").write_text('{"zarr_format": 2}')
    edit_attrs(old / "tracks", lambda g: g.update(related_objects=[
        {"type": "labels", "path": "../segmentation", "label_prop": "seg_id"}]))
    assert_identical(read_geff(old), result)
    assert_identical(read_geff(old / "tracks"), result)


def written_by_geff_convert_ctc(result: TrackingResult, tmp_path: Path, seg: bool) -> Path:
    """A result as geff's own CTC converter stores it: ``data.zarr/tracks.geff``, CTC labels as
    ``tracklet_id``, the masks (if ``seg``) in ``data.zarr/seg`` as its labels object."""
    write_result(result, tmp_path / "RES")
    store = tmp_path / "data.zarr"
    from_ctc_to_geff(tmp_path / "RES", store / "tracks.geff",
                     segmentation_store=store / "seg" if seg else None)
    return store


@pytest.mark.parametrize("seg", [True, False], ids=["with-segmentation", "points-and-masks"])
def test_geff_convert_ctc_output_converts_back(sample: Path, tmp_path: Path, seg: bool) -> None:
    """geff's converter output reads from its root folder; without its segmentation, from the
    points and the masks (each node takes the cell under it)."""
    truth = read_tracking_gt(sample / "01_GT")
    store = written_by_geff_convert_ctc(truth, tmp_path, seg)
    back = read_geff(store, masks=None if seg else list(truth.masks))
    assert back.errors() == []
    assert (len(back.lineage), len(back.lineage.divisions())) == (12, 1)
    assert_identical(back, truth)


def test_geff_convert_ctc_of_single_children_and_gaps(tmp_path: Path) -> None:
    """geff's converter declares CTC labels as tracklet ids (not maximal where a track has one
    child); they read as the CTC tracks they are."""
    result = division_and_gap()
    store = written_by_geff_convert_ctc(result, tmp_path, seg=True)
    assert_identical(read_geff(store / "tracks.geff"), result)


def points_graph(nodes: list[tuple[int, float, float]], edges: list[tuple[int, int]],
                 **props: list[int]) -> nx.DiGraph:
    """A graph of ``(t, y, x)`` nodes (and per-node ``props``), as trackers without masks write."""
    graph = nx.DiGraph()
    for node, (t, y, x) in enumerate(nodes):
        graph.add_node(node, t=t, y=y, x=x, **{k: v[node] for k, v in props.items()})
    graph.add_edges_from(edges)
    return graph


def c_shape(mask: np.ndarray, row: int, col: int, label: int) -> None:
    """A 7×7 'C' (three sides of a square, 2 pixels thick): its centroid lies off the cell."""
    mask[row:row + 7, col:col + 2] = label
    mask[row:row + 2, col:col + 7] = label
    mask[row + 5:row + 7, col:col + 7] = label


def test_points_only_graph_takes_the_cells_under_its_nodes(tmp_path: Path) -> None:
    """A points-only graph (no seg id) with masks: a dividing cell and a curved one whose
    centroid lies in its hollow (taken as the nearest cell, within that cell's radius)."""
    masks = [np.zeros((16, 16), np.uint16) for _ in range(3)]
    square(masks[0], 1, 1, 7)
    square(masks[1], 1, 2, 3)
    square(masks[2], 0, 1, 1)
    square(masks[2], 4, 4, 2)
    for t in range(3):
        c_shape(masks[t], 8, 8, 9)
    ys, xs = np.nonzero(masks[0] == 9)
    assert masks[0][round(ys.mean()), round(xs.mean())] == 0  # the centroid is off the cell
    nodes = [(0, 1.5, 1.5), (1, 1.5, 2.5), (2, 0.5, 1.5), (2, 4.5, 4.5),
             *[(t, ys.mean(), xs.mean()) for t in range(3)]]
    graph = points_graph(nodes, [(0, 1), (1, 2), (1, 3), (4, 5), (5, 6)])
    geff.write(graph, tmp_path / "pts.geff", axis_names=["t", "y", "x"],
               axis_types=["time", "space", "space"])
    result = read_geff(tmp_path / "pts.geff", masks=masks)
    assert result.errors() == []
    assert (len(result.lineage), len(result.lineage.divisions())) == (4, 1)
    assert [int(m[9, 8]) for m in result.masks] == [result.masks[0][9, 8]] * 3 != [0] * 3
    assert int(result.masks[2][0, 1]) != int(result.masks[2][4, 4])

    far = points_graph([(0, 14.0, 1.0)], [])
    geff.write(far, tmp_path / "far.geff", axis_names=["t", "y", "x"],
               axis_types=["time", "space", "space"])
    with pytest.raises(InputError) as err:
        read_geff(tmp_path / "far.geff", masks=masks[:1])
    assert str(err.value) == (f"{tmp_path / 'far.geff'}: frame 0: the node at (y, x) = "
                              f"(14.0, 1.0) lies on no cell of the masks")


def test_segmentation_id_from_a_named_property(tmp_path: Path) -> None:
    """Trackastra-style nodes (``time, label, y, x``): ``seg_prop`` names the label property;
    without it the nodes are points, placed on the same cells."""
    masks = [np.zeros((8, 8), np.uint16) for _ in range(2)]
    square(masks[0], 0, 0, 4)
    square(masks[1], 0, 1, 6)
    graph = nx.DiGraph()
    graph.add_node(0, time=0, label=4, y=0.5, x=0.5)
    graph.add_node(1, time=1, label=6, y=0.5, x=1.5)
    graph.add_edge(0, 1)
    geff.write(graph, tmp_path / "ta.geff", axis_names=["time", "y", "x"],
               axis_types=["time", "space", "space"])
    named = read_geff(tmp_path / "ta.geff", masks=masks, seg_prop="label")
    as_points = read_geff(tmp_path / "ta.geff", masks=masks)
    np.testing.assert_array_equal(named.lineage.to_array(), [[1, 0, 1, 0]])
    assert_identical(named, as_points)
    with pytest.raises(InputError) as err:
        read_geff(tmp_path / "ta.geff", masks=masks, seg_prop="seg")
    assert str(err.value) == f"{tmp_path / 'ta.geff'}: the nodes lack the property 'seg'"


def test_folder_of_several_graphs_is_refused(tmp_path: Path) -> None:
    write_geff(division_and_gap(), tmp_path / "both" / "a.geff")
    write_geff(division_and_gap(), tmp_path / "both" / "b.geff")
    with pytest.raises(InputError) as err:
        read_geff(tmp_path / "both")
    assert str(err.value) == (f"{tmp_path / 'both'}: holds several GEFF graphs (a.geff, "
                              f"b.geff): give the one to read")


def test_cli_prints_a_path_geff_validates_and_reads_geffs_own_ctc_output(
    sample: Path, tmp_path: Path
) -> None:
    """``celltrail convert`` prints the graph group (``geff validate`` passes on it); a store
    from ``geff convert-ctc``, with its segmentation or as points with ``--masks``, converts to
    a valid CTC result with the sample's 12 tracks and 1 division."""
    out = tmp_path / "gt.zarr"
    result = run("convert", sample / "01_GT", out)
    assert result.exit_code == 0, result.output
    printed = Path(" ".join(result.stderr.split()).rsplit(" to ", 1)[1])
    assert printed == out
    assert CliRunner().invoke(geff_cli, ["validate", str(printed)]).exit_code == 0
    tra = sample / "01_GT" / "TRA"
    for name, extra, masks in (("seg", ["--segm-path", tmp_path / "data.zarr" / "seg"], []),
                               ("points", [], ["--masks", tra])):
        store = tmp_path / "data.zarr" / f"{name}.geff"
        made = CliRunner().invoke(geff_cli, ["convert-ctc", str(tra), str(store),
                                             *map(str, extra)])
        assert made.exit_code == 0, made.output
        res = tmp_path / f"{name}_RES"
        source = tmp_path / "data.zarr" if name == "seg" else store
        result = run("convert", source, res, *masks)
        assert result.exit_code == 0, result.output
        back = read_result(res)
        assert back.errors() == []
        assert (len(back.lineage), len(back.lineage.divisions())) == (12, 1)
    one_error_line(run("convert", tmp_path / "data.zarr", tmp_path / "x"),
                   f"{tmp_path / 'data.zarr'}: holds several GEFF graphs (points.geff, "
                   f"seg.geff): give the one to read")
    one_error_line(run("convert", store, tmp_path / "x", "--masks", tra, "--seg-prop", "cell"),
                   f"{store}: the nodes lack the property 'cell'")
