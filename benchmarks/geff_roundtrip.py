"""GEFF export and import on the shared CTC sequences: exact round trip, and the same TRA.

Part 1: each sequence's ground truth (``01_GT``, TRA markers and lineage) is written as GEFF and
read back; the table gives the graph's size, whether lineage table and masks come back identical,
and the seconds for writing plus reading.

Part 2: the classical pipeline's result on each sequence is written both as a CTC folder and as
GEFF (and read back from GEFF, which must give it again). The CTC folder is scored with
py-ctcmetrics, the GEFF with traccuracy (the GEFF loader with the segmentation it carries),
against the same GT; traccuracy also scores the CTC folder, which isolates what the format
changes (nothing, if the GEFF is faithful) from what the two evaluators count differently: a
detection covering k reference cells is k-1 split errors for py-ctcmetrics and one for
traccuracy (``NS``: py-ctcmetrics/traccuracy), which moves TRA where segments merge cells
(DIC-C2DH-HeLa); and a reference link from a parent to its only child is an inter-track link for
py-ctcmetrics but not for traccuracy, which marks only division edges so (``EC``: edges of the
wrong kind, py-ctcmetrics/traccuracy; the Fluo-N2DH-SIM+ GT has three such parents).

    python benchmarks/geff_roundtrip.py [--data ../shared/data/ctc]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import zarr
from traccuracy import run_metrics
from traccuracy.loaders import load_ctc_data, load_geff_data
from traccuracy.matchers import CTCMatcher
from traccuracy.metrics import CTCMetrics

from celltrail.core.result import TrackingResult
from celltrail.core.sequence import open_sequence
from celltrail.io.ctc import read_tracking_gt, write_result
from celltrail.io.geff import SEG_ID, SEGMENTATION, read_geff, write_geff
from celltrail.methods.classical import ClassicalTracker
from celltrail.metrics import evaluate

#: Shared sequences: the classical preset of their modality and the diameter it is given.
SEQUENCES = {
    "DIC-C2DH-HeLa": ("dic", 111.6),
    "Fluo-N2DH-SIM+": ("fluo-nuclei", None),
    "Fluo-N2DH-GOWT1": ("fluo-nuclei", None),
}


def identical(a: TrackingResult, b: TrackingResult) -> bool:
    """Same lineage table and the same masks (values and type), frame by frame."""
    return (
        np.array_equal(a.lineage.to_array(), b.lineage.to_array())
        and len(a.masks) == len(b.masks)
        and all(
            np.array_equal(x, y) and x.dtype == y.dtype
            for x, y in zip(map(np.asarray, a.masks), map(np.asarray, b.masks), strict=True)
        )
    )


def graph_size(store: Path) -> tuple[int, int]:
    """Nodes and edges of a GEFF store written by ``write_geff``."""
    group = zarr.open_group(store, mode="r")
    return group["nodes/ids"].shape[0], group["edges/ids"].shape[0]


def traccuracy_tra(gt_dir: Path, pred) -> dict:
    """traccuracy's CTC metrics of a loaded prediction against the GT (loaded fresh each time:
    traccuracy annotates the graphs it scores)."""
    gt = load_ctc_data(str(gt_dir / "TRA"), str(gt_dir / "TRA" / "man_track.txt"),
                       run_checks=False)
    return run_metrics(gt, pred, matcher=CTCMatcher(), metrics=[CTCMetrics()])[0][0]["results"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ctc"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="traccuracy")  # its progress notes on regionprops
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print("Ground truth written as GEFF and read back")
        print(f"{'sequence':18} {'nodes':>6} {'edges':>6} {'identical':>9} {'seconds':>8}")
        for name in SEQUENCES:
            gt_dir = args.data / name / "01_GT"
            truth = read_tracking_gt(gt_dir)
            truth = TrackingResult(list(truth.masks), truth.lineage)  # time GEFF, not TIFF
            start = time.perf_counter()
            back = read_geff(write_geff(truth, tmp / f"{name}-gt.zarr"))
            seconds = time.perf_counter() - start
            nodes, edges = graph_size(tmp / f"{name}-gt.zarr")
            same = "yes" if identical(truth, back) else "no"
            print(f"{name:18} {nodes:6d} {edges:6d} {same:>9} {seconds:8.2f}")

        print("\nClassical result: py-ctcmetrics on the CTC folder, traccuracy on the GEFF")
        print(f"{'sequence':18} {'round trip':>10} {'TRA ctc':>8} {'TRA geff':>8} {'diff':>9} "
              f"{'trac ctc=geff':>13} {'NS':>9} {'EC':>7}")
        for name, (preset, diameter) in SEQUENCES.items():
            gt_dir = args.data / name / "01_GT"
            result = ClassicalTracker(preset=preset, diameter=diameter).track(
                open_sequence(args.data / name / "01"))
            result = TrackingResult(list(result.masks), result.lineage)
            res_dir = write_result(result, tmp / f"{name}-res")
            store = write_geff(result, tmp / f"{name}-res.zarr")
            same = "yes" if identical(result, read_geff(store)) else "no"
            ctc = evaluate(gt_dir, res_dir, threads=1)
            on_ctc = traccuracy_tra(gt_dir, load_ctc_data(
                str(res_dir), str(res_dir / "res_track.txt"), run_checks=False))
            on_geff = traccuracy_tra(gt_dir, load_geff_data(  # it reads only label_prop
                str(store), seg_path=str(store / SEGMENTATION), seg_property=SEG_ID))
            print(f"{name:18} {same:>10} {ctc['TRA']:8.4f} {on_geff['TRA']:8.4f} "
                  f"{on_geff['TRA'] - ctc['TRA']:+9.1e} {'yes' if on_geff == on_ctc else 'no':>13} "
                  f"{ctc['AOGM_NS']:>5d}/{on_geff['ns_nodes']:<3d} "
                  f"{ctc['AOGM_EC']:>3d}/{on_geff['ws_edges']}")

if __name__ == "__main__":
    main()
