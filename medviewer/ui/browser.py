"""Study browser dock: patient/study/series tree with thumbnails, filter, progress/cancel and skipped files.

Thumbnails are decoded and windowed in a worker (:func:`make_thumbnail`, pure numpy); only the QImage/QIcon is made
here, on the GUI thread. Series can be dragged onto any viewport (mime type :data:`STACK_MIME`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.imaging.stacks import Stack
from medviewer.io.display import format_da, format_person_name, patient_lines
from medviewer.io.model import DicomIndex, Patient, Series, Study

STACK_MIME = "application/x-medviewer-stack"
KEY_ROLE = Qt.ItemDataRole.UserRole + 1
THUMB_SIZE = 64


@dataclass
class StackEntry:
    """A stack offered by the browser, with the overlay text of its series."""

    key: str
    stack: Stack
    patient: Patient
    study: Study
    series: Series

    def overlay_info(self) -> dict[str, str]:
        """Corner overlay text: patient (top left), study and series (top right)."""
        p, st, se = self.patient, self.study, self.series
        return {
            "patient": "\n".join(patient_lines(p.patient_name, p.patient_id, p.patient_birth_date, p.patient_sex,
                                               study_date=st.study_date)),
            "study": " ".join(x for x in (format_da(st.study_date), st.study_description) if x),
            "series": " ".join(x for x in (f"Se {se.series_number}" if se.series_number is not None else "",
                                           se.modality, se.series_description, self.stack.label) if x),
        }


def make_thumbnail(stack: Stack, size: int = THUMB_SIZE) -> np.ndarray:
    """A small 8-bit picture of the stack's middle image (worker thread; pure numpy).

    Returns (h, w) uint8 greyscale (MONOCHROME1 inverted, DICOM window or automatic) or (h, w, 3) uint8 RGB, with
    max(h, w) <= ``size``.

    Raises
    ------
    medviewer.io.pixels.PixelDecodeError: the image cannot be decoded.
    """
    from medviewer.imaging.lut import apply_rescale
    from medviewer.imaging.voi import Window, auto_window, to_display
    from medviewer.io.pixels import can_decode_native_fast, decode_instance, decode_native

    ref = stack.slices[len(stack.slices) // 2]
    inst = ref.instance
    pixels = decode_native(inst) if can_decode_native_fast(inst) else decode_instance(inst.path)[1]
    frame = pixels[min(ref.frame.index, pixels.shape[0] - 1)]
    step = max(1, int(np.ceil(max(frame.shape[:2]) / size)))
    frame = frame[::step, ::step]
    if frame.ndim == 3:
        if frame.dtype != np.uint8:
            frame = (frame.astype(np.float32) / max(float(frame.max()), 1.0) * 255).astype(np.uint8)
        return np.ascontiguousarray(frame)
    values = apply_rescale(frame, ref.frame.rescale_slope, ref.frame.rescale_intercept)
    f = ref.frame
    if f.window_center and f.window_width and f.window_width[0] > 0:
        window = Window(f.window_center[0], f.window_width[0], inst.voi_lut_function or "LINEAR")
    else:
        window = auto_window(values)
    return np.ascontiguousarray(to_display(values, window, invert=inst.photometric_interpretation == "MONOCHROME1"))


def thumbnail_icon(array: np.ndarray) -> QIcon:
    """QIcon from a :func:`make_thumbnail` array (GUI thread only)."""
    h, w = array.shape[:2]
    if array.ndim == 2:
        image = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_Grayscale8)
    else:
        image = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGB888)
    return QIcon(QPixmap.fromImage(image.copy()))


class _Tree(QTreeWidget):
    def mimeData(self, items):  # noqa: N802, ANN001 - Qt override
        mime = QMimeData()
        keys = [it.data(0, KEY_ROLE) for it in items if it.data(0, KEY_ROLE)]
        if keys:
            mime.setData(STACK_MIME, keys[0].encode("utf-8"))
        return mime

    def mimeTypes(self):  # noqa: N802 - Qt override
        return [STACK_MIME]


class StudyBrowser(QWidget):
    """The browser panel. ``stack_activated(key)`` fires on double-click/Enter on a series."""

    stack_activated = Signal(str)
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.entries: dict[str, StackEntry] = {}
        self.items: dict[str, QTreeWidgetItem] = {}
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: name, ID, description, modality")
        self.filter.setClearButtonEnabled(True)
        self.tree = _Tree()
        self.tree.setHeaderLabels(["Patient / Study / Series", "Mod", "Date", "Images"])
        self.tree.setColumnWidth(0, 230)
        self.tree.setColumnWidth(1, 40)
        self.tree.setColumnWidth(2, 74)
        self.tree.setIconSize(QSize(40, 40))
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        # itemActivated already fires on double-click (or single click, per the platform style) and on Enter;
        # connecting itemDoubleClicked too opened (decoded) the series twice per double-click.
        self.tree.itemActivated.connect(self._activated)
        self.filter.textChanged.connect(self.apply_filter)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        layout.addWidget(self.progress)
        layout.addWidget(self.cancel_button)

    # ------------------------------------------------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def populate(self, index: DicomIndex, stacks: dict[str, list[Stack]]) -> list[str]:
        """Fill the tree from a scan; ``stacks`` maps SeriesInstanceUID to its stacks (built in the worker).

        Returns the stack keys in tree order.
        """
        self.tree.clear()
        self.entries.clear()
        self.items.clear()
        keys: list[str] = []
        for patient in index.patients.values():
            n_images = sum(len(se.image_instances) for st in patient.studies.values() for se in st.series.values())
            p_item = QTreeWidgetItem([f"{format_person_name(patient.patient_name, '(no name)')}  "
                                      f"[{patient.patient_id}]", "", "", str(n_images)])
            p_item.setToolTip(0, f"PatientID {patient.patient_id}\nBirth date {format_da(patient.patient_birth_date)}"
                                 f"\nSex {patient.patient_sex}")
            self.tree.addTopLevelItem(p_item)
            for study in patient.studies.values():
                modalities = sorted({se.modality for se in study.series.values() if se.modality})
                s_item = QTreeWidgetItem([study.study_description or "(no description)", "/".join(modalities),
                                          _date(study.study_date), str(len(study.series))])
                s_item.setToolTip(0, f"StudyInstanceUID {study.study_instance_uid}\nAccession "
                                     f"{study.accession_number}")
                p_item.addChild(s_item)
                for series in study.series.values():
                    for n, stack in enumerate(stacks.get(series.series_instance_uid, [])):
                        key = f"{series.series_instance_uid}#{n}"
                        entry = StackEntry(key, stack, patient, study, series)
                        self.entries[key] = entry
                        label = " ".join(str(x) for x in (
                            series.series_number if series.series_number is not None else "",
                            series.series_description or series.modality, stack.label) if x != "")
                        item = QTreeWidgetItem([label, series.modality, _date(series.series_date), str(stack.n_slices)])
                        item.setData(0, KEY_ROLE, key)
                        tip = [f"{stack.kind}, {stack.n_slices} images, {stack.columns}x{stack.rows}"]
                        tip += stack.warnings
                        item.setToolTip(0, "\n".join(tip))
                        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsDragEnabled)
                        s_item.addChild(item)
                        self.items[key] = item
                        keys.append(key)
                    for ni in series.non_image_instances:
                        child = QTreeWidgetItem([f"{ni.kind}: {os.path.basename(ni.path)}", series.modality, "", ""])
                        child.setToolTip(0, f"{ni.path}\n{ni.sop_class_uid} (not an image)")
                        child.setFlags(child.flags() & ~Qt.ItemFlag.ItemIsDragEnabled)
                        s_item.addChild(child)
        if index.skipped:
            sk = QTreeWidgetItem([f"Skipped files ({len(index.skipped)})", "", "", str(len(index.skipped))])
            for s in index.skipped:
                child = QTreeWidgetItem([f"{os.path.basename(s.path)}: {s.reason}", "", "", ""])
                child.setToolTip(0, f"{s.path}\n{s.reason}")
                sk.addChild(child)
            self.tree.addTopLevelItem(sk)
        self.tree.expandAll()
        last = self.tree.topLevelItem(self.tree.topLevelItemCount() - 1)
        if index.skipped and last is not None:
            last.setExpanded(False)
        self.apply_filter(self.filter.text())
        return keys

    def set_thumbnail(self, key: str, array: np.ndarray) -> None:
        item = self.items.get(key)
        if item is not None:
            item.setIcon(0, thumbnail_icon(array))

    def select_key(self, key: str | None) -> None:
        """Select the stack ``key`` (the focused viewport's), or nothing; emits no activation."""
        item = self.items.get(key) if key else None
        self.tree.blockSignals(True)
        try:
            self.tree.clearSelection()
            if item is not None:
                self.tree.setCurrentItem(item)
                item.setSelected(True)
        finally:
            self.tree.blockSignals(False)

    def selected_key(self) -> str | None:
        items = self.tree.selectedItems()
        return items[0].data(0, KEY_ROLE) if items else None

    def apply_filter(self, text: str) -> None:
        """Show only series whose patient name/ID, study/series description or modality contains ``text``."""
        text = text.lower().strip()

        def children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
            return [c for c in (item.child(n) for n in range(item.childCount())) if c is not None]

        tops = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        for p in [t for t in tops if t is not None]:
            any_p = False
            for s in children(p):
                any_s = False
                for se in children(s):
                    hay = " ".join([p.text(0), p.toolTip(0), s.text(0), s.text(1), se.text(0), se.text(1)]).lower()
                    match = not text or text in hay
                    se.setHidden(not match)
                    any_s |= match
                s.setHidden(not any_s and s.childCount() > 0)
                any_p |= any_s or s.childCount() == 0
            p.setHidden(not any_p and p.childCount() > 0)

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        key = item.data(0, KEY_ROLE)
        if key:
            self.stack_activated.emit(key)


def _date(da: str) -> str:
    """DICOM DA as YYYY-MM-DD (:func:`medviewer.io.display.format_da`)."""
    return format_da(da)
