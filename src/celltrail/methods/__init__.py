"""Tracking methods, each fulfilling the :class:`~celltrail.methods.base.Tracker` interface."""

from celltrail.methods.base import Tracker, get_tracker, method_names

__all__ = ["Tracker", "get_tracker", "method_names"]
