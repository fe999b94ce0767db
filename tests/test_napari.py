"""The napari plugin, headless: readers (CTC folders, GEFF stores), writers (CTC result, GEFF),
sample data and tracking widget, through its manifest, in a real (hidden) viewer. BoxTrack runs
on the bundled sample, a crop of Fluo-N2DH-GOWT1 01; EmbedTrack with a tiny untrained checkpoint
on a small image."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import napari
import numpy as np
import pytest
import tifffile
from geff.convert import from_ctc_to_geff
from napari.layers import Image, Labels, Shapes, Tracks
from napari.plugins._npe2 import get_readers

import celltrail.napari
from celltrail.core.errors import InputError
from celltrail.core.result import TrackingResult
from celltrail.core.sequence import ArraySequence, open_sequence
from celltrail.io.boxes import boxes_from_gt
from celltrail.io.ctc import read_result, read_tracking_gt, write_man_track
from celltrail.io.geff import write_geff
from celltrail.methods import METHODS, Method, register
from celltrail.methods.embedtrack import EmbedTracker
from celltrail.metrics.ctc import evaluate
from celltrail.napari._reader import PARENTS_KEY, napari_get_reader
from celltrail.napari._widget import (
    TrackWidget,
    boxes_to_rectangles,
    shapes_to_boxes,
    widget_value,
)
from celltrail.napari._writer import write_labels
from tests.test_geff import assert_valid_geff

# No display in CI: Qt draws into memory. Qt reads this when the QApplication starts (in the
# first test), after this module is imported.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MANIFEST = Path(celltrail.napari.__file__).with_name("napari.yaml")


@pytest.fixture
def viewer(npe2pm, make_napari_viewer, monkeypatch) -> Iterator[napari.Viewer]:
    """A hidden viewer with the plugin registered from its manifest (npe2's test manager blocks
    every other plugin). Qt's offscreen platform has no OpenGL, so napari's probes of the GPU
    (made as an image is added; nothing is drawn here) get the answers napari's own tests use."""
    monkeypatch.setattr("napari._vispy.layers.image.get_gl_extensions", lambda: "")
    monkeypatch.setattr("napari._vispy.layers.image.get_max_texture_sizes", lambda: (4096, 2048))
    with npe2pm.tmp_plugin(manifest=str(MANIFEST)):
        yield make_napari_viewer()


def dock_widget(viewer: napari.Viewer) -> TrackWidget:
    """The tracking widget, docked from the plugin menu's command."""
    _, widget = viewer.window.add_plugin_dock_widget("celltrail", "Track cells")
    assert isinstance(widget, TrackWidget)
    return widget


def wait_for_run(qtbot, widget: TrackWidget) -> None:
    """Wait until the worker has finished and the widget is ready again."""
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=120_000)


def test_reader_opens_images_lazily(sample: Path, viewer: napari.Viewer) -> None:
    [layer] = viewer.open(sample / "01", plugin="celltrail")
    assert isinstance(layer, Image)
    assert layer.name == "01"
    assert layer.data.shape == (40, 384, 384)
    assert not isinstance(layer.data, np.ndarray)  # a dask array, read frame by frame
    np.testing.assert_array_equal(np.asarray(layer.data[7]),
                                  tifffile.imread(sample / "01" / "t007.tif"))


