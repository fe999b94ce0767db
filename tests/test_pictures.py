"""Result pictures: family colours, trails in movies, lineage plots and the HTML report."""

from __future__ import annotations

import base64
import colorsys
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from celltrail.core import InputError, Lineage, Track, TrackingResult
from celltrail.io.ctc import gt_as_result, write_result
from celltrail.viz.lineage import plot_lineage, tree_rows
from celltrail.viz.movie import write_movie
from celltrail.viz.overlay import daughter_colours, family_colours, label_colour
from celltrail.viz.report import view, write_report
from tests.conftest import disc

SHAPE = (40, 48)
SVG = "{http://www.w3.org/2000/svg}"


def centre(label: int, t: int) -> tuple[int, int]:
    """Where cell ``label`` is at frame ``t``: the mother (1) moves right over frames 0-2, then
    her daughters 2 and 3 move apart up and down, still moving right."""
    if label == 1:
        return 20, 8 + 6 * t
    return 20 + (4 if label == 3 else -4) * (t - 2), 20 + 6 * (t - 2)


def division() -> tuple[list[np.ndarray], TrackingResult]:
    """Six noisy frames of a cell dividing between frames 2 and 3."""
    rng = np.random.default_rng(0)
    masks = []
    for t in range(6):
        mask = np.zeros(SHAPE, dtype=np.uint16)
        for label in ((1,) if t < 3 else (2, 3)):
            mask[disc(SHAPE, centre(label, t), 3)] = label
        masks.append(mask)
    images = [rng.normal(100, 5, SHAPE) + 150 * (mask > 0) for mask in masks]
    return images, TrackingResult.from_masks(masks, {2: 1, 3: 1})


def lightness_and_hue(colour: tuple[int, int, int]) -> tuple[float, float]:
    hue, light, _ = colorsys.rgb_to_hls(*(c / 255 for c in colour))
    return light, hue


def test_daughters_are_shades_of_their_mother() -> None:
    mother = label_colour(7)
    lighter, darker = daughter_colours(mother, 2)
    (l_mother, h_mother), (l_light, h_light), (l_dark, h_dark) = map(
        lightness_and_hue, (mother, lighter, darker))
    assert h_light == pytest.approx(h_mother, abs=0.01)
    assert h_dark == pytest.approx(h_mother, abs=0.01)
    assert l_dark + 0.05 < l_mother < l_light - 0.05
    assert daughter_colours(mother, 1) == [mother]  # a track resumed after a gap


def test_family_colours_follow_the_lineage() -> None:
    lineage = Lineage([Track(1, 0, 2), Track(2, 3, 5, 1), Track(3, 3, 4, 1), Track(4, 6, 8, 3),
                       Track(5, 0, 8)])
    colours = family_colours(lineage)
    assert colours[1] == label_colour(1)
    assert colours[5] == label_colour(5)
    assert [colours[2], colours[3]] == daughter_colours(colours[1], 2)
    assert colours[4] == colours[3]  # 4 continues 3 after a gap


