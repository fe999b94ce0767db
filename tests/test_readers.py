"""Inputs beyond CTC TIFF folders: OME-TIFF and OME-Zarr through bioio (one channel of several,
pixel size and frame interval from the metadata), PNG label folders, dask arrays; tracks tables
in µm and minutes; masks stored as uint16 whenever their labels fit."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import dask.array as da
import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile
from bioio.writers import OmeTiffWriter, OMEZarrWriter
from bioio_base.types import PhysicalPixelSizes
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core import InputError, MaskStore, open_sequence
from celltrail.core.errors import OptionError
from celltrail.core.sequence import ArraySequence
from celltrail.io.ctc import read_result, read_tracking_gt
from celltrail.metrics import evaluate
from celltrail.simulate import SimParams, simulate

runner = CliRunner()
PIXEL_UM, INTERVAL_MIN = 0.65, 5.0


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def ome_tiff(path: Path, data: np.ndarray, names: list[str], size_unit: str = "µm",
             size: float = PIXEL_UM) -> Path:
    """``data`` (T, C, Y, X) as an OME-TIFF by bioio's writer, with pixel size and interval."""
    ome = OmeTiffWriter.build_ome([data.shape], [data.dtype], ["TCYX"], [names], ["cells"],
                                  [PhysicalPixelSizes(None, size, size)])
    pixels = ome.images[0].pixels
    pixels.physical_size_x_unit = pixels.physical_size_y_unit = size_unit
    pixels.time_increment, pixels.time_increment_unit = INTERVAL_MIN * 60, "s"
    OmeTiffWriter.save(data, path, dim_order="TCYX", ome_xml=ome)
    return path


