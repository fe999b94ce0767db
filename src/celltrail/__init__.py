"""celltrail: cell masks, tracks and lineages from 2D time-lapse microscopy.

The curated API: :func:`track` and :func:`load_tracker` (with the registry of methods,
:data:`METHODS`), :func:`open_sequence`, :func:`read_result` and :func:`evaluate`, the data
model (:class:`ImageSequence`, :class:`TrackingResult`, :class:`Lineage`) and the model zoo
(:func:`available_models`); :func:`set_threads`, the threads celltrail's work may use.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("celltrail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from celltrail.api import evaluate, load_tracker, track
from celltrail.core.errors import CellTrailError, InputError, ModelError, OptionError, OutputError
from celltrail.core.lineage import Lineage, Track
from celltrail.core.result import TrackingResult
from celltrail.core.sequence import ImageSequence, open_labels, open_sequence
from celltrail.io.ctc import read_result
from celltrail.methods.registry import METHODS
from celltrail.models.zoo import available_models
from celltrail.threads import set_threads

__all__ = ["METHODS", "CellTrailError", "ImageSequence", "InputError", "Lineage", "ModelError",
           "OptionError", "OutputError", "Track", "TrackingResult", "__version__",
           "available_models", "evaluate", "load_tracker", "open_labels", "open_sequence",
           "read_result", "set_threads", "track"]
