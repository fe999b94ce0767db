"""Overlay movies: GIF and MP4 files of the right length and size, written atomically."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from celltrail.core import InputError
from celltrail.viz import write_movie
from tests.conftest import disc


def moving_cell(shape: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Five frames of one bright cell (label 4) moving right on a noisy background."""
    rng = np.random.default_rng(0)
    masks = [disc(shape, (shape[0] / 2, 6 + 3 * t), 4).astype(np.uint16) * 4 for t in range(5)]
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
