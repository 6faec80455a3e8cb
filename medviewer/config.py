"""Settings and user directories.

The case store and caches live in the user's data directory given by :mod:`platformdirs`; the environment variable
``MEDVIEWER_DATA_DIR`` overrides it (tests and portable installs use that).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "medviewer"
APP_AUTHOR = "medviewer"

#: Root of the source checkout / installed package's parent, where ``models/`` and ``resources/`` live.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Return (and create) the directory for the case store and caches.

    ``MEDVIEWER_DATA_DIR`` wins over the platform default (``platformdirs.user_data_dir``).
    """
    override = os.environ.get("MEDVIEWER_DATA_DIR")
    if override:
        path = Path(override).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Directory of the bundled models (``<name>/model.safetensors`` + ``<name>/card.json``)."""
    return Path(os.environ.get("MEDVIEWER_MODELS_DIR", PROJECT_ROOT / "models"))


def resources_dir() -> Path:
    """Directory of icons, window presets and stylesheets."""
    return PROJECT_ROOT / "resources"
