"""Overlay movies and overlays: GIF and MP4 files of the right length and size, written
atomically, every frame captioned with its number (and time); a long GIF draws a warning."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core import InputError, TrackingResult
from celltrail.core.sequence import ArraySequence
from celltrail.io.ctc import write_result
from celltrail.viz import overlay_frame, write_movie, write_overlay
from celltrail.viz.overlay import draw_caption
from tests.conftest import disc


def moving_cell(
    shape: tuple[int, int], frames: int = 5
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames of one bright cell (label 4) moving right on a noisy background."""
    rng = np.random.default_rng(0)
    masks = [disc(shape, (shape[0] / 2, 6 + (3 * t) % (shape[1] - 12)), 4).astype(np.uint16) * 4
             for t in range(frames)]
    images = [rng.normal(100, 5, shape) + 200 * (mask > 0) for mask in masks]
    return images, masks


def test_gif_movie(tmp_path: Path) -> None:
    images, masks = moving_cell((24, 32))
    calls: list[tuple[int, int]] = []
    path = write_movie(images, masks, tmp_path / "movie.gif", fps=4,
                       progress=lambda done, total: calls.append((done, total)))
    assert path == tmp_path / "movie.gif"
    assert [p.name for p in tmp_path.iterdir()] == ["movie.gif"]
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    with Image.open(path) as gif:
        assert (gif.format, gif.n_frames, gif.size) == ("GIF", 5, (32, 24))
        assert (gif.info["loop"], gif.info["duration"]) == (0, 250)


