"""The PACS node editor: the saved nodes (DIMSE: AE title, host, port; DICOMweb: URL with no, basic or bearer
authentication), our AE title and Storage SCP port, and "Test connection" (C-ECHO, or a minimal QIDO-RS search)
in a worker.

Secrets are never typed here nor saved: a DICOMweb node names the environment variable that holds its password or
token (see :mod:`medviewer.net.nodes`); the editor only says whether that variable is set.
"""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from medviewer.net.nodes import (
    DEFAULT_SECRET_ENV,
    NetSettings,
    PacsError,
    PacsNode,
    check_ae_title,
    load_settings,
    save_settings,
)
from medviewer.ui.pacs_common import PACS_STYLE, NetFailure, set_status, start_net_job, status_label
from medviewer.ui.workers import Job, JobRunner

log = logging.getLogger(__name__)

KINDS = ("DIMSE (AE title, host, port)", "DICOMweb (URL)")
AUTHS = (("None", ""), ("Basic (user + password)", "basic"), ("Bearer token", "bearer"))


class NodeEditor(QDialog):
    """Edit the saved PACS nodes. ``saved`` fires after the settings were written (the new settings)."""

    saved = Signal(object)

    def __init__(self, runner: JobRunner, parent: QWidget | None = None, settings: NetSettings | None = None):
        super().__init__(parent)
        self.setWindowTitle("PACS nodes")
        self.setStyleSheet(PACS_STYLE)
        self.resize(720, 460)
        self.runner = runner
        self.settings = settings if settings is not None else load_settings()
        self.nodes: list[PacsNode] = list(self.settings.nodes)
        self.current = -1
        self.echo_job: Job | None = None

        self.node_list = QListWidget()
        self.node_list.currentRowChanged.connect(self._select)
        add = QPushButton("New")
        add.clicked.connect(self.add_node)
        self.remove_button = QPushButton("Delete")
        self.remove_button.clicked.connect(self.remove_node)
        left = QVBoxLayout()
        left.addWidget(QLabel("Nodes"))
        left.addWidget(self.node_list, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(self.remove_button)
        left.addLayout(row)

        self.name = QLineEdit()
        self.name.textChanged.connect(self._rename)
        self.kind = QComboBox()
        self.kind.addItems(KINDS)
        self.ae_title = QLineEdit()
        self.ae_title.setMaxLength(16)
        self.ae_title.setPlaceholderText("the PACS's AE title, e.g. ORTHANC")
        self.host = QLineEdit()
        self.host.setPlaceholderText("pacs.hospital.org or 10.0.0.5")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        dimse = QWidget()
        dform = QFormLayout(dimse)
        dform.setContentsMargins(0, 0, 0, 0)
        dform.addRow("AE title", self.ae_title)
        dform.addRow("Host", self.host)
        dform.addRow("Port", self.port)
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://pacs:8042/dicom-web")
        self.auth = QComboBox()
        for text, value in AUTHS:
            self.auth.addItem(text, value)
        self.username = QLineEdit()
        self.secret_env = QLineEdit()
        self.secret_env.setPlaceholderText(DEFAULT_SECRET_ENV)
        self.secret_env.setToolTip("The NAME of the environment variable that holds the password or token. The "
                                   "secret itself is never typed here nor saved.")
        self.secret_state = QLabel("")
        web = QWidget()
        wform = QFormLayout(web)
        wform.setContentsMargins(0, 0, 0, 0)
        wform.addRow("URL", self.url)
        wform.addRow("Authentication", self.auth)
        wform.addRow("User", self.username)
        wform.addRow("Secret from variable", self.secret_env)
        wform.addRow("", self.secret_state)
        self.pages = QStackedWidget()
        self.pages.addWidget(dimse)
        self.pages.addWidget(web)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.auth.currentIndexChanged.connect(self._update_auth)
        self.secret_env.textChanged.connect(self._update_auth)
        self.calling_ae = QLineEdit()
        self.calling_ae.setMaxLength(16)
        self.calling_ae.setToolTip("The AE title we call this PACS with (it must know it for C-FIND, C-GET and "
                                   "C-MOVE)")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 600)
        self.timeout.setSuffix(" s")
        self.timeout.setDecimals(0)
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test_connection)
        node_box = QGroupBox("Node")
        form = QFormLayout(node_box)
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow(self.pages)
        form.addRow("Calling AE title", self.calling_ae)
        form.addRow("Timeout", self.timeout)
        form.addRow("", self.test_button)

        self.our_ae = QLineEdit(self.settings.our_ae_title)
        self.our_ae.setMaxLength(16)
        self.our_ae.setToolTip("Our AE title for new nodes and for the Storage SCP (C-MOVE destination)")
        self.scp_port = QSpinBox()
        self.scp_port.setRange(1, 65535)
        self.scp_port.setValue(int(self.settings.scp_port))
        self.scp_port.setToolTip("The port our Storage SCP listens on during a C-MOVE (the PACS must know it)")
        self.listen = QCheckBox("Receive studies pushed to us while medviewer is open")
        self.listen.setChecked(bool(self.settings.listen))
        self.listen.setToolTip("Keep our Storage SCP running on the port above: studies other systems send to our AE "
                               "title become cases in the worklist, and C-MOVEs go to it")
        local = QGroupBox("This workstation")
        lform = QFormLayout(local)
        lform.addRow("Our AE title", self.our_ae)
        lform.addRow("Storage SCP port", self.scp_port)
        lform.addRow("", self.listen)

        right = QVBoxLayout()
        right.addWidget(node_box)
        right.addWidget(local)
        right.addStretch(1)
        top = QHBoxLayout()
        top.addLayout(left, 2)
        top.addLayout(right, 3)

        self.status = status_label()
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.save_button)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addLayout(bottom)

        for node in self.nodes:
            self.node_list.addItem(node.name)
        if self.nodes:
            self.node_list.setCurrentRow(0)
        else:
            self.add_node()

    # ------------------------------------------------------------------------------------------------ form
    def _kind_changed(self, i: int) -> None:
        self.pages.setCurrentIndex(i)
        self._update_auth()

    def _update_auth(self) -> None:
        auth = self.auth.currentData() or ""
        self.username.setEnabled(auth == "basic")
        self.secret_env.setEnabled(bool(auth))
        var = self.secret_env.text().strip() or DEFAULT_SECRET_ENV
        if not auth:
            self.secret_state.setText("")
        else:
            is_set = bool(os.environ.get(var))
            self.secret_state.setText(f"${var} is {'set' if is_set else 'NOT set'} in this session")

    def _rename(self, text: str) -> None:
        item = self.node_list.item(self.current)
        if item is not None:
            item.setText(text.strip() or "(unnamed)")

    def _show(self, node: PacsNode) -> None:
        self.name.setText(node.name)
        self.kind.setCurrentIndex(1 if node.is_dicomweb else 0)
        self.pages.setCurrentIndex(1 if node.is_dicomweb else 0)
        self.ae_title.setText(node.ae_title)
        self.host.setText(node.host)
        self.port.setValue(int(node.port) if 1 <= int(node.port) <= 65535 else 104)
        self.url.setText(node.url)
        self.auth.setCurrentIndex(max(0, self.auth.findData(node.auth or "")))
        self.username.setText(node.username)
        self.secret_env.setText("" if node.secret_env == DEFAULT_SECRET_ENV else node.secret_env)
        self.calling_ae.setText(node.our_ae_title)
        self.timeout.setValue(float(node.timeout_s))
        self._update_auth()

    def form_node(self) -> PacsNode:
        """The node as the form describes it (not validated)."""
        web = self.kind.currentIndex() == 1
        return PacsNode(name=self.name.text().strip(),
                        ae_title="" if web else self.ae_title.text().strip(),
                        host="" if web else self.host.text().strip(),
                        port=0 if web else self.port.value(),
                        url=self.url.text().strip().rstrip("/") if web else "",
                        our_ae_title=self.calling_ae.text().strip() or self.our_ae.text().strip(),
                        auth=(self.auth.currentData() or "") if web else "",
                        username=self.username.text().strip() if web and self.auth.currentData() == "basic" else "",
                        secret_env=self.secret_env.text().strip() or DEFAULT_SECRET_ENV,
                        timeout_s=float(self.timeout.value()))

    def _commit(self) -> None:
        """Keep the form's values in the node list (validation happens on save and test)."""
        if 0 <= self.current < len(self.nodes):
            node = self.form_node()
            self.nodes[self.current] = node
            item = self.node_list.item(self.current)
            if item is not None:
                item.setText(node.name or "(unnamed)")

    def _select(self, row: int) -> None:
        if row == self.current:
            return
        self._commit()
        self.current = row
        if 0 <= row < len(self.nodes):
            self._show(self.nodes[row])
        self.remove_button.setEnabled(row >= 0)

    def add_node(self) -> None:
        """A new DIMSE node with our AE title, selected for editing."""
        self._commit()
        names = {n.name.lower() for n in self.nodes}
        name = next(f"PACS {i}" for i in range(1, len(names) + 2) if f"pacs {i}" not in names)
        self.nodes.append(PacsNode(name=name, port=104, our_ae_title=self.our_ae.text().strip() or "MEDVIEWER"))
        self.node_list.addItem(name)
        self.node_list.setCurrentRow(len(self.nodes) - 1)
        self.name.setFocus()
        self.name.selectAll()

    def remove_node(self) -> None:
        row = self.node_list.currentRow()
        if not 0 <= row < len(self.nodes):
            return
        self.current = -1  # do not commit the form of the node going away
        del self.nodes[row]
        self.node_list.takeItem(row)
        row = self.node_list.currentRow()
        if row >= 0:
            self._select(row)

    # ------------------------------------------------------------------------------------------------ actions
    def save(self) -> bool:
        """Validate every node and write the settings; problems are shown in the status line. True when saved."""
        self._commit()
        try:
            our_ae = check_ae_title(self.our_ae.text(), "our AE title")
            seen: set[str] = set()
            nodes = []
            for i, node in enumerate(self.nodes):
                if not node.name:
                    self.node_list.setCurrentRow(i)
                    raise PacsError("every node needs a name", "bad-input")
                if node.name.lower() in seen:
                    self.node_list.setCurrentRow(i)
                    raise PacsError(f"two nodes are called {node.name!r}", "bad-input")
                seen.add(node.name.lower())
                try:
                    nodes.append(node.validated())
                except PacsError:
                    self.node_list.setCurrentRow(i)
                    raise
            self.settings = NetSettings(nodes=nodes, our_ae_title=our_ae, scp_port=self.scp_port.value(),
                                        cache_dir=self.settings.cache_dir, listen=self.listen.isChecked())
            path = save_settings(self.settings)
        except PacsError as exc:
            set_status(self.status, f"Not saved: {exc}", error=True)
            return False
        except OSError as exc:
            log.warning("PACS settings not saved: %s", exc)
            set_status(self.status, f"Not saved: {exc.strerror or exc}", error=True)
            return False
        set_status(self.status, f"Saved {len(nodes)} node{'s' if len(nodes) != 1 else ''} to {path}")
        self.saved.emit(self.settings)
        return True

    def test_connection(self) -> None:
        """C-ECHO (or a QIDO-RS search) with the node as the form shows it, in a worker."""
        try:
            node = self.form_node().validated()
        except PacsError as exc:
            set_status(self.status, str(exc), error=True)
            return
        from medviewer.net import service

        if self.echo_job is not None:
            self.echo_job.cancel()
        self.test_button.setEnabled(False)
        set_status(self.status, f"Testing {node.describe()}...")
        self.echo_job = start_net_job(self.runner, lambda _state: service.echo(node), self._on_echo, what="echo")

    def _on_echo(self, job: Job, result: float | NetFailure) -> None:
        if job is not self.echo_job:
            return
        self.test_button.setEnabled(True)
        if isinstance(result, NetFailure):
            set_status(self.status, f"Connection failed: {result.message}", error=True)
        else:
            set_status(self.status, f"Connection OK: the PACS answered in {float(result) * 1000:.0f} ms")


__all__ = ["NodeEditor"]
