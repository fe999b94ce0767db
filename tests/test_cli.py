"""The command line: real runs on the bundled sample, and one clear line for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from celltrail import __version__
from celltrail.cli import app
from celltrail.io.ctc import read_result, read_tracking_gt
from celltrail.io.mot import read_mot
from celltrail.metrics import evaluate

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"celltrail {__version__}"


def test_demo_tracks_the_sample_four_ways(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run("demo", "--out", out)
    assert result.exit_code == 0, result.output
    for name, least in (("", 0.95), ("_boxtrack", 0.95), ("_embedtrack", 0.9), ("_cap", 0.78)):
        assert read_result(out / f"01_RES{name}").errors() == []
        scores = json.loads((out / f"metrics{name}.json").read_text())
        assert scores["TRA"] > least, (name, scores["TRA"])
    assert (out / "overlay.png").stat().st_size > 0 and (out / "boxtrack.gif").stat().st_size > 0


def test_track_then_evaluate_sample(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "01_RES"
    result = run("track", sample / "01", "--out", out)
    assert result.exit_code == 0, result.output
    assert read_result(out).errors() == []
    assert {"res_track.txt", "tracks.csv", "tracks.parquet", "mask039.tif"} <= {
        p.name for p in out.iterdir()}
    result = run("evaluate", "--gt", sample / "01_GT", "--res", out, "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "m.json").read_text())
    assert scores["TRA"] > 0.9 and scores["DET"] > 0.9 and scores["SEG"] > 0.6
    assert "TRA" in result.stdout and "AOGM_FN" in result.stdout


def test_link_user_segmentation(sample: Path, tmp_path: Path) -> None:
    """Linking the GT markers, relabelled at random per frame, recovers the GT tracks."""
    rng = np.random.default_rng(0)
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(40):
        markers = tifffile.imread(sample / "01_GT" / "TRA" / f"man_track{t:03d}.tif")
        labels = np.unique(markers[markers > 0])
        lut = np.zeros(markers.max() + 1, np.uint16)
        lut[labels] = rng.permutation(len(labels)) + 1
        tifffile.imwrite(masks / f"seg{t:03d}.tif", lut[markers])
    out = tmp_path / "linked"
    assert run("link", masks, "--out", out, "--diameter", 60).exit_code == 0
    result = run("evaluate", "--gt", sample / "01_GT", "--res", out, "--json", tmp_path / "m.json")
    scores = json.loads((tmp_path / "m.json").read_text())
    assert scores["TRA"] > 0.99 and scores["LNK"] > 0.97, result.stdout


def test_evaluate_ground_truth_against_itself(sample: Path, tmp_path: Path) -> None:
    result = run("evaluate", "--gt", sample / "01_GT", "--res", sample / "01_GT",
                 "--json", tmp_path / "m.json")
    scores = json.loads((tmp_path / "m.json").read_text())
    assert result.exit_code == 0
    assert scores["TRA"] == scores["DET"] == scores["SEG"] == 1.0


def one_error_line(result, expected: str) -> None:
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {expected}"]


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda d: d / "nope", "no such file or folder"),
        (lambda d: (d / "empty").mkdir() or d / "empty",
         "folder holds no TIFF images (.tif/.tiff), nor PNG or JPEG (.png/.jpg/.jpeg)"),
    ],
)
def test_track_bad_input_folder(tmp_path: Path, setup, problem: str) -> None:
    path = setup(tmp_path)
    one_error_line(run("track", path, "--out", tmp_path / "out"), f"{path}: {problem}")
    assert not (tmp_path / "out").exists()


def test_corrupt_frame_leaves_no_output_and_input_intact(sample: Path, tmp_path: Path) -> None:
    images = tmp_path / "01"
    shutil.copytree(sample / "01", images)
    (images / "t005.tif").write_bytes(b"II*\x00garbage")
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    result = run("track", images, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {images / 't005.tif'}: not a readable TIFF file")
    assert len(result.stderr.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["01"]
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before


def test_track_refuses_output_inside_input(sample: Path, tmp_path: Path) -> None:
    images = tmp_path / "01"
    shutil.copytree(sample / "01", images)
    one_error_line(run("track", images, "--out", images / "res"),
                   f"{images / 'res'}: lies inside the input {images.resolve()}; inputs are "
                   f"never modified")


def test_track_unknown_method(sample: Path, tmp_path: Path) -> None:
    """A method name is a choice of the registry's keys: a usage error names them."""
    result = run("track", sample / "01", "--out", tmp_path / "o", "--method", "magic")
    assert result.exit_code == 2
    assert "'magic' is not one of" in result.stderr
    assert "'classical', 'boxtrack', 'embedtrack', 'cap', 'cellboxify'" in result.stderr


