"""Commands on results: ``evaluate``, ``validate``, ``convert``, ``coco``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from celltrail.cli.common import (
    Overwrite,
    console,
    metrics_table,
)
from celltrail.cli.errors import reports_errors
from celltrail.core.errors import InputError
from celltrail.core.sequence import open_sequence
from celltrail.io.ctc import companions, read_result
from celltrail.io.outputs import check_output, write_json
from celltrail.metrics.ctc import evaluate


@reports_errors
def evaluate_command(
    gt: Annotated[Path, typer.Option(help="CTC ground-truth folder (NN_GT).")],
    res: Annotated[Path, typer.Option(help="CTC result folder (maskTTT.tif + res_track.txt).")],
    json_out: Annotated[Path, typer.Option("--json", help="Where to save all metrics as JSON.")]
    = Path("metrics.json"),
    overwrite: Overwrite = False,
) -> None:
    """Score a result with the CTC and MOT metrics (py-ctcmetrics)."""
    check_output(json_out, (gt, res), suffixes=(".json",), overwrite=overwrite)
    with console.status("evaluating with py-ctcmetrics"):
        scores = evaluate(gt, res)
    Console().print(metrics_table(scores, f"{res} vs {gt}"))
    write_json(scores, json_out)
    console.print(f"saved {json_out}")

@reports_errors
def convert(
    source: Annotated[Path, typer.Argument(help="A CTC result folder (maskTTT.tif + "
                                                "res_track.txt), a CTC ground-truth folder "
                                                "(NN_GT: its TRA markers) or a GEFF store (the "
                                                "graph group or a folder holding one).")],
    out: Annotated[Path, typer.Argument(help="A GEFF graph group if the name ends in .zarr or "
                                             ".geff (graph + segmentation), a TrackMate file if "
                                             "it ends in .xml, else a CTC result folder.")],
    masks: Annotated[Path | None, typer.Option(help="GEFF input only: label images (folder or "
                                                    "TIFF stack) for a store without its own "
                                                    "segmentation; nodes without a segmentation "
                                                    "id take the cell under them.")] = None,
    seg_prop: Annotated[str | None, typer.Option(help="GEFF input only: the node property "
                                                      "holding each node's label in the "
                                                      "segmentation (default: the one the "
                                                      "store names, else seg_id).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Convert a tracking result between the CTC layout and GEFF (napari, motile, traccuracy),
    or export it for Fiji's TrackMate."""
    from celltrail.io.ctc import check_valid, read_tracking_gt, write_result
    from celltrail.io.geff import read_geff, write_geff
    from celltrail.io.trackmate import write_trackmate

    if not source.exists():
        raise InputError(source, "not found")
    xml = out.suffix.lower() == ".xml"
    check_output(out, (source, masks), folder=not xml, overwrite=overwrite)
    if (source / "TRA").is_dir() or (source / "res_track.txt").is_file():
        if masks is not None:
            raise InputError(masks, "--masks applies to a GEFF input only")
        if seg_prop is not None:
            raise InputError(source, "--seg-prop applies to a GEFF input only")
        result = (check_valid(read_tracking_gt(source), source, "ground truth")
                  if (source / "TRA").is_dir()
                  else check_valid(read_result(source), source, "result"))
    else:
        result = read_geff(source, None if masks is None else open_sequence(masks), seg_prop)
    if xml:
        write_trackmate(result, out)
    elif out.suffix.lower() in (".zarr", ".geff"):
        write_geff(result, out, overwrite=overwrite)
    else:
        write_result(result, out, overwrite=overwrite)
    console.print(f"wrote {len(result.lineage)} tracks over {len(result.masks)} frames to {out}")


@reports_errors
def coco(
    seq: Annotated[Path, typer.Argument(help="CTC image folder NN (tTTT.tif) with NN_GT/SEG "
                                             "and/or NN_ST/SEG beside it.")],
    out: Annotated[Path, typer.Option(help="COCO JSON file to write (image file names "
                                           "relative to SEQ).")],
    truth: Annotated[str, typer.Option(help="Masks of gt (NN_GT/SEG) or st (NN_ST/SEG), or "
                                            "boxes: their boxes only (GT if present, else "
                                            "ST).")] = "gt",
    frames: Annotated[str | None, typer.Option(help="Only frames A:B, a half-open range as in "
                                                    "Python (0:58 is frames 0 to 57; A: and :B "
                                                    "leave an end open).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write the segmented frames of a CTC sequence as a COCO instance dataset (LIVECell
    layout), e.g. to train or score a cell detector."""
    from celltrail.io.coco import ctc_to_coco, load_coco

    selected = None
    if frames is not None:
        start, colon, stop = frames.partition(":")
        if not colon or not all(part.isdigit() for part in (start, stop) if part):
            raise InputError(None, f"--frames must be A:B, a half-open range of frame numbers, "
                                   f"found {frames!r}")
        selected = range(int(start or 0), int(stop) if stop else sys.maxsize)
    check_output(out, companions(seq), suffixes=(".json",), overwrite=overwrite)
    data = load_coco(ctc_to_coco(seq, out, truth, selected))
    console.print(f"wrote {len(data['images'])} images, {len(data['annotations'])} "
                  f"annotations to {out}")

@reports_errors
def validate(
    res: Annotated[Path, typer.Argument(help="CTC result folder (maskTTT.tif + res_track.txt).")],
) -> None:
    """Check a result folder against the CTC invariants."""
    errors = read_result(res).errors()
    for error in errors:
        print(f"{res}: {error}")
    if errors:
        raise typer.Exit(1)
    print(f"{res}: valid")
