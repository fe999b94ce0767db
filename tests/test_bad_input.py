"""The bad-input corpus: every kind of bad or dangerous input a user brought, built here, must
end in one line naming the file and the problem, a non-zero exit, no output left behind and
the inputs' bytes unchanged. Grow it with every bug found."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.simulate import SimParams, simulate

runner = CliRunner()


@dataclass
class Case:
    """A command line, the one error line it must print, and the output it must not leave."""

    args: list[object]
    message: str
    output: Path | None = None


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-frame simulated CTC sequence (01, 01_GT) and a result of it (01_RES: the markers)."""
    root = tmp_path_factory.mktemp("pristine")
    simulate(root, SimParams(frames=4, size=64, cells=3, cell_diameter=14), seed=0)
    res = root / "01_RES"
    res.mkdir()
    for t in range(4):
        shutil.copy(root / "01_GT" / "TRA" / f"man_track{t:03d}.tif", res / f"mask{t:03d}.tif")
    shutil.copy(root / "01_GT" / "TRA" / "man_track.txt", res / "res_track.txt")
    return root


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of :func:`pristine` for one case to spoil."""
    shutil.copytree(pristine, tmp_path / "data")
    return tmp_path / "data"


def digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` by its hash (symbolic links by their target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path)] = str(path.readlink())
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def frames(folder: Path, arrays: list[np.ndarray], prefix: str = "t") -> Path:
    """Write ``arrays`` as ``<prefix>TTT.tif`` frames in a new folder."""
    folder.mkdir(parents=True)
    for t, array in enumerate(arrays):
        tifffile.imwrite(folder / f"{prefix}{t:03d}.tif", array)
    return folder


def spoiled_model(data: Path, spoil: Callable[[dict], None]) -> Path:
    """A copy of a shipped CAP model with ``spoil`` applied to its checkpoint."""
    from celltrail.models.zoo import model_names, model_path

    state = dict(torch.load(model_path("cap", model_names("cap")[0]), weights_only=True))
    state["config"] = dict(state["config"])
    state["state_dict"] = dict(state["state_dict"])
    spoil(state)
    torch.save(state, data.parent / "model.pt")
    return data.parent / "model.pt"


def wrong_shape(state: dict) -> None:
    first = next(iter(state["state_dict"]))
    state["state_dict"][first] = torch.zeros(3, 3)


def data_loss(data: Path) -> dict[str, Case]:
    """Outputs that would have replaced an input or a user's file."""
    gt, img, res, tmp = data / "01_GT", data / "01", data / "01_RES", data.parent
    track_file = gt / "TRA" / "man_track.txt"
    (tmp / "mydata").mkdir()
    (tmp / "mydata" / "thesis.docx").write_text("four years")
    (tmp / "notes.txt").write_text("my notes")
    (tmp / "holiday.gif").write_bytes(b"GIF89a")
    return {
        "evaluate --json onto the GT track file": Case(
            ["evaluate", "--gt", gt, "--res", res, "--json", track_file],
            f"{track_file}: expected a file name ending in .json"),
        "evaluate --json inside the GT": Case(
            ["evaluate", "--gt", gt, "--res", res, "--json", gt / "m.json"],
            f"{gt / 'm.json'}: lies inside the input {gt.resolve()}; inputs are never modified",
            gt / "m.json"),
        "coco --out onto the GT track file": Case(
            ["coco", img, "--out", track_file],
            f"{track_file}: expected a file name ending in .json"),
        "coco --out inside the GT": Case(
            ["coco", img, "--out", gt / "c.json"],
            f"{gt / 'c.json'}: lies inside the input {gt.resolve()}; inputs are never modified",
            gt / "c.json"),
        "train cap --out onto the GT track file": Case(
            ["train", "cap", "--data", img, "--out", track_file, "--no-simulated"],
            f"{track_file}: expected a file name ending in .pt"),
        "train cap --out inside the GT": Case(
            ["train", "cap", "--data", img, "--out", gt / "m.pt", "--no-simulated"],
            f"{gt / 'm.pt'}: lies inside the input {gt.resolve()}; inputs are never modified",
            gt / "m.pt"),
        "report --out onto an input frame": Case(
            ["report", res, "--images", img, "--out", img / "t000.tif"],
            f"{img / 't000.tif'}: expected a file name ending in .html or .htm"),
        "track --out a folder holding a user's file": Case(
            ["track", img, "--out", tmp / "mydata"],
            f"{tmp / 'mydata'}: folder exists and holds 'thesis.docx', which celltrail did not "
            f"write; choose another output or pass --overwrite"),
        "track --out an existing file": Case(
            ["track", img, "--out", tmp / "notes.txt"],
            f"{tmp / 'notes.txt'}: exists and is not a folder; celltrail never replaces a file "
            f"by a folder (choose another output)"),
        "convert onto an existing file": Case(
            ["convert", res, tmp / "notes.txt"],
            f"{tmp / 'notes.txt'}: exists and is not a folder; celltrail never replaces a file "
            f"by a folder (choose another output)"),
        "view --movie over a user's file": Case(
            ["view", res, "--images", img, "--movie", tmp / "holiday.gif"],
            f"{tmp / 'holiday.gif'}: exists and was not written by celltrail; choose another "
            f"name or pass --overwrite"),
    }