def test_reader_opens_ground_truth(sample: Path, viewer: napari.Viewer) -> None:
    layers = viewer.open(sample / "01_GT", plugin="celltrail")
    assert [(layer.name, type(layer)) for layer in layers] == [
        ("01_GT TRA", Labels), ("01_GT SEG", Labels), ("01_GT TRA tracks", Tracks)]
    tra, seg, tracks = layers
    truth = read_tracking_gt(sample / "01_GT")
    assert tra.data.shape == (40, 384, 384)
    for t in (0, 39):
        np.testing.assert_array_equal(tra.data[t], truth.masks[t])
    assert seg.data[7].any() and not seg.data[9].any()  # SEG annotates some frames only
    np.testing.assert_array_equal(
        seg.data[7], tifffile.imread(sample / "01_GT" / "SEG" / "man_seg007.tif"))
    # one point per marker per frame, at its centroid; the graph is man_track.txt's parents
    assert len(tracks.data) == sum(len(np.unique(m)) - 1 for m in truth.masks)
    assert set(tracks.data[:, 0].astype(int)) == set(truth.lineage)
    graph = {label: [track.parent] for label, track in truth.lineage.items() if track.parent}
    assert graph and tracks.graph == graph
    assert tra.metadata[PARENTS_KEY] == {k: v[0] for k, v in graph.items()}
    ys, xs = np.nonzero(truth.masks[0] == 5)
    row = tracks.data[(tracks.data[:, 0] == 5) & (tracks.data[:, 1] == 0)][0]
    np.testing.assert_allclose(row[2:], [ys.mean(), xs.mean()])


def test_reader_leaves_other_paths_to_napari(sample: Path, tmp_path: Path) -> None:
    assert napari_get_reader(str(sample / "01" / "t000.tif")) is None  # a file
    assert napari_get_reader(str(tmp_path)) is None  # an empty folder
    assert napari_get_reader([str(sample / "01")]) is None  # a stack of paths
    assert napari_get_reader(str(sample / "01_GT")) is not None


def test_plain_files_are_left_to_napari(
    sample: Path, npe2pm, tmp_path: Path
) -> None:
    """The reader claims folders only: a plain .tif gets no celltrail reader (so napari does not
    ask which plugin to use), CTC folders and GEFF stores do."""
    store = write_geff(read_tracking_gt(sample / "01_GT"), tmp_path / "gt.zarr")
    tif = tmp_path / "stack.tif"
    tifffile.imwrite(tif, np.zeros((2, 8, 8), np.uint8))
    with npe2pm.tmp_plugin(manifest=str(MANIFEST)):
        for path in (tif, sample / "01" / "t000.tif", tmp_path / "notes.csv"):
            assert "celltrail" not in get_readers(path)
        for path in (sample / "01", sample / "01_GT", store):
            assert "celltrail" in get_readers(path)
    assert napari_get_reader(str(store)) is not None
    assert napari_get_reader(str(tmp_path)) is None  # a plain folder holding a GEFF store


def test_geff_opens_as_labels_and_tracks(
    sample: Path, viewer: napari.Viewer, tmp_path: Path
) -> None:
    truth = read_tracking_gt(sample / "01_GT")
    store = write_geff(truth, tmp_path / "gt.zarr")
    labels, tracks = viewer.open(store, plugin="celltrail")
    assert (labels.name, type(labels), tracks.name, type(tracks)) == (
        "gt", Labels, "gt tracks", Tracks)
    np.testing.assert_array_equal(labels.data, np.stack(truth.masks))
    assert tracks.graph == {k: [t.parent] for k, t in truth.lineage.items() if t.parent}
    assert len(tracks.data) == sum(len(np.unique(m)) - 1 for m in truth.masks)


def test_points_only_geff_opens_as_tracks(
    sample: Path, viewer: napari.Viewer, tmp_path: Path
) -> None:
    """geff's own CTC converter without a segmentation: node positions only."""
    from_ctc_to_geff(sample / "01_GT" / "TRA", tmp_path / "points.geff")
    [tracks] = viewer.open(tmp_path / "points.geff", plugin="celltrail")
    truth = read_tracking_gt(sample / "01_GT")
    assert (tracks.name, type(tracks)) == ("points tracks", Tracks)
    assert tracks.graph == {k: [t.parent] for k, t in truth.lineage.items() if t.parent}
    ys, xs = np.nonzero(truth.masks[3] == 5)
    row = tracks.data[(tracks.data[:, 0] == 5) & (tracks.data[:, 1] == 3)][0]
    np.testing.assert_allclose(row[2:], [ys.mean(), xs.mean()])


