"""Simulated training sequences that every trainable model can mix in (seeded, so always the
same data): every modality, cell sizes around the models' working scales."""

from __future__ import annotations

from pathlib import Path

from celltrail.simulate import SimParams, simulate

#: Simulated training sequences (modality, cell diameter): every modality, sizes around the
#: canonical one.
SIMULATED = (("fluo-nuclei", 20.0), ("fluo-nuclei", 36.0), ("dic", 28.0), ("dic", 44.0),
             ("phase", 24.0), ("phase", 40.0))


def simulated_sequences(folder: str | Path, frames: int = 20) -> list[Path]:
    """Write (once; seeded, so always the same) and return the simulated training sequences
    of ``frames`` frames each."""
    out = []
    for i, (modality, diameter) in enumerate(SIMULATED):
        root = Path(folder) / f"{modality}-{diameter:g}-{frames}f"
        if not (root / "01_GT").is_dir():
            params = SimParams(frames=frames, size=256, cells=int(256**2 / (3.5 * diameter**2)),
                               modality=modality, cell_diameter=diameter, displacement=0.15,
                               division_rate=0.02)
            simulate(root, params, seed=100 + i)
        out.append(root / "01")
    return out
