"""The app's Storage SCP: while the window is open and the PACS settings say ``listen``, studies pushed to us (and
C-MOVE destinations) land in the PACS cache and are registered as cases; the worklist shows them.

pynetdicom calls :meth:`PacsListener._on_study` on its own thread when an association that sent objects ends; the
case is registered there (the store is thread-safe) and ``received`` is emitted, which Qt queues to the GUI thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from medviewer.net.nodes import NetSettings, PacsError

if TYPE_CHECKING:
    from medviewer.net.dimse import StorageSCP

log = logging.getLogger(__name__)


class PacsListener(QObject):
    """Start/stop the Storage SCP from the settings. ``received(study uid, n objects, message)``; ``failed(msg)``
    when it cannot listen (port taken...). :attr:`scp` is the running :class:`medviewer.net.dimse.StorageSCP` (a
    C-MOVE from the Query/Retrieve dialog goes to it) or None."""

    received = Signal(str, int, str)
    failed = Signal(str)

    def __init__(self, store, parent: QObject | None = None):  # noqa: ANN001 - CaseStore
        super().__init__(parent)
        self.store = store
        self.scp: StorageSCP | None = None
        self.root: Path | None = None

    def apply(self, settings: NetSettings) -> None:
        """Listen when ``settings.listen`` (restarted when the AE title or port changed), else stop."""
        from medviewer.net.dimse import StorageSCP

        want = (settings.our_ae_title, int(settings.scp_port)) if settings.listen else None
        have = (self.scp.ae_title, self.scp.port) if self.scp is not None else None
        if want == have:
            return
        self.stop()
        if want is None:
            return
        try:
            self.root = settings.cache_path()
            self.scp = StorageSCP(self.root, settings.our_ae_title, port=settings.scp_port, host="",
                                  on_study=self._on_study).start()
        except (PacsError, OSError) as exc:
            self.scp = None
            log.warning("Storage SCP not started: %s", exc)
            self.failed.emit(f"Not listening for studies pushed to us: {exc}")
            return
        log.info("receiving studies as %s on port %d", settings.our_ae_title, self.scp.port)

    def stop(self) -> None:
        if self.scp is not None:
            self.scp.stop()
            self.scp = None

    def _on_study(self, study_uid: str, paths: list) -> None:  # pynetdicom's thread
        from medviewer.net.service import register_retrieved

        try:
            if self.root is None:  # set before the SCP starts
                raise PacsError("no PACS cache folder to register from", "failed")
            ids, notes = register_retrieved(self.store, self.root, study_uid)
            msg = f"Received {len(paths)} object(s) of a study" + (f"; {len(notes)} file(s) skipped" if notes else "")
            if not ids:
                msg += ": no images, no case registered"
        except Exception as exc:  # noqa: BLE001 - the files are kept in the cache; say why there is no case
            log.warning("received study %s not registered: %s", study_uid, exc)
            msg = f"Received {len(paths)} object(s), but the study was not registered as a case: {exc}"
        self.received.emit(study_uid, len(paths), msg)


__all__ = ["PacsListener"]