def unwritable(data: Path) -> dict[str, Case]:
    """Destinations that cannot be written: refused before the work starts."""
    gt, img, res, tmp = data / "01_GT", data / "01", data / "01_RES", data.parent
    (tmp / "afile").write_text("x")
    (tmp / "folder.json").mkdir()
    return {
        "track --out under /proc": Case(
            ["track", img, "--out", "/proc/celltrail-x"],
            "/proc/celltrail-x: cannot be written in /proc (No such file or directory)"),
        "track --out under a file": Case(
            ["track", img, "--out", tmp / "afile" / "res"],
            f"{tmp / 'afile' / 'res'}: cannot be written: {tmp / 'afile'} is a file, not a "
            f"folder"),
        "evaluate --json naming a folder": Case(
            ["evaluate", "--gt", gt, "--res", res, "--json", tmp / "folder.json"],
            f"{tmp / 'folder.json'}: is a folder; give a file name"),
    }


def bad_pixels(data: Path) -> dict[str, Case]:
    """Frames and label images whose values cannot be used."""
    tmp = data.parent
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    nan, inf = ramp.copy(), ramp.copy()
    nan[3, 4], inf[5, 6] = np.nan, -np.inf
    labels = [np.zeros((64, 64), np.uint16) for _ in range(4)]
    for t, mask in enumerate(labels):
        mask[10:20, 10 + t:20 + t] = 1
    flt = frames(tmp / "floatlast", [*labels[:3], labels[3].astype(np.float32)], "mask")
    boolean = frames(tmp / "bool", [m > 0 for m in labels], "mask")
    negative = frames(tmp / "negative", [m.astype(np.int16) - 1 for m in labels], "mask")
    nanimg = frames(tmp / "nan", [ramp, nan, ramp])
    infimg = frames(tmp / "inf", [ramp, ramp, inf])
    flat = frames(tmp / "flat", [ramp, ramp])
    return {
        "track on a frame with NaN": Case(
            ["track", nanimg, "--out", tmp / "o", "--preset", "fluo-nuclei",
             "--diameter", "9"],
            f"{nanimg / 't001.tif'}: 1 pixels are NaN or infinite", tmp / "o"),
        "segment on a frame with -inf": Case(
            ["segment", infimg, "--out", tmp / "o", "--method", "classical",
             "--diameter", "9"],
            f"{infimg / 't002.tif'}: 1 pixels are NaN or infinite", tmp / "o"),
        "track on a frame with nothing to measure": Case(
            ["track", flat, "--out", tmp / "o"],
            f"{flat / 't000.tif'}: cannot tell the cell size: the first frame shows no "
            "cell-like structure to measure; the network 'general' finds no size at which the "
            "cells it segments match the size it assumes; give the cell diameter in pixels "
            "(--diameter)",
            tmp / "o"),
        "link on masks whose 4th frame is float": Case(
            ["link", flt, "--out", tmp / "o"],
            f"{flt / 'mask003.tif'}: pixel type float32 differs from uint16 of "
            f"{flt / 'mask000.tif'}", tmp / "o"),
        "link on bool masks": Case(
            ["link", boolean, "--out", tmp / "o"],
            f"{boolean}: label images must hold integers, found bool", tmp / "o"),
        "link on negative labels": Case(
            ["link", negative, "--out", tmp / "o"],
            f"{negative / 'mask000.tif'}: negative label -1", tmp / "o"),
    }