def test_link_refuses_float_masks(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 8, 8), np.float32),
                     photometric="minisblack")
    one_error_line(run("link", tmp_path / "stack.tif", "--out", tmp_path / "o"),
                   f"{tmp_path / 'stack.tif'}: label images must hold integers, found "
                                             f"float32")


def test_evaluate_malformed_res_track(sample: Path, tmp_path: Path) -> None:
    res = tmp_path / "res"
    res.mkdir()
    tifffile.imwrite(res / "mask000.tif", np.zeros((4, 4), np.uint16))
    (res / "res_track.txt").write_text("1 0\n")
    one_error_line(run("evaluate", "--gt", sample / "01_GT", "--res", res),
                   f"{res / 'res_track.txt'}: line 1: expected 4 integers 'L B E P', found '1 0'")


def test_validate_command(sample: Path, tmp_path: Path) -> None:
    res = tmp_path / "res"
    res.mkdir()
    tifffile.imwrite(res / "mask000.tif", np.ones((4, 4), np.uint16))
    tifffile.imwrite(res / "mask001.tif", np.zeros((4, 4), np.uint16))
    (res / "res_track.txt").write_text("1 0 1 0\n")
    result = run("validate", res)
    assert result.exit_code == 1
    assert result.stdout.strip() == (f"{res}: label 1 is missing from 1 of its frames 0-1 "
                                     "(an undeclared gap)")


def test_simulate_then_subsample(tmp_path: Path) -> None:
    result = run("simulate", "--out", tmp_path / "sim", "--frames", 8, "--size", 96, "--cells", 6,
                 "--seed", 3)
    assert result.exit_code == 0, result.output
    assert read_tracking_gt(tmp_path / "sim" / "01_GT").errors() == []
    result = run("simulate", "--out", tmp_path / "half", "--source", tmp_path / "sim" / "01",
                 "--frame-step", 2)
    assert result.exit_code == 0, result.output
    half = read_tracking_gt(tmp_path / "half" / "01_GT")
    assert len(half.masks) == 4 and half.errors() == []
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "half" / "01" / "t001.tif"),
        tifffile.imread(tmp_path / "sim" / "01" / "t002.tif"))


def test_simulate_bad_parameter(tmp_path: Path) -> None:
    one_error_line(run("simulate", "--out", tmp_path / "s", "--modality", "xray"),
                   "modality must be one of fluo-nuclei, phase, phase-bright, dic, fluo-cells, "
                   "brightfield, not 'xray'")
    assert not (tmp_path / "s").exists()


