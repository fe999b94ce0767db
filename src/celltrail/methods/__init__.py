"""Tracking methods, each a package behind the :class:`~celltrail.methods.base.Tracker`
interface, listed in one registry (:mod:`celltrail.methods.registry`)."""

from celltrail.methods.base import Tracker
from celltrail.methods.options import Options
from celltrail.methods.registry import DEFAULT_METHOD, METHODS, Method, get_method, register

__all__ = ["DEFAULT_METHOD", "METHODS", "Method", "Options", "Tracker", "get_method",
           "register"]
