"""The application log: a rotating file in the user data directory (``<data dir>/medviewer.log``, 1 MB x 3).

Code logs with ``logging.getLogger(__name__)`` instead of falling back silently; :func:`setup_logging` (called
once by the entry point) sends INFO and above to the file. The GUI shows the file under Help > Show log. The log
holds file names and reasons, never credentials; it lives beside the case store, with the same access.
No Qt here.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

__all__ = ["LOG_NAME", "log_path", "setup_logging", "tail"]

LOG_NAME = "medviewer.log"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def log_path() -> Path:
    """``<data dir>/medviewer.log`` (the folder is created)."""
    from medviewer.config import data_dir

    return data_dir() / LOG_NAME


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Attach the rotating log file to the ``medviewer`` logger (one file handler per process, moved when the data
    directory changed); returns its path, or None when the data directory cannot be written (then the log goes
    nowhere, and nothing else fails)."""
    logger = logging.getLogger("medviewer")
    try:
        path = log_path()
    except OSError:
        return None
    for h in list(logger.handlers):
        if isinstance(h, logging.handlers.RotatingFileHandler):
            if Path(h.baseFilename) == path.resolve():
                return path
            logger.removeHandler(h)
            h.close()
    try:
        handler = logging.handlers.RotatingFileHandler(path.resolve(), maxBytes=1 << 20, backupCount=3,
                                                       encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    return path


def tail(path: str | Path | None = None, max_bytes: int = 200_000) -> str:
    """The last ``max_bytes`` of the log file as text ("" when there is none)."""
    path = Path(path) if path is not None else log_path()
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return text if size <= max_bytes else text.split("\n", 1)[-1]
