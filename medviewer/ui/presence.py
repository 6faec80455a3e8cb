"""Several workstations on one case store, in the window: who else has the open case, and refresh on others' changes.

A small controller the main window wires (no widgets): when the open case changes it records this reader as
reading it (:meth:`medviewer.store.CaseStore.open_case`) and tells who else is (``others_reading``); every
:data:`POLL_MS` it reads the store's change token in a worker and, when it moved, asks for a worklist refresh
(``store_changed``) and says what another workstation changed on the open case (``changed_elsewhere``);
every :data:`HEARTBEAT_MS` it refreshes this workstation's reader rows. :attr:`shown_since` is when the reader was
last shown the open case's state (opened, or told about another workstation's change): a sign-off checks that no
other workstation changed the case after it (:meth:`medviewer.store.CaseStore.sign_off`).
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, QTimer, Signal

from medviewer.jobs import TaskState

log = logging.getLogger(__name__)

POLL_MS = 3000
HEARTBEAT_MS = 30000


class CasePresence(QObject):
    """See the module docstring. ``store``: the CaseStore; ``writer``: the window's StoreWriter; ``runner``: its
    JobRunner (reads run there, never on the GUI thread)."""

    others_reading = Signal(str, list)  # (study uid, ["Dr B (ws-b)", ...]) when the case is opened
    changed_elsewhere = Signal(str, list)  # (study uid of the open case, ["note saved on ws-b", ...])
    store_changed = Signal()  # the worklist should be reloaded

    def __init__(self, store, writer, runner, parent: QObject | None = None):  # noqa: ANN001
        super().__init__(parent)
        self.store, self.writer, self.runner = store, writer, runner
        self.case_uid: str | None = None
        self.shown_since = time.time()
        self._token: tuple | None = None
        self._polling = False
        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.poll_timer.timeout.connect(self.poll)
        self.heartbeat = QTimer(self)
        self.heartbeat.setInterval(HEARTBEAT_MS)
        self.heartbeat.timeout.connect(lambda: self.writer.submit(self.store.touch_readers))
        if not getattr(store, "read_only", False):
            self.poll_timer.start()
            self.heartbeat.start()

    def open(self, study_uid: str, reader: str) -> None:
        """The reader opened ``study_uid`` (the previous case, if any, is closed for this workstation)."""
        previous, self.case_uid = self.case_uid, study_uid
        self.shown_since = time.time()
        if getattr(self.store, "read_only", False):
            return
        if previous and previous != study_uid:
            self.writer.submit(self.store.close_case, previous)
        store = self.store

        def work(_state: TaskState) -> list[str]:
            return [r.describe() for r in store.open_case(study_uid, reader)]

        self.runner.submit("presence-open", work,
                           on_result=lambda others: self.others_reading.emit(study_uid, others) if others else None,
                           on_failed=lambda msg: log.warning("could not record the open case: %s",
                                                             msg.splitlines()[0]))

    def seen(self) -> None:
        """The reader has now been shown the case as it is (e.g. after a change elsewhere was announced)."""
        self.shown_since = time.time()

    def poll(self) -> None:
        """Read the change token in a worker; on a change, ask for a refresh and report others' changes."""
        if self._polling:
            return
        self._polling = True
        store, uid, since = self.store, self.case_uid, self.shown_since

        def work(_state: TaskState) -> tuple:
            token = store.change_token()
            changes = store.changed_elsewhere_since(uid, since) if uid else []
            return token, uid, changes

        self.runner.submit("presence-poll", work, on_result=self._on_poll, on_failed=self._on_poll_failed,
                           on_cancelled=lambda: setattr(self, "_polling", False))

    def _on_poll(self, result: tuple) -> None:
        self._polling = False
        token, uid, changes = result
        if token != self._token:  # (the first poll too: the worklist may predate it)
            self.store_changed.emit()
        self._token = token
        if changes and uid == self.case_uid:
            self.changed_elsewhere.emit(uid, list(dict.fromkeys(changes)))

    def _on_poll_failed(self, message: str) -> None:
        self._polling = False
        log.warning("store change poll failed: %s", message.splitlines()[0])

    def close(self) -> None:
        """Stop polling; this workstation reads no case any more."""
        self.poll_timer.stop()
        self.heartbeat.stop()
        if not getattr(self.store, "read_only", False):
            self.writer.submit(self.store.close_case, None)


__all__ = ["CasePresence", "POLL_MS", "HEARTBEAT_MS"]
