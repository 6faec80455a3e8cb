"""Loading model weights safely: safetensors only; pickled checkpoints are refused (pickle can run code).

The implementation lives in :mod:`medviewer.modelfiles`, shared with the notes model.
"""

from medviewer.modelfiles import PICKLE_SUFFIXES, UnsafeWeightsError, load_state_dict

__all__ = ["PICKLE_SUFFIXES", "UnsafeWeightsError", "load_state_dict"]