def ome_zarr(path: Path, data: np.ndarray) -> Path:
    """``data`` (T, C, Y, X) as an OME-Zarr by bioio's writer, scaled in µm and minutes."""
    writer = OMEZarrWriter(path, level_shapes=data.shape, dtype=data.dtype,
                           axes_names=list("tcyx"),
                           axes_types=["time", "channel", "space", "space"],
                           axes_units=["minute", None, "micrometer", "micrometer"],
                           physical_pixel_size=[INTERVAL_MIN, 1.0, PIXEL_UM, PIXEL_UM],
                           chunk_shape=(1, 1, *data.shape[2:]))
    writer.write_full_volume(data)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A simulated sequence (01, 01_GT) and the same frames as channel 1 of a two-channel
    OME-TIFF and OME-Zarr (channel 0: other cells, of another seed)."""
    root = tmp_path_factory.mktemp("readers")
    params = SimParams(frames=6, size=96, cells=5, cell_diameter=16)
    cells = open_sequence(simulate(root / "a", params, seed=0))
    other = open_sequence(simulate(root / "b", params, seed=1))
    data = np.stack([np.stack([o, c]) for o, c in zip(other, cells, strict=True)])
    return {"folder": root / "a" / "01", "gt": root / "a" / "01_GT",
            "ome.tif": ome_tiff(root / "cells.ome.tif", data, ["other", "cells"]),
            "ome.zarr": ome_zarr(root / "cells.ome.zarr", data)}


def result_files(res: Path) -> tuple[list[np.ndarray], str, pd.DataFrame]:
    masks = [tifffile.imread(p) for p in sorted(res.glob("mask*.tif"))]
    return masks, (res / "res_track.txt").read_text(), pd.read_csv(res / "tracks.csv")


@pytest.mark.parametrize("kind", ["ome.tif", "ome.zarr"])
def test_ome_channel_tracks_as_the_tiff_folder_in_um(inputs: dict[str, Path], tmp_path: Path,
                                                     kind: str) -> None:
    """Channel 1 of the OME file gives the masks and tracks of the TIFF folder of the same
    frames, and its table adds µm and minutes from the metadata."""
    for name, source in (("folder", inputs["folder"]), ("ome", inputs[kind])):
        channel = ("--channel", 1) if name == "ome" else ()
        result = run("track", source, "--out", tmp_path / name, *channel)
        assert result.exit_code == 0, result.output
    masks, lineage, table = result_files(tmp_path / "folder")
    ome_masks, ome_lineage, ome_table = result_files(tmp_path / "ome")
    assert len(masks) == 6 and ome_lineage == lineage and len(table) > 20
    for mask, ome_mask in zip(masks, ome_masks, strict=True):
        np.testing.assert_array_equal(ome_mask, mask)
    assert "x_um" not in table.columns
    pd.testing.assert_frame_equal(ome_table[table.columns], table)
    np.testing.assert_allclose(ome_table["x_um"], table["x"] * PIXEL_UM, atol=1e-3)
    np.testing.assert_allclose(ome_table["t_min"], table["frame"] * INTERVAL_MIN)
    step = ome_table[(ome_table["id"] == ome_table["id"].iloc[0])].iloc[:2]
    distance = np.hypot(*(step[["x_um", "y_um"]].diff().iloc[1]))
    assert ome_table.loc[step.index[1], "speed_um_per_min"] == pytest.approx(
        distance / INTERVAL_MIN, abs=1e-3)
    assert np.isnan(ome_table.loc[step.index[0], "speed_um_per_min"])


def test_multichannel_input_without_channel_is_one_line(inputs: dict[str, Path],
                                                        tmp_path: Path) -> None:
    path = inputs["ome.tif"]
    result = run("track", path, "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: holds 2 channels (0 other, 1 cells): choose one with --channel N"]
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match=r"no channel 'gfp': it holds 2 channels \(0 other, "
                                         r"1 cells\)$"):
        open_sequence(path, channel="gfp")
    with pytest.raises(InputError, match=r"holds 2 channels \(0, 1\): choose one"):
        open_sequence(inputs["ome.zarr"])
    with pytest.raises(InputError, match=r"found shape \(6, 2, 8, 8\): for a \(T, C, Y, X\) "
                                         r"array, choose a channel$"):
        open_sequence(np.zeros((6, 2, 8, 8), np.uint8))


def test_channel_by_name_and_scale_given_or_converted(inputs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """A channel by its name; a pixel size in nm comes out in µm; given values win."""
    cells = open_sequence(inputs["ome.tif"], channel="cells")
    assert (cells.pixel_size, cells.interval) == (PIXEL_UM, INTERVAL_MIN)
    np.testing.assert_array_equal(cells[2], open_sequence(inputs["folder"])[2])
    data = np.zeros((2, 1, 8, 8), np.uint8)
    in_nm = open_sequence(ome_tiff(tmp_path / "nm.ome.tif", data, ["c"], "nm", 650.0))
    assert in_nm.pixel_size == pytest.approx(PIXEL_UM)
    given = open_sequence(inputs["ome.zarr"], channel=0, pixel_size=0.2, interval=1.5)
    assert (given.pixel_size, given.interval) == (0.2, 1.5)
    assert given.every(2).interval == 3.0
    assert open_sequence(inputs["folder"]).pixel_size is None
    with pytest.raises(OptionError, match=r"^pixel_size: must be a positive finite number"):
        open_sequence(inputs["folder"], pixel_size=0)
    with pytest.raises(InputError, match=r"no channel 1: it holds 1 channel \(0\)$"):
        open_sequence(inputs["folder"], channel=1)


def test_png_label_folder_links_into_a_valid_result(inputs: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """Cellpose-style ``*_cp_masks.png`` (uint16, labels renumbered in every frame) linked by
    ``celltrail link`` recover the simulated tracks, with µm and minutes as given."""
    truth = read_tracking_gt(inputs["gt"])
    pngs = tmp_path / "cellpose"
    pngs.mkdir()
    rng = np.random.default_rng(0)
    for t, mask in enumerate(truth.masks):
        lut = np.concatenate([[0], rng.permutation(int(mask.max())) + 1]).astype(np.uint16)
        iio.imwrite(pngs / f"img_t{t}_cp_masks.png", lut[mask])
    result = run("link", pngs, "--out", tmp_path / "res", "--pixel-size", 0.5,
                 "--interval", 2)
    assert result.exit_code == 0, result.output
    assert read_result(tmp_path / "res").errors() == []
    assert evaluate(inputs["gt"], tmp_path / "res")["TRA"] > 0.95
    table = pd.read_csv(tmp_path / "res" / "tracks.csv")
    np.testing.assert_allclose(table["x_um"], table["x"] * 0.5, atol=1e-3)
    assert {"t_min", "speed_um_per_min"} <= set(table.columns)


def test_segment_then_link_keeps_the_scale(inputs: dict[str, Path], tmp_path: Path) -> None:
    """Masks celltrail writes carry the pixel size and interval, so a later link has them."""
    seg = run("segment", inputs["ome.tif"], "--out", tmp_path / "seg", "--method",
              "classical", "--channel", "cells")
    assert seg.exit_code == 0, seg.output
    assert tifffile.imread(tmp_path / "seg" / "mask000.tif").dtype == np.uint16
    labels = open_sequence(tmp_path / "seg")
    assert (labels.pixel_size, labels.interval) == (PIXEL_UM, INTERVAL_MIN)
    link = run("link", tmp_path / "seg", "--out", tmp_path / "res")
    assert link.exit_code == 0, link.output
    table = pd.read_csv(tmp_path / "res" / "tracks.csv")
    np.testing.assert_allclose(table["t_min"], table["frame"] * INTERVAL_MIN)


def test_dask_array_opens_and_reads_frame_by_frame() -> None:
    frames = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    seq = open_sequence(da.from_array(frames, chunks=(1, 6, 7)), interval=2.0)
    assert (len(seq), seq.shape, seq.dtype, seq.interval) == (5, (6, 7), np.uint16, 2.0)
    np.testing.assert_array_equal(np.stack(list(seq)), frames)
    with pytest.raises(InputError, match=r"^cannot read images from a list: expected a file or "
                                         r"folder path, or a \(T, Y, X\) numpy or dask array$"):
        open_sequence([frames[0]])  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["ome.tif", "ome.zarr"])
def test_ome_reading_is_lazy(tmp_path: Path, kind: str) -> None:
    """Memory stays a few frames (measured 4 for OME-TIFF, 6 for OME-Zarr) for 40: frames
    are read on access."""
    data = np.random.default_rng(0).integers(0, 4000, (40, 2, 256, 256), dtype=np.uint16)
    path = (ome_tiff if kind == "ome.tif" else lambda p, d, *_: ome_zarr(p, d))(
        tmp_path / f"long.{kind}", data, ["a", "b"])
    seq = open_sequence(path, channel=1)
    np.testing.assert_array_equal(seq[0], data[0, 1])  # the readers' first-use set-up
    tracemalloc.start()
    for t, frame in enumerate(seq):
        assert frame[5, 5] == data[t, 1, 5, 5]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 * data[0, 0].nbytes


@pytest.mark.parametrize(("top", "dtype"), [(51, np.uint16), (65535, np.uint16),
                                            (65536, np.uint32)])
def test_mask_store_keeps_uint16_while_labels_fit(tmp_path: Path, top: int, dtype) -> None:
    mask = np.zeros((4, 4), np.uint32)
    mask[1, 1] = top
    store = MaskStore(tmp_path)
    store.append(mask)
    assert tifffile.imread(store.path(0)).dtype == dtype
    assert tifffile.imread(store.path(0))[1, 1] == top


@pytest.mark.parametrize("method", ["boxtrack", "cap", "embedtrack"])
def test_learned_trackers_write_uint16_masks(inputs: dict[str, Path], tmp_path: Path,
                                             tiny_embedtrack: Path, method: str) -> None:
    """The trackers that paint uint32 canvases store uint16 files (at most 65535 labels)."""
    from celltrail.io.boxes import boxes_from_gt
    from celltrail.methods.boxtrack import BoxTracker, ClassicalPromptSegmenter
    from celltrail.methods.cap import CAPTracker
    from celltrail.methods.embedtrack import EmbedTracker

    images = ArraySequence(np.stack(list(open_sequence(inputs["folder"])))[:3])
    tracker = {"boxtrack": lambda: BoxTracker(segmenter=ClassicalPromptSegmenter()),
               "cap": lambda: CAPTracker(preset="fluo-nuclei", diameter=16),
               "embedtrack": lambda: EmbedTracker(model=str(tiny_embedtrack))}[method]()
    prompts = boxes_from_gt(inputs["gt"])[0] if method == "boxtrack" else None
    result = tracker.track(images, prompts, MaskStore(tmp_path))
    assert len(result.lineage) > 0
    assert {tifffile.imread(p).dtype for p in tmp_path.glob("mask*.tif")} == {np.dtype(np.uint16)}


def test_positions_are_chosen_by_index_or_name(tmp_path: Path) -> None:
    """A file of several positions (scenes) names them when none is chosen."""
    first, second = (np.full((3, 1, 8, 8), value, np.uint8) for value in (10, 20))
    path = tmp_path / "plate.ome.tif"
    OmeTiffWriter.save([first, second], path, dim_order=["TCYX", "TCYX"])
    with pytest.raises(InputError, match=r"plate\.ome\.tif: holds 2 positions \(0 Image:0, "
                                         r"1 Image:1\): choose one with --position N$"):
        open_sequence(path)
    assert open_sequence(path, position=1)[2][0, 0] == 20
    assert open_sequence(path, position="Image:0")[2][0, 0] == 10


def test_a_stack_without_time_axis_is_read_along_its_one_axis(tmp_path: Path) -> None:
    """tifffile writes a (5, Y, X) stack named .ome.tif with a channel axis; read as frames."""
    frames = np.arange(5 * 64, dtype=np.uint8).reshape(5, 8, 8)
    tifffile.imwrite(tmp_path / "stack.ome.tif", frames)
    with pytest.warns(UserWarning, match=r"stack\.ome\.tif: no time axis; its 5 channels are "
                                         r"read as frames$"):
        seq = open_sequence(tmp_path / "stack.ome.tif")
    np.testing.assert_array_equal(np.stack(list(seq)), frames)


def test_formats_without_their_plugin_say_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import celltrail.io.readers

    monkeypatch.setattr(celltrail.io.readers, "find_spec", lambda name: None)
    (tmp_path / "scan.czi").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match=r"scan\.czi: reading \.czi files needs bioio-czi: pip "
                                         r"install 'celltrail\[formats\]'$"):
        open_sequence(tmp_path / "scan.czi")
    with pytest.raises(InputError, match=r"notes\.txt: expected a folder of TIFF, PNG or JPEG "
                                         r"frames, a TIFF stack, an OME-TIFF, an OME-Zarr"):
        open_sequence(tmp_path / "notes.txt")
