"""Settings and user directories.

The case store and caches live in the user's data directory given by :mod:`platformdirs`; the environment variable
``MEDVIEWER_DATA_DIR`` overrides it (tests and portable installs use that).

The bundled models and resources are package data of ``medviewer`` (``medviewer/models``, ``medviewer/resources``),
found through :mod:`importlib.resources` in every kind of install: in a checkout / editable install those two names
are symlinks to the repository's top-level ``models/`` and ``resources/``; a wheel (``pip install .``) carries copies
(``[tool.setuptools.package-data]``); the PyInstaller bundle puts them at ``<bundle>/_internal/medviewer/``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

APP_NAME = "medviewer"
APP_AUTHOR = "medviewer"

#: Root of the source checkout. Only the training scripts and developer tools use it (they write into the
#: checkout's ``models/``); the app finds its models and resources through package data (:func:`models_dir`).
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


def package_data_dir(name: str) -> Path:
    """``medviewer/<name>`` (package data) as a directory on disk, whatever the install: checkout, wheel or
    PyInstaller bundle. Symlinks are resolved, so a checkout reports its top-level folder."""
    return Path(str(files("medviewer").joinpath(name))).resolve()


def models_dir() -> Path:
    """Directory of the bundled models (``<name>/model.safetensors`` + ``<name>/card.json``).

    ``MEDVIEWER_MODELS_DIR`` overrides it; otherwise the package data ``medviewer/models``.
    """
    override = os.environ.get("MEDVIEWER_MODELS_DIR")
    return Path(override) if override else package_data_dir("models")


def resources_dir() -> Path:
    """Directory of icons, window presets and stylesheets (package data ``medviewer/resources``)."""
    return package_data_dir("resources")
