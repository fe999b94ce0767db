"""Tracking methods, each fulfilling the :class:`~celltrail.methods.base.Tracker` interface."""

from celltrail.methods.base import Tracker, get_tracker

__all__ = ["Tracker", "get_tracker"]
