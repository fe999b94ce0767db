"""``celltrail demo``: the bundled sample tracked, scored and drawn."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from celltrail.cli.common import (
    Overwrite,
    console,
    metrics_table,
    run_tracker,
    write_result_movie,
)
from celltrail.cli.errors import reports_errors
from celltrail.core.sequence import open_sequence
from celltrail.io.ctc import read_result
from celltrail.io.outputs import check_output, write_json
from celltrail.methods.base import Tracker
from celltrail.metrics.ctc import evaluate

#: The demo's runs, by the suffix of their folder and metrics file names.
DEMO_RUNS = ("", "_boxtrack", "_embedtrack", "_cap")


@reports_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path(
        "celltrail-demo"),
    overwrite: Overwrite = False,
) -> None:
    """Track the bundled real sample four ways, score each and draw them (under a minute).

    The classical pipeline from the raw images; BoxTrack (learned backend) from the boxes of the
    first frame's cells; EmbedTrack with the model shipped for Fluo-N2DH-GOWT1 (trained on
    sequence 01, which these frames are cut from); CAP with a model not trained on GOWT1, its
    cells found by the detector.
    """
    from celltrail.api import load_tracker
    from celltrail.viz import write_overlay

    sample = Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop"))
    images = open_sequence(sample / "01")
    names = [f"01_RES{n}" for n in DEMO_RUNS] + [f"metrics{n}.json" for n in DEMO_RUNS]
    for name in [*names, "overlay.png", "boxtrack.gif"]:
        check_output(out / name, (sample,), folder=name.startswith("01_RES"),
                     overwrite=overwrite)

    def run_and_score(tracker: Tracker, name: str, title: str, prompts: object = None) -> Path:
        result_dir = out / ("01_RES" + name)
        run_tracker(images, result_dir, lambda store, on_frame: tracker.track(
            images, prompts, store, on_frame), overwrite=overwrite)
        with console.status("evaluating with py-ctcmetrics"):
            scores = evaluate(sample / "01_GT", result_dir)
        Console().print(metrics_table(scores, title))
        write_json(scores, out / f"metrics{name}.json")
        return result_dir

    result_dir = run_and_score(load_tracker("classical", preset="fluo-nuclei"), "",
                               "classical on the bundled sample (GOWT1 01 crop)")
    last = len(images) - 1
    write_overlay(images, read_result(result_dir).masks, [0, last // 2, last],
                  out / "overlay.png")
    boxtrack = load_tracker("boxtrack", backend="learned", preset="fluo-nuclei",
                            adapt=False)  # the shipped model as it is, in seconds
    boxtrack_dir = run_and_score(boxtrack, "_boxtrack",
                                 "BoxTrack (learned) from first-frame boxes", sample / "01_GT")
    write_result_movie(images, boxtrack_dir, out / "boxtrack.gif")
    run_and_score(load_tracker("embedtrack", model="Fluo-N2DH-GOWT1"), "_embedtrack",
                  "EmbedTrack (model trained on GOWT1 01)")
    run_and_score(load_tracker("cap", preset="fluo-nuclei"), "_cap",
                  "CAP (model not trained on GOWT1; queries from the detector)")
    console.print(f"results in {out}/01_RES*, metrics in {out}/metrics*.json, pictures "
                  f"{out / 'overlay.png'} and {out / 'boxtrack.gif'}")
