"""``celltrail simulate``: synthetic sequences with exact ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from celltrail.cli.common import (
    Overwrite,
    console,
    progress_bar,
)
from celltrail.cli.errors import reports_errors
from celltrail.core.errors import InputError
from celltrail.io.ctc import companions
from celltrail.io.outputs import check_output


@reports_errors
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for NN/ images and NN_GT/ ground truth.")],
    frames: Annotated[int, typer.Option(help="Number of frames.")] = 50,
    size: Annotated[int, typer.Option(help="Frame side in pixels.")] = 256,
    cells: Annotated[int, typer.Option(help="Cells in view at the start (sets density).")] = 30,
    modality: Annotated[str, typer.Option(help="fluo-nuclei, phase, phase-bright (cells "
                                                 "brighter than the background, dark halo), dic, "
                                                 "fluo-cells (cell bodies with protrusions) or "
                                                 "brightfield.")]
    = "fluo-nuclei",
    dtype: Annotated[str, typer.Option(help="uint8 or uint16.")] = "uint8",
    diameter: Annotated[float, typer.Option(help="Mean cell diameter in pixels.")] = 24.0,
    displacement: Annotated[float, typer.Option(help="Mean motion per frame, in diameters.")]
    = 0.1,
    division_rate: Annotated[float, typer.Option(help="Mitoses per cell per frame.")] = 0.01,
    apoptosis_rate: Annotated[float, typer.Option(help="Deaths per cell per frame.")] = 0.002,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")]
    = 0,
    sequence: Annotated[str, typer.Option(help="Sequence folder name.")] = "01",
    frame_step: Annotated[int, typer.Option(help="Keep every N-th time step (with --source: "
                                                 "every N-th frame of that sequence).")] = 1,
    source: Annotated[Path | None, typer.Option(help="Subsample this existing CTC image folder "
                                                     "(its NN_GT beside it) instead of "
                                                     "simulating.")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write a synthetic sequence with exact ground truth, or subsample an existing one."""
    from celltrail.simulate import SimParams, subsample
    from celltrail.simulate import simulate as run_simulation

    name = sequence if source is None else source.name
    for folder in (out / name, out / f"{name}_GT"):
        check_output(folder, () if source is None else companions(source), folder=True,
                     overwrite=overwrite)
    try:
        if source is not None:
            gt = source.with_name(f"{source.name}_GT")
            written = subsample(source, gt, out, frame_step, overwrite=overwrite)
        else:
            params = SimParams(frames=frames, size=size, cells=cells, modality=modality,
                               dtype=dtype, cell_diameter=diameter, displacement=displacement,
                               division_rate=division_rate, apoptosis_rate=apoptosis_rate)
            params.validate()
            with progress_bar(frames, "simulating") as on_frame:
                written = run_simulation(out, params, seed=seed, sequence=sequence,
                                         frame_step=frame_step, overwrite=overwrite,
                                         progress=lambda done, _: on_frame(done - 1))
    except ValueError as exc:
        raise InputError(None, str(exc)) from exc
    console.print(f"wrote {written} and {written}_GT")