def bad_options(data: Path) -> dict[str, Case]:
    """Option values out of range."""
    img, tmp = data / "01", data.parent
    cases = {f"link --diameter {v}": Case(["link", data / "01_GT" / "TRA", "--out", tmp / "o",
                                            "--diameter", v],
                                           f"--diameter: must be a positive finite number, "
                                           f"not {float(v):g}", tmp / "o")
             for v in ("0", "nan", "-5")}
    cases["track --diameter inf"] = Case(["track", img, "--out", tmp / "o", "--diameter", "inf"],
                                         "--diameter: must be a positive finite number, not inf",
                                         tmp / "o")
    (tmp / "s.xlsx").write_text("mine")
    manifest = tmp / "m.csv"
    manifest.write_text(f"input,out\n{img},{tmp / 'b'}\n")
    cases["batch --summary .xlsx, refused before the batch"] = Case(
        ["batch", manifest, "--summary", tmp / "s.xlsx"],
        f"{tmp / 's.xlsx'}: expected a file name ending in .csv or .parquet", tmp / "b")
    return cases


def bad_boxes(data: Path) -> dict[str, Case]:
    """Box prompts with values a tracker cannot use."""
    img, tmp = data / "01", data.parent
    texts = {"nan.csv": "frame,id,x,y,w,h\n0,1,nan,10,20,20\n",
             "big.csv": "frame,id,x,y,w,h\n0,5000000000,10,10,20,20\n",
             "zero.csv": "frame,id,x,y,w,h\n0,0,10,10,20,20\n",
             "minus.csv": "frame,id,x,y,w,h\n0,-3,10,10,20,20\n",
             "late.csv": "frame,id,x,y,w,h\n50,1,10,10,20,20\n",
             "tiny.csv": "frame,id,x,y,w,h\n0,1,10,10,2,2\n",
             "nan.json": json.dumps({"images": [{"id": 1}], "annotations": [
                 {"id": 1, "image_id": 1, "bbox": [float("nan"), 1, 5, 5]}]}),
             "unknown.json": json.dumps({"images": [{"id": 1}], "annotations": [
                 {"id": 1, "image_id": 7, "bbox": [1, 1, 5, 5]}]}),
             "lists.json": json.dumps({"images": [[1]], "annotations": []})}
    for name, text in texts.items():
        (tmp / name).write_text(text)
    expected = {
        "nan.csv": "line 2: values must be finite numbers",
        "big.csv": "line 2: id must be an integer from 1 to 2147483647, found 5e+09 (ids "
                   "become track labels)",
        "zero.csv": "line 2: id must be an integer from 1 to 2147483647, found 0 (ids become "
                    "track labels)",
        "minus.csv": "line 2: id must be an integer from 1 to 2147483647, found -3 (ids "
                     "become track labels)",
        "late.csv": f"box prompts on frame 50, but the sequence {img} has 4 frames (frames "
                    f"count from 0; box_frame_base=1 if the file counts from 1)",
        "tiny.csv": "no box prompts left to track: all 1 boxes have a side below 5 px",
        "nan.json": "values must be finite numbers",
        "unknown.json": "annotation 1: image_id 7 is not the id of an image in 'images'",
        "lists.json": "malformed COCO JSON: every image needs an 'id'",
    }
    return {f"boxtrack --boxes {name}": Case(
        ["track", img, "--out", tmp / "o", "--method", "boxtrack", "--boxes", tmp / name,
         "--backend", "classical"], f"{tmp / name}: {problem}", tmp / "o")
        for name, problem in expected.items()}


def bad_models(data: Path) -> dict[str, Case]:
    """Model files with the right keys but contents that do not fit."""
    img, tmp = data / "01", data.parent
    cases = {}
    for name, spoil, problem in (
            ("config", lambda s: s["config"].pop("channels"),
             "its config does not describe a CAP network (KeyError: 'channels')"),
            ("shapes", wrong_shape,
             "its weights do not fit the CAP network (size mismatch for encoder.0.weight: "
             "copying a param with shape torch.Size([3, 3]) from checkpoint, the shape in "
             "current model is torch.Size([32, 1, 5, 5]).)"),
            ("kind", lambda s: s.update(kind="embedtrack"),
             "not a celltrail CAP checkpoint (it holds a model of kind 'embedtrack')")):
        model = spoiled_model(data, spoil).rename(tmp / f"{name}.pt")
        cases[f"cap with a model of bad {name}"] = Case(
            ["track", img, "--out", tmp / "o", "--method", "cap", "--model", model],
            f"{model}: {problem}", tmp / "o")
    return cases


