"""TrackMate XML export: a tracking result as a file Fiji's TrackMate opens (Plugins > Tracking >
Load a TrackMate file), with each cell's outline.

The file follows TrackMate 7's layout (``fiji.plugin.trackmate.io.TmXmlReader``): ``Model`` holds
the feature declarations, ``AllSpots`` (one ``Spot`` per cell per frame, in ``SpotsInFrame``
elements, with its outline as a ``ROI_N_POINTS`` polygon relative to the spot centre),
``AllTracks`` (one ``Track`` per connected lineage, with an ``Edge`` per link, divisions and
gaps included) and ``FilteredTracks`` (all of them). ``Settings`` is the minimum TrackMate needs
to show the tracks: image size and calibration, manual detector and tracker, no filters. No
image is named, so TrackMate shows the tracks on an empty canvas of the image's size; open the
image in Fiji and load the file again from TrackMate to see both.

Positions are in pixels (TrackMate's unit ``pixel``, pixel centres at whole numbers, as in the
masks) unless a pixel size is given, and times in frames unless a frame interval is given.
Cells alone in their lineage (one frame, no parent, no child) are spots without a track, as in
TrackMate.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from skimage.measure import find_contours, regionprops

from celltrail.core.errors import CellTrailError
from celltrail.core.result import TrackingResult
from celltrail.io.atomic import SIGNATURE, atomic_file
from celltrail.io.geff import lineage_ids, track_edges

#: The TrackMate file version written (the first with spot outlines).
TRACKMATE_VERSION = "7.0.0"

#: (feature, name, short name, dimension, is integer) of what we write.
_SPOT_FEATURES = [
    ("QUALITY", "Quality", "Quality", "QUALITY", False),
    ("POSITION_X", "X", "X", "POSITION", False),
    ("POSITION_Y", "Y", "Y", "POSITION", False),
    ("POSITION_Z", "Z", "Z", "POSITION", False),
    ("POSITION_T", "T", "T", "TIME", False),
    ("FRAME", "Frame", "Frame", "NONE", True),
    ("RADIUS", "Radius", "R", "LENGTH", False),
    ("VISIBILITY", "Visibility", "Visibility", "NONE", True),
    ("AREA", "Area", "Area", "AREA", False),
    ("CTC_LABEL", "CTC track label", "CTC label", "NONE", True),
]
_EDGE_FEATURES = [
    ("SPOT_SOURCE_ID", "Source spot ID", "Source ID", "NONE", True),
    ("SPOT_TARGET_ID", "Target spot ID", "Target ID", "NONE", True),
]
_TRACK_FEATURES = [
    ("TRACK_INDEX", "Track index", "Index", "NONE", True),
    ("TRACK_ID", "Track ID", "ID", "NONE", True),
    ("NUMBER_SPOTS", "Number of spots in track", "N spots", "NONE", True),
    ("NUMBER_SPLITS", "Number of split events", "N splits", "NONE", True),
    ("TRACK_START", "Track start", "Track start", "TIME", False),
    ("TRACK_STOP", "Track stop", "Track stop", "TIME", False),
    ("TRACK_DURATION", "Track duration", "Duration", "TIME", False),
]


def write_trackmate(
    result: TrackingResult,
    path: str | Path,
    pixel_size: float | None = None,
    frame_interval: float | None = None,
) -> Path:
    """Write a result as a TrackMate XML file, atomically; returns ``path``.

    ``pixel_size`` (length per pixel, in ``µm``) and ``frame_interval`` (in ``s``), when
    known, calibrate the positions and times; by default they stay in pixels and frames.
    """
    path = Path(path)
    if not len(result.masks):
        raise CellTrailError("a result with no frames cannot be written as TrackMate XML")
    for name, value in (("pixel_size", pixel_size), ("frame_interval", frame_interval)):
        if value is not None and not value > 0:
            raise CellTrailError(f"{name} must be > 0, not {value}")
    scale = (pixel_size or 1.0, frame_interval or 1.0)
    spots = _spots(result, scale)
    t, label = spots["FRAME"].astype(np.int64), spots["CTC_LABEL"].astype(np.int64)
    edges = track_edges(t, label, result.lineage)
    root = ET.Element("TrackMate", version=TRACKMATE_VERSION)
    ET.SubElement(root, "Log").text = f"{SIGNATURE}: {len(t)} spots, {len(edges)} links\n"
    model = ET.SubElement(root, "Model", spatialunits="pixel" if pixel_size is None else "µm",
                          timeunits="frame" if frame_interval is None else "s")
    model.append(_declarations())
    model.append(_all_spots(spots, len(result.masks)))
    tracks = _all_tracks(spots, edges)
    model.append(tracks)
    filtered = ET.SubElement(model, "FilteredTracks")
    for track in tracks:
        ET.SubElement(filtered, "TrackID", TRACK_ID=track.get("TRACK_ID", ""))
    shape = np.asarray(result.masks[0]).shape
    root.append(_settings(shape, len(result.masks), scale, float(np.median(spots["RADIUS"]))
                          if len(t) else scale[0]))
    ET.SubElement(root, "GUIState", state="ConfigureViews")
    ET.indent(root)
    with atomic_file(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="UTF-8", xml_declaration=True)
    return path


def _spots(result: TrackingResult, scale: tuple[float, float]) -> dict[str, np.ndarray]:
    """One entry per cell per frame: the spot features and ``ROI`` (outline relative to the
    centre, in the calibrated unit)."""
    columns: dict[str, list] = {name: [] for name, *_ in _SPOT_FEATURES}
    columns["ROI"] = []
    frame_labels = []
    for t, mask in enumerate(result.masks):
        regions = regionprops(np.asarray(mask))
        frame_labels.append([region.label for region in regions])
        for region in regions:
            cy, cx = region.centroid
            columns["POSITION_X"].append(cx * scale[0])
            columns["POSITION_Y"].append(cy * scale[0])
            columns["FRAME"].append(t)
            columns["POSITION_T"].append(t * scale[1])
            columns["AREA"].append(region.area * scale[0] ** 2)
            columns["RADIUS"].append(np.sqrt(region.area / np.pi) * scale[0])
            columns["CTC_LABEL"].append(region.label)
            columns["ROI"].append((outline(region.image, region.bbox[:2]) - (cy, cx)) * scale[0])
    result.validate(frame_labels)
    n = len(columns["FRAME"])
    columns.update(QUALITY=[1.0] * n, POSITION_Z=[0.0] * n, VISIBILITY=[1] * n)
    rois = columns.pop("ROI")
    out = {name: np.asarray(values) for name, values in columns.items()}
    out["ROI"] = np.empty(n, dtype=object)
    out["ROI"][:] = rois
    return out


def outline(image: np.ndarray, corner: Iterable[int]) -> np.ndarray:
    """(K, 2) row, column points of the outer outline of a binary cell image whose first pixel
    lies at ``corner``: the polygon through the midpoints between the cell's border pixels and
    the background, so it holds every pixel centre of the cell and no other."""
    contours = find_contours(np.pad(image, 1).astype(np.float64), 0.5)
    longest = max(contours, key=len)
    return longest[:-1] + np.asarray(list(corner)) - 1  # closed: the last point is the first


def _feature(parent: ET.Element, feature: tuple[str, str, str, str, bool]) -> None:
    key, name, short, dimension, integer = feature
    ET.SubElement(parent, "Feature", feature=key, name=name, shortname=short,
                  dimension=dimension, isint=str(integer).lower())


def _declarations() -> ET.Element:
    """``FeatureDeclarations`` of the spot, edge and track features written."""
    element = ET.Element("FeatureDeclarations")
    for tag, features in (("SpotFeatures", _SPOT_FEATURES), ("EdgeFeatures", _EDGE_FEATURES),
                          ("TrackFeatures", _TRACK_FEATURES)):
        group = ET.SubElement(element, tag)
        for feature in features:
            _feature(group, feature)
    return element


def _number(value: float | int | np.number, integer: bool) -> str:
    return str(int(value)) if integer else repr(float(value))


def _all_spots(spots: dict[str, np.ndarray], frames: int) -> ET.Element:
    """``AllSpots``: a ``SpotsInFrame`` per frame; spot IDs are indices into ``spots``."""
    element = ET.Element("AllSpots", nspots=str(len(spots["FRAME"])))
    in_frame = [ET.SubElement(element, "SpotsInFrame", frame=str(t)) for t in range(frames)]
    for i, frame in enumerate(spots["FRAME"]):
        roi = spots["ROI"][i]
        attributes = {"ID": str(i), "name": f"cell {spots['CTC_LABEL'][i]}",
                      "ROI_N_POINTS": str(len(roi))}
        for key, _, _, _, integer in _SPOT_FEATURES:
            attributes[key] = _number(spots[key][i], integer)
        spot = ET.SubElement(in_frame[frame], "Spot", attributes)
        spot.text = " ".join(repr(float(v)) for v in roi[:, ::-1].ravel())  # x y x y ...
    return element


def _all_tracks(spots: dict[str, np.ndarray], edges: np.ndarray) -> ET.Element:
    """``AllTracks``: one ``Track`` per lineage (connected component) that has a link."""
    element = ET.Element("AllTracks")
    component = lineage_ids(len(spots["FRAME"]), edges)[edges[:, 0]] if len(edges) else edges
    ids = np.unique(component)
    time = spots["POSITION_T"]
    for index, track_id in enumerate(ids):
        links = edges[component == track_id]
        nodes = np.unique(links)
        out_degree = np.bincount(links[:, 0], minlength=len(time))
        start, stop = float(time[nodes].min()), float(time[nodes].max())
        values = {"TRACK_INDEX": index, "TRACK_ID": index, "NUMBER_SPOTS": len(nodes),
                  "NUMBER_SPLITS": int(np.sum(out_degree > 1)), "TRACK_START": start,
                  "TRACK_STOP": stop, "TRACK_DURATION": stop - start}
        track = ET.SubElement(element, "Track", {"name": f"Track_{index}"} | {
            key: _number(values[key], integer) for key, _, _, _, integer in _TRACK_FEATURES})
        for source, target in links:
            ET.SubElement(track, "Edge", SPOT_SOURCE_ID=str(source), SPOT_TARGET_ID=str(target))
    return element


def _settings(
    shape: tuple[int, ...], frames: int, scale: tuple[float, float], radius: float
) -> ET.Element:
    """``Settings``: image size and calibration, manual detector and tracker, no filters."""
    height, width = shape
    element = ET.Element("Settings")
    ET.SubElement(element, "ImageData", filename="", folder="", width=str(width),
                  height=str(height), nslices="1", nframes=str(frames),
                  pixelwidth=repr(scale[0]), pixelheight=repr(scale[0]), voxeldepth=repr(scale[0]),
                  timeinterval=repr(scale[1]))
    ET.SubElement(element, "BasicSettings", xstart="0", xend=str(width - 1), ystart="0",
                  yend=str(height - 1), zstart="0", zend="0", tstart="0", tend=str(frames - 1))
    ET.SubElement(element, "DetectorSettings", DETECTOR_NAME="MANUAL_DETECTOR",
                  RADIUS=repr(radius))
    ET.SubElement(element, "InitialSpotFilter", feature="QUALITY", value="0.0", isabove="true")
    ET.SubElement(element, "SpotFilterCollection")
    ET.SubElement(element, "TrackerSettings", TRACKER_NAME="MANUAL_TRACKER")
    ET.SubElement(element, "TrackFilterCollection")
    analyzers = ET.SubElement(element, "AnalyzerCollection")
    for tag in ("SpotAnalyzers", "EdgeAnalyzers", "TrackAnalyzers"):
        ET.SubElement(analyzers, tag)
    return element
