"""The window's case store: open it (read-only or temporary with a message when it cannot be used as is) and
save the writes that could not reach it at exit, so nothing typed is lost."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def open_store() -> tuple:
    """(store, message, temporary folder): the user's case store (read-only, with a message, when it fails its
    integrity check); when it cannot be opened at all, a temporary one whose folder is deleted at exit, and the
    message that tells the user (the broken file is left untouched for recovery)."""
    import tempfile

    from medviewer.store import CaseStore, open_default_store

    try:
        store = open_default_store()
        return store, (f"The case store {store.problem}. Close medviewer and restore the file from a backup, or "
                       "move it away to start a new one." if store.read_only else ""), ""
    except Exception as exc:  # noqa: BLE001 - the app still opens on a working store and the user is told
        orig = getattr(exc, "orig", None) or exc
        try:
            from medviewer.config import data_dir

            where = str(data_dir() / "cases.sqlite3")
        except OSError as dir_exc:
            where = f"the data directory ({dir_exc})"
        tmp = tempfile.mkdtemp(prefix="medviewer-temporary-store-")
        store = CaseStore(path=os.path.join(tmp, "cases.sqlite3"))
        return store, (f"The case store {where} cannot be opened ({type(orig).__name__}: {orig}). medviewer is "
                       f"using a TEMPORARY store in {tmp}: your work will NOT be kept after you quit. Close "
                       "medviewer, move the file away or fix its permissions, and start again (set "
                       "MEDVIEWER_DATA_DIR to use another folder)."), tmp


def save_recovery(lost: list[tuple], store_url: str) -> str:
    """Write the writes that could not reach the store (note texts, annotations, calls...) as JSON next to
    the store (or in the temp dir), so nothing typed is gone for good; returns the file's path."""
    import json
    import tempfile
    import time as _time

    items = []
    for fn, args in lost:
        name = getattr(fn, "__name__", str(fn))
        items.append({"write": name, "args": [a.to_dict() if hasattr(a, "to_dict") else
                                              (a if isinstance(a, (str, int, float, bool, list, dict, type(None)))
                                               else repr(a)) for a in args]})
    from medviewer.store.cases import display_url

    stamp = _time.strftime("%Y%m%d-%H%M%S")
    for folder in (_data_dir_or_none(), tempfile.gettempdir()):
        if folder is None:
            continue
        path = os.path.join(folder, f"unsaved-changes-{stamp}.json")
        try:
            with open(path, "w", encoding="utf-8") as f:
                json.dump({"store": display_url(store_url), "changes": items}, f, indent=1, default=repr)
            return path
        except OSError as exc:
            log.warning("unsaved changes not written to %s: %s", path, exc)
            continue
    log.error("unsaved changes could not be written anywhere")
    return "(nowhere: no writable folder)"


def _data_dir_or_none() -> str | None:
    try:
        from medviewer.config import data_dir

        return str(data_dir())
    except OSError as exc:
        log.warning("data directory not usable for the recovery file: %s", exc)
        return None