def bad_results(data: Path) -> dict[str, Case]:
    """Results and ground truths that do not fit together or break the CTC rules."""
    gt, img, res, tmp = data / "01_GT", data / "01", data / "01_RES", data.parent
    short = tmp / "short"
    shutil.copytree(res, short)
    (short / "mask003.tif").unlink()
    short_images = tmp / "short_images"
    shutil.copytree(img, short_images)
    (short_images / "t003.tif").unlink()
    small = tmp / "small"
    shutil.copytree(res, small)
    for path in small.glob("mask*.tif"):
        tifffile.imwrite(path, tifffile.imread(path)[:32])
    unlisted = tmp / "unlisted"
    shutil.copytree(res, unlisted)
    mask = tifffile.imread(unlisted / "mask001.tif")
    mask[:2, :2] = 99
    tifffile.imwrite(unlisted / "mask001.tif", mask)
    unlisted_gt = tmp / "unlisted_gt"
    shutil.copytree(gt, unlisted_gt)
    marker = tifffile.imread(unlisted_gt / "TRA" / "man_track002.tif")
    marker[-2:, -2:] = 77
    tifffile.imwrite(unlisted_gt / "TRA" / "man_track002.tif", marker)
    negative = tmp / "negative"
    shutil.copytree(res, negative)
    for path in negative.glob("mask*.tif"):
        tifffile.imwrite(path, tifffile.imread(path).astype(np.int16) - 1)
    gt_missing = tmp / "gt_missing"
    shutil.copytree(gt, gt_missing)
    (gt_missing / "TRA" / "man_track002.tif").unlink()
    floats = tmp / "floats"
    shutil.copytree(res, floats)
    for path in floats.glob("mask*.tif"):
        tifffile.imwrite(path, tifffile.imread(path).astype(np.float32))
    huge = tmp / "huge"
    shutil.copytree(res, huge)
    rows = (res / "res_track.txt").read_text().splitlines()
    with (huge / "res_track.txt").open("a") as f:
        f.write("99999999999999999999999 0 3 0\n")
    corrupt = tmp / "corrupt_seg"
    shutil.copytree(gt, corrupt)
    (corrupt / "SEG" / "man_seg000.tif").write_bytes(b"II*\x00garbage")
    truth_of = "not a valid result: frame 1: label 99 is not in the lineage table"
    return {
        "evaluate a result with a frame fewer": Case(
            ["evaluate", "--gt", gt, "--res", short, "--json", tmp / "m.json"],
            f"{short}: 3 result masks, but the ground truth has 4 frames", tmp / "m.json"),
        "evaluate masks of another shape": Case(
            ["evaluate", "--gt", gt, "--res", small, "--json", tmp / "m.json"],
            f"{small}: masks of shape (32, 64), but the ground truth's are (64, 64)",
            tmp / "m.json"),
        "evaluate a label missing from res_track.txt": Case(
            ["evaluate", "--gt", gt, "--res", unlisted, "--json", tmp / "m.json"],
            f"{unlisted}: {truth_of}", tmp / "m.json"),
        "report a label missing from res_track.txt": Case(
            ["report", unlisted, "--images", img, "--out", tmp / "r.html"],
            f"{unlisted}: {truth_of}", tmp / "r.html"),
        "view a label missing from res_track.txt": Case(
            ["view", unlisted, "--images", img, "--lineage", tmp / "l.png"],
            f"{unlisted}: {truth_of}", tmp / "l.png"),
        "evaluate a GT marker missing from man_track.txt": Case(
            ["evaluate", "--gt", unlisted_gt, "--res", res, "--json", tmp / "m.json"],
            f"{unlisted_gt / 'TRA'}: not a valid ground truth: frame 2: label 77 is not in the "
            f"lineage table", tmp / "m.json"),
        "report against a GT with a frame more": Case(
            ["report", short, "--images", short_images, "--gt", gt, "--out", tmp / "r.html"],
            f"{short}: not a valid result: label 1 ends at frame 3 beyond the last frame 2 (and "
            f"1 more)", tmp / "r.html"),
        "validate negative labels": Case(
            ["validate", negative], f"{negative / 'mask000.tif'}: negative label -1"),
        "evaluate a GT missing a marker file": Case(
            ["evaluate", "--gt", gt_missing, "--res", res, "--json", tmp / "m.json"],
            f"{gt_missing / 'TRA'}: TRA marker frame 2 ('man_track002.tif') is missing",
            tmp / "m.json"),
        "evaluate a GT with a corrupt SEG file": Case(
            ["evaluate", "--gt", corrupt, "--res", res, "--json", tmp / "m.json"],
            f"{corrupt / 'SEG' / 'man_seg000.tif'}: not a readable TIFF file (it holds no "
            f"image)", tmp / "m.json"),
        "validate float masks": Case(
            ["validate", floats],
            f"{floats}: label images must hold integers, found float32"),
        "validate a label beyond int64": Case(
            ["validate", huge],
            f"{huge / 'res_track.txt'}: line {len(rows) + 1}: a number beyond the 64-bit "
            f"integer range"),
    }


