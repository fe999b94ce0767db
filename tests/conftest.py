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


@pytest.fixture(scope="session")
def tiny_embedtrack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny EmbedTrack checkpoint that needs no training and tracks in a moment: zero offsets,
    a bandwidth of radius 8 and seediness everywhere tile each frame with the same blobs of
    about that radius, which keep their identities from frame to frame."""
    import torch

    from celltrail.models.checkpoint import save_checkpoint
    from celltrail.models.embedtrack import EmbedTrackConfig, EmbedTrackNet

    net = EmbedTrackNet(EmbedTrackConfig(channels=(4, 8, 16), dropout=0.0)).eval()
    net.init_output(cell_radius=8.0)
    with torch.no_grad():
        net.seediness[-1].weight.zero_()
        net.seediness[-1].bias.fill_(5.0)
    path = tmp_path_factory.mktemp("embedtrack") / "tiny.pt"
    save_checkpoint(net, path, {"kind": "embedtrack", "trained_on": ["x"], "min_size": 12,
                                "diameter": 18.0, "step": 1, "history": [], "seconds": 1.0,
                                "params": {}})
    return path