def test_sample_data_loads(viewer: napari.Viewer) -> None:
    layers = viewer.open_sample("celltrail", "gowt1")
    assert [(layer.name, type(layer)) for layer in layers] == [
        ("01", Image), ("01_GT TRA", Labels), ("01_GT SEG", Labels),
        ("01_GT TRA tracks", Tracks)]
    assert layers[0].data.shape == layers[1].data.shape == (40, 384, 384)
    assert layers[3].graph == {18: [16], 22: [16]}


def test_tracks_writer_round_trip(
    sample: Path, viewer: napari.Viewer, tmp_path: Path
) -> None:
    """A Tracks layer saved as GEFF (a valid one, by geff's checks) opens as the same tracks."""
    tracks = viewer.open(sample / "01_GT", plugin="celltrail")[-1]
    viewer.layers.selection = {tracks}
    store = tmp_path / "tracks.zarr"
    assert viewer.layers.save(str(store), selected=True, plugin="celltrail") == [str(store)]
    assert_valid_geff(store)
    [back] = viewer.open(store, plugin="celltrail")
    assert isinstance(back, Tracks) and back.graph == tracks.graph
    order = np.lexsort((tracks.data[:, 1], tracks.data[:, 0]))
    np.testing.assert_allclose(back.data, tracks.data[order])
    theirs = tmp_path / "theirs.zarr"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds 'notes\.txt', which celltrail did not write"):
        viewer.layers.save(str(theirs), selected=True, plugin="celltrail")
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


def test_writer_round_trip(sample: Path, viewer: napari.Viewer, tmp_path: Path) -> None:
    """GT markers saved through napari as a result folder keep masks and lineage exactly, and the
    result folder opens again as Labels and Tracks."""
    tra = viewer.open(sample / "01_GT", plugin="celltrail")[0]
    viewer.layers.selection = {tra}
    res = tmp_path / "01_RES"
    assert viewer.layers.save(str(res), selected=True, plugin="celltrail") == [str(res)]
    written, truth = read_result(res), read_tracking_gt(sample / "01_GT")
    assert written.lineage == truth.lineage
    for t in range(40):
        np.testing.assert_array_equal(written.masks[t], truth.masks[t])
    labels, tracks = viewer.open(res, plugin="celltrail")
    assert (labels.name, type(labels), type(tracks)) == ("01_RES", Labels, Tracks)
    assert tracks.graph == {k: [v] for k, v in tra.metadata[PARENTS_KEY].items()}


def test_writer_without_parents_declares_gaps(tmp_path: Path) -> None:
    """Plain labels (no lineage in the metadata): a label that vanishes and comes back becomes a
    new track whose parent is its earlier run, as CTC requires."""
    masks = np.zeros((4, 8, 8), dtype=np.uint8)
    masks[:, 1:3, 1:3] = 1
    masks[[0, 1, 3], 5:7, 5:7] = 3
    write_labels(str(tmp_path / "res"), masks, {"metadata": {}})
    result = read_result(tmp_path / "res")
    assert [(t.label, t.begin, t.end, t.parent) for t in result.lineage.values()] == [
        (1, 0, 3, 0), (3, 0, 1, 0), (4, 3, 3, 3)]
    with pytest.raises(InputError, match="holds 'res', which celltrail did not write"):
        write_labels(str(tmp_path), masks, {})  # holds res/: never replaced
    with pytest.raises(InputError, match="integers"):
        write_labels(str(tmp_path / "float"), masks.astype(float), {})


