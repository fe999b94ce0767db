"""celltrail: cell masks, tracks and lineages from 2D time-lapse microscopy."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("celltrail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
