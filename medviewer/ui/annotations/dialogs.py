"""The dialogs of the annotation tools."""

from __future__ import annotations

from PySide6.QtWidgets import QInputDialog, QWidget

__all__ = ["ask_text"]


def ask_text(parent: QWidget | None, current: str = "") -> str | None:
    """Default ``text_provider`` of a layer: ask for an annotation's text with a dialog; None when cancelled."""
    text, ok = QInputDialog.getText(parent, "Text annotation", "Text:", text=current)
    return text if ok else None