def test_widget_tracks_prompted_cells(
    sample: Path, viewer: napari.Viewer, qtbot, tmp_path: Path
) -> None:
    """BoxTrack (classical backend) from the boxes of frame 0's GT cells: the viewer gets labels
    and tracks of the prompted cells, and the result scores well against the ground truth."""
    image = viewer.open(sample / "01", plugin="celltrail")[0]
    boxes, _ = boxes_from_gt(sample / "01_GT")
    shapes = viewer.add_shapes(boxes_to_rectangles(boxes), shape_type="rectangle", name="cells",
                               features={"id": boxes["id"].to_numpy()})
    widget = dock_widget(viewer)
    assert (widget.image.value, widget.boxes.value) == (image, shapes)
    assert shapes_to_boxes(shapes, (384, 384)).equals(boxes)
    widget.method.value = "boxtrack"
    widget.option_widgets["backend"].value = "classical"

    widget.run_button.native.click()
    assert not widget.run_button.enabled and widget.cancel_button.enabled
    wait_for_run(qtbot, widget)

    assert widget.progress.value == 40
    assert widget.status.value.startswith("done")
    labels, tracks = viewer.layers["01 boxtrack"], viewer.layers["01 boxtrack tracks"]
    assert isinstance(labels, Labels) and isinstance(tracks, Tracks)
    assert labels.data.shape == (40, 384, 384)
    prompted = set(boxes["id"])
    assert len(prompted) == 10
    assert set(np.unique(labels.data[0])) - {0} == prompted
    in_masks = set(np.unique(labels.data)) - {0}
    assert set(tracks.data[:, 0].astype(int)) == in_masks
    assert set(tracks.data[tracks.data[:, 1] == 0, 0].astype(int)) == prompted
    parents = labels.metadata[PARENTS_KEY]
    assert tracks.graph == {child: [parent] for child, parent in parents.items()}

    viewer.layers.selection = {labels}
    res = tmp_path / "01_RES"
    viewer.layers.save(str(res), selected=True, plugin="celltrail")
    assert {t.label: t.parent for t in read_result(res).lineage.values() if t.parent} == parents
    assert evaluate(sample / "01_GT", res, threads=1)["MOTA"] > 0.85


def test_widget_cancel_stops_between_frames(
    sample: Path, viewer: napari.Viewer, qtbot
) -> None:
    viewer.open(sample / "01", plugin="celltrail")
    widget = dock_widget(viewer)
    widget.method.value = "classical"
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.progress.value >= 1, timeout=60_000)
    widget.cancel_button.native.click()
    wait_for_run(qtbot, widget)
    assert widget.status.value == "cancelled"
    assert widget.progress.value < 40
    assert [type(layer) for layer in viewer.layers] == [Image]  # nothing added


def test_widget_reports_errors_in_its_status_line(
    sample: Path, viewer: napari.Viewer, qtbot
) -> None:
    viewer.open(sample / "01", plugin="celltrail")
    widget = dock_widget(viewer)
    widget.method.value = "boxtrack"
    widget.run_button.native.click()  # no prompts: refused before any thread starts
    assert widget.worker is None and "one rectangle per cell" in widget.status.value
    late = viewer.add_shapes(np.array([[45, 10, 10], [45, 10, 30], [45, 30, 30], [45, 30, 10]]),
                             shape_type="rectangle")
    widget.boxes.value = late
    widget.run_button.native.click()  # the tracker refuses in the worker thread
    wait_for_run(qtbot, widget)
    assert widget.status.value.startswith("box prompts on frame 45, but the sequence 01 has 40 "
                                          "frames")
    assert len(viewer.layers) == 2


def test_widget_loads_box_files(sample: Path, viewer: napari.Viewer, tmp_path: Path) -> None:
    viewer.open(sample / "01", plugin="celltrail")
    widget = dock_widget(viewer)

    boxes, _ = boxes_from_gt(sample / "01_GT")
    boxes.to_csv(tmp_path / "boxes.csv", index=False)
    shapes = widget.load_boxes(tmp_path / "boxes.csv")
    assert isinstance(shapes, Shapes) and widget.boxes.value == shapes
    assert shapes_to_boxes(shapes, (384, 384)).equals(boxes)
    corners = [[0, 10.5, 10.5], [0, 10.5, 30.5], [0, 20.5, 30.5], [0, 20.5, 10.5]]
    shapes.add_rectangles(np.array(corners))  # drawn by hand
    drawn = shapes_to_boxes(shapes, (384, 384)).iloc[-1]
    assert drawn[["frame", "x", "y", "w", "h"]].tolist() == [0, 11, 11, 20, 10]
    assert drawn["id"] == boxes["id"].max() + 1  # a fresh id, not a copy of a loaded one