def test_lineage_plot_png_and_svg(tmp_path: Path) -> None:
    _, result = division()
    png = plot_lineage(result.lineage, tmp_path / "tree.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as picture:
        assert picture.format == "PNG"
    svg = plot_lineage(result.lineage, tmp_path / "tree.svg", masks=result.masks)
    groups = {g.get("id", ""): g for g in ET.parse(svg).getroot().iter(f"{SVG}g")}
    assert {i for i in groups if i.startswith(("track-", "link-"))} == {
        "track-1", "track-2", "track-3", "link-1-2", "link-1-3"}
    colours = family_colours(result.lineage)
    for label in (1, 2, 3):
        path = groups[f"track-{label}"].find(f"{SVG}path")
        assert "stroke: #{:02x}{:02x}{:02x}".format(*colours[label]) in path.get("style")
    rows = tree_rows(result.lineage)
    assert rows[1] == (rows[2] + rows[3]) / 2 and rows[2] != rows[3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree.png", "tree.svg"]


def test_lineage_plot_suffix_error(tmp_path: Path) -> None:
    _, result = division()
    with pytest.raises(InputError) as err:
        plot_lineage(result.lineage, tmp_path / "tree.pdf")
    assert str(err.value) == (f"{tmp_path / 'tree.pdf'}: a lineage plot must be written as "
                              ".png or .svg")
    assert list(tmp_path.iterdir()) == []


def last_gif_frame(path: Path, frames: int) -> np.ndarray:
    with Image.open(path) as gif:
        assert gif.n_frames == frames
        gif.seek(frames - 1)
        return np.asarray(gif.convert("RGB")).astype(int)


def test_movie_trails_in_family_colours(tmp_path: Path) -> None:
    images, result = division()
    colours = family_colours(result.lineage)
    trails = last_gif_frame(write_movie(images, result.masks, tmp_path / "trails.gif",
                                        lineage=result.lineage), 6)
    # the last frame shows where the cells were: the mother at frame 1, daughter 2 at frame 3
    for label, t in ((1, 1), (2, 3)):
        assert np.abs(trails[centre(label, t)] - colours[label]).max() <= 8
    plain = last_gif_frame(write_movie(images, result.masks, tmp_path / "plain.gif"), 6)
    for label, t in ((1, 1), (2, 3)):
        red, green, blue = plain[centre(label, t)]
        assert red == green == blue  # no trails without a lineage: background grey


def test_view_writes_movie_and_lineage(tmp_path: Path) -> None:
    images, result = division()
    res = write_result(result, tmp_path / "res")
    image_stack = tmp_path / "images.tif"
    tifffile.imwrite(image_stack, np.stack(images[:5]).astype(np.float32))
    with pytest.raises(InputError, match="5 frames, but the result"):
        view(res, image_stack, movie_path=tmp_path / "m.gif")
    tifffile.imwrite(image_stack, np.stack(images).astype(np.float32))
    with pytest.raises(InputError, match=r"tree\.jpg: a lineage plot must be written as \.png"):
        view(res, image_stack, tmp_path / "m.gif", tmp_path / "tree.jpg")
    assert not (tmp_path / "m.gif").exists()  # nothing drawn before the paths are checked
    calls: list[tuple[int, int]] = []
    written = view(res, image_stack, tmp_path / "m.mp4", tmp_path / "tree.svg", fps=2,
                   progress=lambda done, total: calls.append((done, total)))
    assert written == [tmp_path / "m.mp4", tmp_path / "tree.svg"]
    assert calls[-1] == (6, 6) and len(calls) == 6
    assert all(path.stat().st_size > 0 for path in written)


def external_references(page: str) -> list[str]:
    """Every src/href that loads something outside the page, and any script or stylesheet."""
    refs = re.findall(r'(?:src|href)\s*=\s*["\']?(?!data:|#)([^"\'\s>]+)', page)
    return refs + re.findall(r"<(?:script|link|iframe|object|embed)\b", page, re.IGNORECASE)


def test_report_without_ground_truth(tmp_path: Path) -> None:
    images, result = division()
    res = write_result(result, tmp_path / "res")
    tifffile.imwrite(tmp_path / "images.tif", np.stack(images).astype(np.float32))
    out = write_report(res, tmp_path / "images.tif", tmp_path / "report.html")
    page = out.read_text()
    assert external_references(page) == []
    assert 'src="http' not in page
    for key, value in (("frames", "6"), ("tracks", "3"), ("divisions", "1"),
                       ("cells per frame", "1.5 (min 1, max 2)")):
        assert f'<td>{key}</td><td class="value">{value}</td>' in page
    assert "<h2>Metrics</h2>" not in page
    assert page.count("<svg") == 1 and 'id="track-2"' in page
    thumbnails = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)" alt="frame (\d+)"', page)
    assert [int(t) for _, t in thumbnails] == [0, 1, 2, 3, 4, 5]
    with Image.open(io.BytesIO(base64.b64decode(thumbnails[0][0]))) as thumb:
        assert (thumb.format, thumb.size) == ("JPEG", (SHAPE[1], SHAPE[0]))


def test_report_with_ground_truth(tmp_path: Path, sample: Path) -> None:
    res = write_result(gt_as_result(sample / "01_GT"), tmp_path / "res")
    page = write_report(res, sample / "01", tmp_path / "report.html",
                        gt_dir=sample / "01_GT").read_text()
    assert external_references(page) == []
    for metric in ("SEG", "DET", "TRA", "LNK"):
        assert f'<td>{metric}</td><td class="value">1.0000</td>' in page
    assert '<td>AOGM_FN</td><td class="value">0</td>' in page
    assert page.count("<img ") == 6