def test_mp4_movie_pads_to_even_size(tmp_path: Path) -> None:
    images, masks = moving_cell((23, 31))
    path = write_movie(images, masks, tmp_path / "movie.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["movie.mp4"]
    assert path.stat().st_size > 0
    assert iio.imread(path, index=None).shape == (5, 24, 32, 3)


@pytest.mark.parametrize("name", ["movie.avi", "movie"])
def test_movie_suffix_error(tmp_path: Path, name: str) -> None:
    images, masks = moving_cell((24, 32))
    with pytest.raises(InputError) as err:
        write_movie(images, masks, tmp_path / name)
    assert str(err.value) == f"{tmp_path / name}: a movie must be written as .gif or .mp4"
    assert list(tmp_path.iterdir()) == []


def gif_frames(path: Path) -> np.ndarray:
    """Every frame of a GIF as RGB, signed (for differences)."""
    frames = []
    with Image.open(path) as gif:
        for t in range(gif.n_frames):
            gif.seek(t)
            frames.append(np.asarray(gif.convert("RGB")))
    return np.stack(frames).astype(int)


def caption_box(size: tuple[int, int], text: str) -> tuple[np.ndarray, np.ndarray]:
    """Where a caption of ``text`` covers a frame of ``size`` (width, height): its box, and
    the bright pixels of its text."""
    reference = np.asarray(draw_caption(Image.new("RGB", size, (128, 128, 128)), text))
    return (reference != 128).any(axis=2), reference.min(axis=2) > 200


def test_movie_frames_carry_their_number_and_time(tmp_path: Path) -> None:
    """Each frame of a GIF shows "frame t, minutes": the frame of the movie made without numbers
    with that caption drawn on it, and nothing else changed."""
    images, masks = moving_cell((48, 96))
    sequence = ArraySequence(np.stack(images), name="cell").with_scale(None, 2.5)
    numbered = gif_frames(write_movie(sequence, masks, tmp_path / "numbered.gif"))
    plain = gif_frames(write_movie(sequence, masks, tmp_path / "plain.gif", numbers=False))
    captions = ["frame 0, 0 min", "frame 1, 2.5 min", "frame 2, 5 min", "frame 3, 7.5 min",
                "frame 4, 10 min"]
    for t, text in enumerate(captions):
        expected = draw_caption(Image.fromarray(plain[t].astype(np.uint8)), text)
        assert np.abs(numbered[t] - np.asarray(expected)).max() <= 8, text
        box, _ = caption_box((96, 48), text)
        assert np.abs(numbered[t] - plain[t])[box].max() > 100  # white text where grey was
        assert np.abs(numbered[t] - plain[t])[~box].max() <= 8
    assert np.abs(numbered[1] - numbered[2])[caption_box((96, 48), captions[1])[0]].max() > 100


def test_mp4_frames_carry_their_number(tmp_path: Path) -> None:
    """Without a frame interval the caption is "frame t"; an MP4 shows it too, in its lossy way:
    white where the text of "frame t" is (dark in the plain movie), the rest hardly changed."""
    images, masks = moving_cell((48, 96))
    numbered = iio.imread(write_movie(images, masks, tmp_path / "n.mp4"), index=None)
    plain = iio.imread(write_movie(images, masks, tmp_path / "p.mp4", numbers=False), index=None)
    assert numbered.shape == plain.shape == (5, 48, 96, 3)
    difference = np.abs(numbered.astype(int) - plain).mean(axis=3)
    for t in range(5):
        box, text = caption_box((96, 48), f"frame {t}")
        assert numbered[t][text].mean() > 200 and plain[t][text].mean() < 50
        assert difference[t][~box].mean() < 5


def test_overlay_tiles_carry_their_frame_numbers(tmp_path: Path) -> None:
    images, masks = moving_cell((48, 96))
    path = write_overlay(images, masks, [0, 4], tmp_path / "overlay.png")
    with Image.open(path) as picture:
        sheet = np.asarray(picture.convert("RGB"))
    assert sheet.shape == (48, 96 * 2 + 4, 3)
    for tile, t in ((sheet[:, :96], 0), (sheet[:, 100:], 4)):
        expected = draw_caption(overlay_frame(images[t], masks[t]), f"frame {t}")
        np.testing.assert_array_equal(tile, np.asarray(expected))


def long_result(tmp_path: Path, frames: int) -> tuple[Path, Path]:
    """A result folder of one cell over ``frames`` small frames, and its images as a stack."""
    images, masks = moving_cell((24, 40), frames)
    res = write_result(TrackingResult.from_masks(masks, {}), tmp_path / f"res{frames}")
    stack = tmp_path / f"images{frames}.tif"
    tifffile.imwrite(stack, np.stack(images).astype(np.float32))
    return res, stack


def test_view_warns_of_a_long_gif(tmp_path: Path) -> None:
    """Over 100 frames a GIF draws one warning line with its size; an MP4 or a shorter GIF
    none."""
    runner = CliRunner()
    res, stack = long_result(tmp_path, 101)
    gif = tmp_path / "long.gif"
    result = runner.invoke(app, ["view", str(res), "--images", str(stack), "--movie", str(gif)])
    assert result.exit_code == 0, result.output
    size = f"{gif.stat().st_size / 1e6:.1f}"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning")]
    assert warnings == [f"warning: {gif}: a GIF of 101 frames is large ({size} MB); .mp4 is "
                        "about 2 times smaller"]
    assert gif_frames(gif).shape[0] == 101
    result = runner.invoke(app, ["view", str(res), "--images", str(stack), "--movie",
                                 str(tmp_path / "long.mp4")])
    assert result.exit_code == 0 and "warning" not in result.stderr
    res, stack = long_result(tmp_path, 100)
    result = runner.invoke(app, ["view", str(res), "--images", str(stack), "--movie",
                                 str(tmp_path / "short.gif")])
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_track_warns_of_a_long_gif(tmp_path: Path) -> None:
    _, stack = long_result(tmp_path, 101)
    gif = tmp_path / "track.gif"
    result = CliRunner().invoke(app, ["track", str(stack), "--out", str(tmp_path / "out"),
                                      "--movie", str(gif)])
    assert result.exit_code == 0, result.output
    assert (f"warning: {gif}: a GIF of 101 frames is large ({gif.stat().st_size / 1e6:.1f} MB); "
            ".mp4 is about 2 times smaller") in result.stderr.splitlines()
