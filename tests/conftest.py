"""Shared fixtures: the bundled real sample and small synthetic label sequences."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def sample() -> Path:
    """The bundled crop of Fluo-N2DH-GOWT1 01 (CTC layout: 01/ and 01_GT/)."""
    return Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop"))


def disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean disc mask."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
