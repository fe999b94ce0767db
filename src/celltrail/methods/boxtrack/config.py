"""Every constant of BoxTrack in one place, with where it comes from."""

from __future__ import annotations

from dataclasses import dataclass

from celltrail.core.errors import InputError


@dataclass(frozen=True)
class BoxTrackConfig:
    """Settings of BoxTrack's tracking module.

    Defaults follow the paper (Sec. 3.2) and its reference configuration (SAMURAI's settings in
    ``sam2.1_hiera_*.yaml`` of Box-it-Track-it): memory of 7 frames; a frame enters memory only
    when its predicted mask quality exceeds 0.5 and its objectness and motion scores exceed 0;
    an object is absent when its objectness logit is below -1; the motion term weighs 0.25
    (``kf_score_weight``). The paper does not give the affinity/objectness split: the remaining
    0.75 is shared equally.
    """

    #: Weights of affinity (token cosine with memory), motion (IoU of the candidate's box with
    #: the Kalman prediction) and objectness (objectness probability times predicted quality).
    lambda_affinity: float = 0.375
    lambda_motion: float = 0.25
    lambda_objectness: float = 0.375
    memory_size: int = 7
    #: ``"score"``: evict the lowest-scored entry (BoxTrack); ``"fifo"``: the oldest (SAM2).
    memory_policy: str = "score"
    memory_quality_threshold: float = 0.5
    memory_objectness_threshold: float = 0.0
    memory_motion_threshold: float = 0.0
    min_objectness_logit: float = -1.0
    #: Predict each box with the Kalman filter; off: prompt with the previous box.
    kalman: bool = True
    #: Frames an object may stay absent before its track ends (a cell that left the field).
    max_lost_frames: int = 3
    #: A tracked mask splitting into two parts, each at least this fraction of the mask, is a
    #: division (beyond the paper).
    divisions: bool = True
    division_min_fraction: float = 0.2
    #: Start tracks for cells nobody prompted (entering later, or missed on the first frame).
    #: ``None``: on when the segmenter screens its proposals with a learned objectness (the
    #: learned backend), off otherwise (classical), where every spurious segment would start a
    #: track.
    new_cells: bool | None = None
    #: Smallest new cell, as a fraction of the median prompted cell's area.
    new_cell_min_area: float = 0.3
    #: Prompt boxes with a side below this (pixels) are skipped with a warning, as the
    #: reference code's ``--min_bbox_side``.
    min_box_side: float = 5.0
    #: An object keeps a mask only if at least this fraction of it is not claimed by an object
    #: chosen with a higher score.
    min_visible_fraction: float = 0.3

    def validate(self) -> None:
        """Raise :class:`InputError` on inconsistent settings."""
        total = self.lambda_affinity + self.lambda_motion + self.lambda_objectness
        if abs(total - 1) > 1e-6:
            raise InputError(None, f"BoxTrack's lambda weights must sum to 1, got {total:g}")
        if self.memory_policy not in ("score", "fifo"):
            raise InputError(None, f"memory policy must be 'score' or 'fifo', "
                                   f"got {self.memory_policy!r}")
        if self.memory_size < 1:
            raise InputError(None, f"memory size must be at least 1, got {self.memory_size}")


@dataclass(frozen=True)
class AdaptParams:
    """Fine-tuning settings: the step count fixes the result (seeded); ``seconds`` only cuts
    it short on a slow machine (then the run says so). 100 steps took 35-55 s on a busy 2-core
    machine (one step 0.2-0.5 s, whatever the frame size: the crops are of fixed size)."""

    steps: int = 100
    seconds: float = 60.0
    batch: int = 4
    #: A tenth of the peak rate the shipped models were trained with (2e-3): a fine-tune.
    lr: float = 2e-4
    seed: int = 0
    #: Torch threads while fine-tuning: batches this small gain little from more, and on a busy
    #: 2-core machine two threads ran a step 2-10x slower than one (measured).
    threads: int = 1