def test_widget_shows_the_options_of_each_method(viewer: napari.Viewer) -> None:
    """Every method of the registry, each with its own options (at its defaults) and its
    prompts only."""
    widget = dock_widget(viewer)
    assert list(widget.method.choices) == list(METHODS)
    extra = {"checkpoint": widget.checkpoint, "boxes": widget.boxes, "load": widget.load_button,
             "queries": widget.queries}

    def shown() -> set[str]:  # the viewer is hidden: visible if the widget were shown
        widgets = {**widget.option_widgets, **extra}
        return {name for name, w in widgets.items() if w.native.isVisibleTo(widget.native)}

    for name, method in METHODS.items():
        widget.method.value = name
        fields = {f.name for f in method.options.fields()}
        prompts = {"boxes": {"boxes", "load"}, "queries": {"queries"}}.get(method.prompts, set())
        assert shown() == fields | prompts | ({"checkpoint"} if "model" in fields else set())
        assert {f.name: widget_value(widget.option_widgets[f.name], f)
                for f in method.options.fields()} == {f.name: f.default
                                                       for f in method.options.fields()}


def test_widget_tracks_with_an_embedtrack_checkpoint(
    viewer: napari.Viewer, qtbot, tiny_embedtrack: Path
) -> None:
    """A checkpoint file takes precedence over the shipped-model choice; the viewer gets what
    the tracker gives outside napari. Without any model a method that needs one is refused."""
    data = np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)
    viewer.add_image(data, name="cells")
    widget = dock_widget(viewer)
    widget.method.value = "cellboxify"
    widget.run_button.native.click()
    assert widget.worker is None
    assert widget.status.value.startswith("model: cellboxify needs a model: a checkpoint path "
                                          "or a model by name (DIC-C2DH-HeLa")
    widget.method.value = "embedtrack"
    assert widget.option_widgets["model"].value == "general"

    widget.option_widgets["model"].value = "Fluo-N2DH-GOWT1"  # not used: the checkpoint is
    widget.checkpoint.value, widget.option_widgets["tta"].value = tiny_embedtrack, True
    job = widget.job()
    assert job.options == {"model": str(tiny_embedtrack), "tta": True, "device": "cpu",
                           "diameter": None}
    widget.run_button.native.click()
    wait_for_run(qtbot, widget)

    assert widget.progress.value == 4
    assert widget.status.value.startswith("done")
    labels = viewer.layers["cells embedtrack"]
    tracks = viewer.layers["cells embedtrack tracks"]
    assert isinstance(labels, Labels) and isinstance(tracks, Tracks)
    expected = EmbedTracker(model=str(tiny_embedtrack), tta=True).track(
        ArraySequence(data, name="cells"))
    np.testing.assert_array_equal(labels.data, np.stack(expected.masks))
    assert set(tracks.data[:, 0].astype(int)) == set(expected.lineage) != set()


def test_a_sixth_method_appears_in_the_widget(viewer: napari.Viewer, qtbot) -> None:
    """A method registered in one line is offered with its option and runs from the widget."""
    from tests.test_registry import ThresholdOptions

    register(Method("threshold", ThresholdOptions, "tests.test_registry:ThresholdTracker",
                    "a test method"))
    try:
        viewer.add_image(np.random.default_rng(0).random((3, 32, 32)), name="noise")
        widget = dock_widget(viewer)
        assert "threshold" in widget.method.choices and "level" in widget.option_widgets
        widget.method.value = "threshold"
        widget.option_widgets["level"].value = "0.9"
        assert widget.job().options == {"level": 0.9}
        widget.run_button.native.click()
        wait_for_run(qtbot, widget)
        assert widget.status.value.startswith("done") and widget.progress.value == 3
    finally:
        del METHODS["threshold"]


