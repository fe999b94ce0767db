"""BoxTrack benchmarks: zero-shot tracking, ablations, frame steps and cost (docs/benchmarks.md).

Every run starts from the ground-truth boxes of the first frame (``boxes_from_gt``: SEG where
that frame has one, else silver truth, else TRA markers), as the paper's protocol.

- ``zero-shot``: each shared sequence with the learned backend trained *without* it (the shipped
  ``without-<sequence>`` model: the other two sequences plus simulated ones) and with the
  classical backend (the modality's preset). MOTA, IDF1, IDS, MT, ML, TRA, DET, SEG, s/frame.
- ``ablations``: on Fluo-N2DH-SIM+ 01, score-based memory vs FIFO, with and without the Kalman
  prior, with and without division handling.
- ``frame-step``: MOTA at frame steps 1, 2, 4, 8 on Fluo-N2DH-GOWT1 01.
- ``cost``: seconds per frame on simulated 512x512 frames with 10, 100 and 400 cells.
- ``box-only``: the zero-shot runs of the learned backend with the model trained on the same
  data from boxes alone (``.cache/prompt_segmenter/without-<sequence>_box.pt``, from
  ``tools/train_prompt_segmenter.py --supervision box``) against the shipped mask-trained one.
  Not part of ``all``.
- ``adapt``: the leave-one-dataset-out table of adaptation: on each shared sequence (its
  zero-shot model) and on simulated kinds with cells of 15 and 75 px (the default model), the
  learned backend as shipped and adapted to the sequence from its first-frame boxes, the
  classical backend (the modality's preset) and ``auto``: MOTA, IDF1, TRA, SEG, s/frame and
  adaptation seconds. Not part of ``all`` (about 50 minutes).

    python benchmarks/boxtrack.py [--part all|zero-shot|ablations|frame-step|cost|box-only|adapt]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

from common import SEQUENCES

from celltrail.core.result import TrackingResult
from celltrail.core.sequence import open_sequence
from celltrail.io.boxes import boxes_from_gt
from celltrail.methods.boxtrack import BoxTrackConfig, BoxTracker, make_segmenter
from celltrail.methods.boxtrack.options import DEFAULT_MODEL
from celltrail.metrics import evaluate_result
from celltrail.segmentation.scale import look
from celltrail.simulate import SimParams, simulate, subsample

#: Where ``tools/train_prompt_segmenter.py --supervision box`` leaves its models.
BOX_ONLY = Path(".cache/prompt_segmenter")
COLUMNS = ("MOTA", "IDF1", "IDS", "MT", "ML", "TRA", "DET", "SEG")


def track(seq_dir: Path, backend: str, preset: str, model: str | None = None,
          config: BoxTrackConfig | None = None) -> tuple[TrackingResult, float]:
    """Track a CTC sequence from its GT first-frame boxes; the result and seconds per frame."""
    boxes, _ = boxes_from_gt(seq_dir.with_name(f"{seq_dir.name}_GT"))
    images = open_sequence(seq_dir)
    segmenter = make_segmenter(backend, preset, model, adapt=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small boxes skipped: reported by the CLI, not here
        result = BoxTracker(segmenter=segmenter, config=config,
                            divisions=(config or BoxTrackConfig()).divisions).track(images, boxes)
    return result, (time.perf_counter() - start) / len(images)


def run(seq_dir: Path, backend: str, preset: str, model: str | None = None,
        config: BoxTrackConfig | None = None) -> tuple[dict, float]:
    """Track a CTC sequence from its GT first-frame boxes; scores and seconds per frame."""
    result, seconds = track(seq_dir, backend, preset, model, config)
    return evaluate_result(result, seq_dir.with_name(f"{seq_dir.name}_GT"), threads=1), seconds


def row(name: str, scores: dict, seconds: float | None = None) -> str:
    cells = [f"{scores[k]:.3f}" if isinstance(scores[k], float) else str(scores[k])
             for k in COLUMNS]
    extra = f" {seconds:.3f} |" if seconds is not None else ""
    return f"| {name} | " + " | ".join(cells) + f" |{extra}"


def header(first: str, seconds: bool = True) -> str:
    names = [first, *COLUMNS] + (["s/frame"] if seconds else [])
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)


def zero_shot(data: Path) -> None:
    print("\nZero-shot: learned backend trained without the sequence; GT first-frame boxes")
    print(header("sequence / backend"))
    for name, preset in SEQUENCES.items():
        seq = data / name / "01"
        scores, sec = run(seq, "learned", preset, model=f"without-{name}")
        print(row(f"{name} / learned", scores, sec), flush=True)
        scores, sec = run(seq, "classical", preset)
        print(row(f"{name} / classical", scores, sec), flush=True)


def box_only(data: Path) -> None:
    print("\nZero-shot learned backend, trained from masks or from boxes alone")
    print(header("sequence / training"))
    for name, preset in SEQUENCES.items():
        seq = data / name / "01"
        box_model = BOX_ONLY / f"without-{name}_box.pt"
        if not box_model.is_file():
            raise SystemExit(f"{box_model}: missing; train it with "
                             "`python tools/train_prompt_segmenter.py --supervision box`")
        for label, model in (("masks", f"without-{name}"), ("boxes", str(box_model))):
            scores, sec = run(seq, "learned", preset, model=model)
            print(row(f"{name} / {label}", scores, sec), flush=True)


def ablations(data: Path) -> None:
    seq = data / "Fluo-N2DH-SIM+" / "01"
    base = BoxTrackConfig()
    variants = {
        "BoxTrack (score memory, Kalman, divisions)": base,
        "FIFO memory": replace(base, memory_policy="fifo"),
        "no Kalman prior": replace(base, kalman=False),
        "no division handling": replace(base, divisions=False),
    }
    for backend, model in (("learned", "without-Fluo-N2DH-SIM+"), ("classical", None)):
        print(f"\nAblations on Fluo-N2DH-SIM+ 01, {backend} backend")
        print(header("variant"))
        for label, config in variants.items():
            scores, sec = run(seq, backend, "fluo-nuclei", model, config)
            print(row(label, scores, sec), flush=True)


def frame_steps(data: Path) -> None:
    name = "Fluo-N2DH-GOWT1"
    print(f"\nFrame steps on {name} 01 (every k-th frame, GT subsampled alike)")
    print(header("step / backend"))
    with tempfile.TemporaryDirectory() as tmp:
        for step in (1, 2, 4, 8):
            seq = subsample(data / name / "01", data / name / "01_GT", Path(tmp) / str(step), step)
            for backend, model in (("learned", f"without-{name}"), ("classical", None)):
                scores, sec = run(seq, backend, "fluo-nuclei", model)
                print(row(f"{step} / {backend}", scores, sec), flush=True)


def cost() -> None:
    print("\nCost on simulated 512x512 frames (cell diameter 20 px, 10 frames)")
    print("| cells | backend | tracks | s/frame | / s/frame at 10 cells |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        seqs = {}
        for cells in (10, 100, 400):
            params = SimParams(frames=10, size=512, cells=cells, cell_diameter=20.0,
                               division_rate=0.0, apoptosis_rate=0.0)
            seqs[cells] = simulate(Path(tmp) / str(cells), params, seed=cells)
        for backend in ("learned", "classical"):
            times = {}
            for cells, seq in seqs.items():
                result, _ = track(seq, backend, "fluo-nuclei")  # warm-up (first allocations)
                times[cells] = min(track(seq, backend, "fluo-nuclei")[1] for _ in range(2))
                print(f"| {cells} | {backend} | {len(result.lineage)} | {times[cells]:.3f} | "
                      f"{times[cells] / times[10]:.2f} |", flush=True)


#: Simulated kinds of the adaptation table (modality, cell diameter): sizes outside the
#: 20-44 px the shipped models' simulated training data has.
SIMULATED_KINDS = (("fluo-nuclei", 15.0), ("fluo-nuclei", 75.0), ("dic", 15.0), ("dic", 75.0),
                   ("phase", 15.0), ("phase", 75.0))
ADAPT_COLUMNS = ("MOTA", "IDF1", "TRA", "SEG")


def adaptation_rows(seq_dir: Path, preset: str, model: str) -> list[str]:
    """The learned backend (``model``) as shipped and adapted to the sequence, the classical
    one (with the preset the first frame's look chooses) and ``auto``, from the GT first-frame
    boxes: table rows."""
    boxes, _ = boxes_from_gt(seq_dir.with_name(f"{seq_dir.name}_GT"))
    images = open_sequence(seq_dir)
    own = look(images[0])[0]
    auto = make_segmenter("auto", preset, model, adapt=True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = BoxTracker(segmenter=auto).track(images, boxes)
    calibration = auto.calibration
    seconds = (time.perf_counter() - start - calibration.seconds) / len(images)
    runs = {f"auto: {calibration.chosen}": (result, seconds, f"{calibration.seconds:.1f}")}
    variants = {"learned": make_segmenter("learned", preset, model, adapt=False),
                "learned, adapted": calibration.segmenters["learned, adapted"],
                f"classical ({own})": make_segmenter("classical", own)}
    for name, segmenter in variants.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = BoxTracker(segmenter=segmenter).track(images, boxes)
        extra = (f"{calibration.adapt_seconds:.1f} ({calibration.adapt_steps} steps)"
                 if name == "learned, adapted" else "")
        runs[name] = (result, (time.perf_counter() - start) / len(images), extra)
    rows = []
    gt = seq_dir.with_name(f"{seq_dir.name}_GT")
    for name, (result, per_frame, extra) in runs.items():
        scores = evaluate_result(result, gt, threads=1)
        cells = [f"{scores[k]:.3f}" for k in ADAPT_COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {per_frame:.3f} | {extra} |")
    return rows


def adaptation(data: Path, only: list[str] | None = None) -> None:
    """The adaptation table; ``only``: just the simulated kinds of these modalities."""
    print("\nAdaptation to the sequence from its first-frame boxes (leave one dataset out). "
          "'adapt s': fine-tuning seconds (auto: the whole check, fine-tuning included)")
    names = ("variant", *ADAPT_COLUMNS, "s/frame", "adapt s")
    print("| " + " | ".join(names) + " |\n|" + "---|" * len(names))
    for name, preset in SEQUENCES.items() if not only else ():
        print(f"| **{name} 01**, model without-{name} (saw the other two sequences and "
              f"simulated data) |" + " |" * (len(names) - 1), flush=True)
        for line in adaptation_rows(data / name / "01", preset, f"without-{name}"):
            print(line, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for modality, diameter in SIMULATED_KINDS:
            if only and modality not in only:
                continue
            params = SimParams(frames=30, size=512, cells=int(512**2 / (3.5 * diameter**2)),
                               modality=modality, cell_diameter=diameter)
            seq = simulate(Path(tmp) / f"{modality}-{diameter:g}", params, seed=7)
            print(f"| **simulated {modality}, {diameter:g} px**, model all (saw simulated "
                  f"data of every modality, 20-44 px cells, other seeds) |"
                  + " |" * (len(names) - 1), flush=True)
            for line in adaptation_rows(seq, modality, DEFAULT_MODEL):
                print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ctc"))
    parser.add_argument("--part", default="all",
                        choices=["all", "zero-shot", "ablations", "frame-step", "cost",
                                 "box-only", "adapt"])
    parser.add_argument("--simulated", action="append",
                        choices=sorted({kind for kind, _ in SIMULATED_KINDS}),
                        help="with --part adapt: only the simulated kinds of this modality")
    args = parser.parse_args()
    if args.part in ("all", "zero-shot"):
        zero_shot(args.data)
    if args.part in ("all", "ablations"):
        ablations(args.data)
    if args.part in ("all", "frame-step"):
        frame_steps(args.data)
    if args.part in ("all", "cost"):
        cost()
    if args.part == "box-only":
        box_only(args.data)
    if args.part == "adapt":
        adaptation(args.data, args.simulated)


if __name__ == "__main__":
    main()