def test_boxtrack_from_gt_boxes_on_sample(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "01_RES"
    result = run("track", sample / "01", "--out", out, "--method", "boxtrack",
                 "--backend", "classical", "--boxes-from-gt", sample / "01_GT")
    assert result.exit_code == 0, result.output
    res = read_result(out)
    assert res.errors() == [] and len(res.masks) == 40
    mot = read_mot(out / "tracking_results.txt")
    tracks = pd.read_csv(out / "tracks.csv")
    assert len(mot) == len(tracks)
    prompted = {5, 6, 16, 24, 25, 26, 27, 30, 31, 32}
    assert set(mot["id"]) == set(res.lineage) >= prompted
    assert all(res.lineage[label].parent in res.lineage for label in set(res.lineage) - prompted)
    scores = evaluate(sample / "01_GT", out, threads=1)
    assert scores["MOTA"] > 0.85 and scores["IDF1"] > 0.85  # measured 0.891 and 0.884


def test_boxtrack_mot_style_boxes_frame_step_and_small_box(sample: Path, tmp_path: Path) -> None:
    """1-based bbox.txt lines as in the reference code; a sliver of a box is skipped with a
    one-line warning; every 4th frame is tracked."""
    boxes = tmp_path / "bbox.txt"
    boxes.write_text("1,5,182,33,45,45,1,-1,-1\n1,6,286,54,45,45,1,-1,-1\n"
                     "1,9,10,10,3,30,1,-1,-1\n")
    out = tmp_path / "res"
    result = run("track", sample / "01", "--out", out, "--method", "boxtrack", "--backend",
                 "classical", "--boxes", boxes, "--box-frame-base", 1, "--frame-step", 4)
    assert result.exit_code == 0, result.output
    assert "warning: skipped 1 boxes with a side below 5 px (ids [9])" in \
        result.stderr.splitlines()
    res = read_result(out)
    assert res.errors() == [] and len(res.masks) == 10
    mot = read_mot(out / "tracking_results.txt")
    assert set(mot["id"]) == {5, 6} and set(mot["frame"]) == set(range(10))


def test_boxtrack_warns_of_one_based_boxes(sample: Path, tmp_path: Path) -> None:
    """A bbox.txt counted from 1 given without --box-frame-base 1 is tracked from frame 1,
    with a warning saying how to read it."""
    boxes = tmp_path / "bbox.txt"
    boxes.write_text("1,5,182,33,45,45,1,-1,-1\n1,6,286,54,45,45,1,-1,-1\n")
    result = run("track", sample / "01", "--out", tmp_path / "res", "--method", "boxtrack",
                 "--backend", "classical", "--boxes", boxes)
    assert result.exit_code == 0, result.output
    assert (f"warning: {boxes}: the box prompts start on frame 1, none on frame 0: if the file "
            f"counts frames from 1 (as MOT's bbox.txt does), set box_frame_base=1 "
            f"(--box-frame-base 1)"
            in result.stderr.splitlines())


def test_frame_step_and_movie(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = run("track", sample / "01", "--out", out, "--frame-step", 2,
                 "--movie", tmp_path / "movie.gif")
    assert result.exit_code == 0, result.output
    assert len(read_result(out).masks) == 20
    assert not (out / "tracking_results.txt").exists()
    with Image.open(tmp_path / "movie.gif") as gif:
        assert (gif.format, gif.n_frames, gif.size) == ("GIF", 20, (384, 384))


def test_boxtrack_box_outside_image(sample: Path, tmp_path: Path) -> None:
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("frame,id,x,y,w,h\n0,1,10,10,40,40\n0,2,370,10,30,30\n")
    one_error_line(run("track", sample / "01", "--out", tmp_path / "o", "--method", "boxtrack",
                       "--boxes", boxes),
                   f"{boxes}: line 3: box of id 2 in frame 0 (x=370 y=10 w=30 h=30) lies "
                   "outside the 384x384 image")
    assert not (tmp_path / "o").exists()


def test_boxtrack_box_on_skipped_frame(sample: Path, tmp_path: Path) -> None:
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("0,1,10,10,40,40\n1,2,100,10,30,30\n")
    one_error_line(run("track", sample / "01", "--out", tmp_path / "o", "--method", "boxtrack",
                       "--boxes", boxes, "--frame-step", 2),
                   f"{boxes}: box prompts on frame 1, which a frame step of 2 skips")


@pytest.mark.parametrize("prompts, expected", [
    ([], "--method: boxtrack needs its prompts: give --boxes or --boxes-from-gt"),
    (["--boxes", "b.csv", "--boxes-from-gt", "01_GT"],
     "--boxes: give either --boxes or --boxes-from-gt, not both")])
def test_boxtrack_needs_one_source_of_boxes(sample: Path, tmp_path: Path, prompts,
                                            expected) -> None:
    one_error_line(run("track", sample / "01", "--out", tmp_path / "o", "--method", "boxtrack",
                       *prompts), expected)


def test_boxes_need_boxtrack(sample: Path, tmp_path: Path) -> None:
    one_error_line(run("track", sample / "01", "--out", tmp_path / "o",
                       "--boxes-from-gt", sample / "01_GT"),
                   "--boxes-from-gt: applies to --method boxtrack only")
    one_error_line(run("track", sample / "01", "--out", tmp_path / "o", "--model", "x.pt"),
                   "--model: applies to method boxtrack, embedtrack, cap or cellboxify only, "
                   "not classical")


def test_boxtrack_gt_larger_than_images(sample: Path, tmp_path: Path) -> None:
    stack = np.stack([tifffile.imread(sample / "01" / f"t00{t}.tif")[:200, :200]
                      for t in range(3)])
    tifffile.imwrite(tmp_path / "crop.tif", stack, photometric="minisblack")
    gt = sample / "01_GT"
    one_error_line(run("track", tmp_path / "crop.tif", "--out", tmp_path / "o", "--method",
                       "boxtrack", "--boxes-from-gt", gt),
                   f"{gt}: ground-truth cells lie outside the 200x200 images")


def test_convert_ground_truth_to_geff_and_back(sample: Path, tmp_path: Path) -> None:
    store = tmp_path / "gt.zarr"
    assert run("convert", sample / "01_GT", store).exit_code == 0
    result = run("convert", store, tmp_path / "RES")
    assert result.exit_code == 0, result.output
    back, truth = read_result(tmp_path / "RES"), read_tracking_gt(sample / "01_GT")
    assert np.array_equal(back.lineage.to_array(), truth.lineage.to_array())
    assert all(np.array_equal(a, b) for a, b in zip(back.masks, truth.masks, strict=True))


def test_view_needs_something_to_draw(sample: Path) -> None:
    result = run("view", sample / "01_GT", "--images", sample / "01")
    assert result.exit_code == 1
    assert result.stderr.strip() == \
        "error: nothing to draw: give --movie FILE, --lineage FILE or both"


def scrambled_markers(gt: Path, out: Path, frames: int) -> Path:
    """The GT markers of ``frames`` frames, relabelled at random per frame, as label files."""
    rng = np.random.default_rng(0)
    out.mkdir()
    for t in range(frames):
        markers = tifffile.imread(gt / "TRA" / f"man_track{t:03d}.tif")
        labels = np.unique(markers[markers > 0])
        lut = np.zeros(markers.max() + 1, np.uint16)
        lut[labels] = rng.permutation(len(labels)) + 1
        tifffile.imwrite(out / f"seg{t:03d}.tif", lut[markers])
    return out


def test_link_with_laptrack_gives_a_valid_result(sample: Path, tmp_path: Path) -> None:
    masks = scrambled_markers(sample / "01_GT", tmp_path / "masks", 40)
    out = tmp_path / "linked"
    result = run("link", masks, "--out", out, "--diameter", 60, "--linker", "laptrack")
    assert result.exit_code == 0, result.output
    assert read_result(out).errors() == []
    run("evaluate", "--gt", sample / "01_GT", "--res", out, "--json", tmp_path / "m.json")
    scores = json.loads((tmp_path / "m.json").read_text())
    assert scores["TRA"] > 0.99 and scores["LNK"] > 0.97


def test_track_with_laptrack_linker(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "01_RES"
    result = run("track", sample / "01", "--out", out, "--linker", "laptrack")
    assert result.exit_code == 0, result.output
    assert read_result(out).errors() == []
    run("evaluate", "--gt", sample / "01_GT", "--res", out, "--json", tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["TRA"] > 0.9


def test_unknown_linker_and_linker_of_a_method_that_does_not_link(sample: Path,
                                                                  tmp_path: Path) -> None:
    one_error_line(run("link", sample / "01_GT" / "TRA", "--out", tmp_path / "o",
                       "--linker", "magic"),
                   "unknown linker 'magic'; choose one of celltrail, laptrack")
    one_error_line(run("track", sample / "01", "--out", tmp_path / "o", "--method", "cap",
                       "--linker", "laptrack"),
                   "--linker: applies to method classical or cellboxify only, not cap")
    assert not (tmp_path / "o").exists()