#: What a method needs set in the widget (as a user types or ticks it) to run on the crop
#: below: a model where it has no default one; the cells' diameter where the method measures it
#: (the crop is too small for the estimate: 13 px, against 53 px on the whole frame); BoxTrack
#: without its test-time adaptation (25 s of fine-tuning; tested in test_learned.py).
NEEDS = {"classical": {"diameter": "45"}, "boxtrack": {"adapt": False},
         "embedtrack": {"model": "Fluo-N2DH-GOWT1"}, "cap": {"diameter": "45"},
         "cellboxify": {"model": "Fluo-N2DH-SIM+_box"}}
#: A crop of the bundled sample (rows, columns) holding three whole cells on frame 0 (GT ids
#: 16, 25 and 26) and part of a fourth: small enough for every method to run in seconds.
CROP = (slice(160, 320), slice(96, 288))


def cropped_prompts(sample: Path, viewer: napari.Viewer, kind: str | None,
                    tmp_path: Path) -> tuple[Shapes | None, Path | None, set[int]]:
    """The prompts of ``kind`` for the crop: a Shapes layer of the boxes of the three whole
    cells, or a ground-truth folder of frame 0's markers in the crop; and their cell ids."""
    if kind == "boxes":
        boxes, _ = boxes_from_gt(sample / "01_GT")
        boxes = boxes[boxes["id"].isin([16, 25, 26])].reset_index(drop=True)
        boxes[["y", "x"]] -= [CROP[0].start, CROP[1].start]
        shapes = viewer.add_shapes(boxes_to_rectangles(boxes), shape_type="rectangle",
                                   features={"id": boxes["id"].to_numpy()})
        return shapes, None, set(boxes["id"])
    if kind == "queries":
        markers = np.asarray(read_tracking_gt(sample / "01_GT").masks[0])[CROP]
        tra = tmp_path / "01_GT" / "TRA"
        tra.mkdir(parents=True)
        tifffile.imwrite(tra / "man_track000.tif", markers)
        write_man_track(TrackingResult.from_masks([markers], {}).lineage, tra / "man_track.txt")
        return None, tra.parent, set(np.unique(markers)) - {0}
    return None, None, set()


@pytest.mark.parametrize(("name", "queries"), [
    *((name, False) for name in METHODS), ("cap", True)])
def test_every_method_runs_from_the_widget(
    name: str, queries: bool, sample: Path, viewer: napari.Viewer, qtbot, tmp_path: Path
) -> None:
    """Every registered method tracks the first three frames of a crop of the sample from the
    widget, with what it needs (a model, boxes, optionally CAP's queries): the viewer gets a
    Labels layer of three frames with a plausible number of cells in each (the ground truth has
    4 in the crop's frame 0, one of them cut by its edge) and the Tracks of those labels."""
    method = METHODS[name]
    frames = np.stack([open_sequence(sample / "01")[t][CROP] for t in range(3)])
    viewer.add_image(frames, name="crop")
    kind = method.prompts if method.needs_prompts or queries else None
    shapes, gt, prompted = cropped_prompts(sample, viewer, kind, tmp_path)
    widget = dock_widget(viewer)
    widget.method.value = name
    for option, value in NEEDS.get(name, {}).items():
        widget.option_widgets[option].value = value
    if shapes is not None:
        widget.boxes.value = shapes
    widget.queries.value = gt

    widget.run_button.native.click()
    wait_for_run(qtbot, widget)

    assert widget.status.value.startswith("done"), widget.status.value
    assert widget.progress.value == 3
    labels, tracks = viewer.layers[f"crop {name}"], viewer.layers[f"crop {name} tracks"]
    assert isinstance(labels, Labels) and isinstance(tracks, Tracks)
    assert labels.data.shape == (3, 160, 192)
    assert all(0 < len(np.unique(labels.data[t])) - 1 <= 10 for t in range(3))
    assert set(tracks.data[:, 0].astype(int)) == set(np.unique(labels.data)) - {0}
    assert set(tracks.data[:, 1].astype(int)) == {0, 1, 2}
    if kind == "boxes":
        assert set(np.unique(labels.data[0])) - {0} == prompted
    elif kind == "queries":
        assert len(np.unique(labels.data[0])) - 1 >= len(prompted)
