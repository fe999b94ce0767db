"""TrackMate XML export, read back by an independent reader (geff's TrackMate converter) and
checked against what TrackMate's own reader dereferences."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import geff
import networkx as nx
import numpy as np
import pytest
from geff.convert import from_trackmate_xml_to_geff
from skimage.draw import polygon2mask

from celltrail.core import TrackingResult
from celltrail.io.ctc import read_tracking_gt, write_result
from celltrail.io.trackmate import write_trackmate
from celltrail.simulate import SimParams, simulate
from tests.test_cli import run

pytestmark = [  # geff's converter notes what a file without an image or display settings lacks
    pytest.mark.filterwarnings("ignore:Missing tag:UserWarning"),
    pytest.mark.filterwarnings("ignore:No image path:UserWarning"),
]


@pytest.fixture(scope="module")
def dividing(tmp_path_factory: pytest.TempPathFactory) -> TrackingResult:
    """Simulated ground truth with divisions."""
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimParams(frames=16, size=96, cells=6, cell_diameter=16, division_rate=0.08,
                            apoptosis_rate=0.0), seed=1)
    truth = read_tracking_gt(out / "01_GT")
    return TrackingResult(list(truth.masks), truth.lineage)


def expected_links(result: TrackingResult) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    """((frame, label), (frame, label)) of every link: within tracks and parent → child."""
    links = set()
    for track in result.lineage.values():
        links |= {((t, track.label), (t + 1, track.label)) for t in range(track.begin, track.end)}
        if track.parent:
            links.add(((result.lineage[track.parent].end, track.parent),
                       (track.begin, track.label)))
    return links


def read_back(xml: Path, tmp_path: Path) -> nx.DiGraph:
    """The file as geff's TrackMate reader sees it: spots as nodes, links as edges."""
    from_trackmate_xml_to_geff(xml, tmp_path / "read.geff")
    graph, _ = geff.read(tmp_path / "read.geff")
    return graph


def test_spots_links_divisions_and_outlines_read_back(
    dividing: TrackingResult, tmp_path: Path
) -> None:
    assert len(dividing.lineage.divisions()) >= 3
    graph = read_back(write_trackmate(dividing, tmp_path / "res.xml"), tmp_path)
    cells = {(t, int(label)) for t, mask in enumerate(dividing.masks)
             for label in np.unique(mask[mask > 0])}
    key = {n: (int(d["FRAME"]), int(d["CTC_LABEL"])) for n, d in graph.nodes(data=True)}
    assert sorted(key.values()) == sorted(cells)
    assert {(key[a], key[b]) for a, b in graph.edges} == expected_links(dividing)
    assert sum(1 for n in graph if graph.out_degree(n) == 2) == len(dividing.lineage.divisions())
    for node, data in graph.nodes(data=True):
        t, label = key[node]
        region = dividing.masks[t] == label
        ys, xs = np.nonzero(region)
        assert (data["POSITION_Y"], data["POSITION_X"]) == pytest.approx((ys.mean(), xs.mean()))
        assert data["AREA"] == region.sum() and data["VISIBILITY"] == 1
        # the outline, relative to the spot (x, y), holds exactly the cell's pixel centres
        outline = np.asarray(data["ROI_coords"]) + np.array([data["POSITION_X"],
                                                             data["POSITION_Y"]])
        assert data["ROI_N_POINTS"] == len(outline) >= 4
        np.testing.assert_array_equal(polygon2mask(region.shape, outline[:, ::-1]), region)
    # one TrackMate track per connected lineage that has a link
    lineages = [c for c in nx.weakly_connected_components(graph) if len(c) > 1]
    assert {frozenset(c) for c in lineages} == {
        frozenset(n for n in graph if graph.nodes[n].get("TRACK_ID") == i)
        for i in {graph.nodes[n]["TRACK_ID"] for c in lineages for n in c}}


def test_file_holds_what_trackmates_reader_dereferences(
    dividing: TrackingResult, tmp_path: Path
) -> None:
    """TmXmlReader reads every spot, edge and track attribute as a declared feature and
    dereferences the settings' filter elements without a check; spot IDs are unique and
    the filtered tracks name existing ones."""
    root = ET.parse(write_trackmate(dividing, tmp_path / "res.xml", pixel_size=0.5,
                                    frame_interval=300.0)).getroot()
    assert root.tag == "TrackMate" and root.get("version") >= "2.1"
    model = root.find("Model")
    assert (model.get("spatialunits"), model.get("timeunits")) == ("µm", "s")
    declared = {group.tag: {f.get("feature") for f in group}
                for group in model.find("FeatureDeclarations")}
    spots = list(model.iter("Spot"))
    assert len({s.get("ID") for s in spots}) == len(spots) == sum(
        len(np.unique(m)) - 1 for m in dividing.masks)
    for spot in spots:
        assert set(spot.attrib) - {"ID", "name", "ROI_N_POINTS"} <= declared["SpotFeatures"]
    for edge in model.iter("Edge"):
        assert set(edge.attrib) <= declared["EdgeFeatures"]
    tracks = model.find("AllTracks")
    for track in tracks:
        assert set(track.attrib) - {"name"} <= declared["TrackFeatures"]
    assert [t.get("TRACK_ID") for t in model.find("FilteredTracks")] == [
        t.get("TRACK_ID") for t in tracks]
    settings = root.find("Settings")
    for tag in ("ImageData", "InitialSpotFilter", "SpotFilterCollection",
                "TrackFilterCollection", "DetectorSettings", "TrackerSettings"):
        assert settings.find(tag) is not None, tag
    image = settings.find("ImageData")
    assert (image.get("width"), image.get("height"), image.get("nframes")) == ("96", "96", "16")
    assert (image.get("pixelwidth"), image.get("timeinterval")) == ("0.5", "300.0")
    first = next(s for s in spots if s.get("FRAME") == "1")
    xs = np.nonzero(dividing.masks[1] == int(first.get("CTC_LABEL")))[1]
    assert float(first.get("POSITION_X")) == pytest.approx(xs.mean() * 0.5)
    assert float(first.get("POSITION_T")) == 300.0


def test_convert_writes_trackmate_and_replaces_only_its_own(
    dividing: TrackingResult, tmp_path: Path
) -> None:
    res = write_result(dividing, tmp_path / "01_RES")
    xml = tmp_path / "res.xml"
    for _ in range(2):  # the second run replaces the file the first wrote
        result = run("convert", res, xml)
        assert result.exit_code == 0, result.output
        assert " ".join(result.stderr.split()).endswith(f"frames to {xml}")
    graph = read_back(xml, tmp_path)
    assert graph.number_of_nodes() == sum(len(np.unique(m)) - 1 for m in dividing.masks)
    foreign = tmp_path / "theirs.xml"
    foreign.write_text("<TrackMate/>")
    result = run("convert", res, foreign)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {foreign}: exists and was not written by "
                                     f"celltrail; choose another name or pass --overwrite")
    assert foreign.read_text() == "<TrackMate/>"
