"""Synthetic time-lapse sequences with exact ground truth, and temporal subsampling of CTC data."""

from celltrail.simulate.imaging import DTYPES, MODALITIES
from celltrail.simulate.simulator import SimParams, simulate
from celltrail.simulate.subsample import subsample

__all__ = ["DTYPES", "MODALITIES", "SimParams", "simulate", "subsample"]