def bad_frame_files(data: Path) -> dict[str, Case]:
    """Folders of frames whose numbering or links are off."""
    img, tmp = data / "01", data.parent
    gaps = tmp / "gaps"
    gaps.mkdir()
    for t in (0, 2, 4):
        shutil.copy(img / "t000.tif", gaps / f"t{t:03d}.tif")
    twice = tmp / "twice"
    shutil.copytree(img, twice)
    shutil.copy(img / "t001.tif", twice / "t1.tif")
    mixed = tmp / "mixed"
    shutil.copytree(data / "01_RES", mixed)
    tifffile.imwrite(mixed / "mask002.tif", np.zeros((64, 64), np.float32))
    dangling = tmp / "dangling"
    shutil.copytree(img, dangling)
    (dangling / "t004.tif").symlink_to(tmp / "nowhere.tif")
    looping = tmp / "looping"
    shutil.copytree(img, looping)
    (looping / "t004.tif").symlink_to(looping / "t004.tif")
    link = "broken symbolic link (its target is missing or loops)"
    return {
        "frames with gaps": Case(
            ["track", gaps, "--out", tmp / "o"],
            f"{gaps / 't002.tif'}: frame numbers jump from 0 (t000.tif) to 2: frame 1 is "
            f"missing (--allow-gaps tracks them as consecutive frames)", tmp / "o"),
        "t001.tif and t1.tif": Case(
            ["track", twice, "--out", tmp / "o"],
            f"{twice / 't1.tif'}: holds frame 1, as does t001.tif", tmp / "o"),
        "a mask of another type in a result": Case(
            ["validate", mixed],
            f"{mixed / 'mask002.tif'}: pixel type float32 differs from uint16 of "
            f"{mixed / 'mask000.tif'}"),
        "a dangling link": Case(["track", dangling, "--out", tmp / "o"],
                                f"{dangling / 't004.tif'}: {link}", tmp / "o"),
        "a looping link": Case(["track", looping, "--out", tmp / "o"],
                               f"{looping / 't004.tif'}: {link}", tmp / "o"),
    }


CORPUS = (data_loss, unwritable, bad_pixels, bad_options, bad_boxes, bad_models, bad_results,
          bad_frame_files)


def failure(case: Case, root: Path) -> str | None:
    """What ``case`` does wrong, or None: it must end in one line ``error: <file>: <problem>``
    (after any progress shown), exit with status 1, leave no output or temporary file, and
    change no file under ``root``."""
    before = digest(root)
    result = runner.invoke(app, [str(a) for a in case.args])
    lines = result.stderr.strip().splitlines()
    leftovers = [p for p in root.rglob(".*") if p.name.endswith((".tmp", ".old"))]
    problems = [
        f"exit status {result.exit_code}" * (result.exit_code != 1),
        f"printed {lines}" * (lines[-1:] != [f"error: {case.message}"]
                              or any(line.startswith(("error", "Traceback"))
                                     for line in lines[:-1])),
        f"left {case.output}" * bool(case.output is not None and case.output.exists()),
        f"left {leftovers}" * bool(leftovers),
        "changed an input" * (digest(root) != before),
    ]
    return "; ".join(p for p in problems if p) or None


@pytest.mark.parametrize("group", CORPUS, ids=lambda group: group.__name__)
def test_bad_input_ends_in_one_line(data: Path, group: Callable[[Path], dict[str, Case]]) -> None:
    """Every case of the group fails cleanly; the assertion lists those that do not."""
    failures = {name: failure(case, data.parent) for name, case in group(data).items()}
    bad = [f"{name}: {why}" for name, why in failures.items() if why]
    assert not bad, "\n".join(bad)
