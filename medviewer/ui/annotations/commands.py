"""The undo steps of an annotation layer: add, delete, modify.

The layer's annotations can change outside the undo stack (``AnnotationLayer.apply_external`` / ``remove_external``:
another viewport on the same series, the main window's copy). So a command never assumes the state it left: undoing
an add removes whatever version is there now (and a redo restores that version), undoing/redoing a modify of an
annotation removed meanwhile does nothing, and nothing raises.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtGui import QUndoCommand

from medviewer.imaging.annotations import Annotation

__all__ = ["AddCommand", "DeleteCommand", "ModifyCommand"]


class Store(Protocol):
    """What the commands change: the layer's annotations, edited without an undo step."""

    def get(self, uid: str) -> Annotation | None: ...

    def _put(self, ann: Annotation, emit: bool = True) -> None: ...

    def _drop(self, uid: str, emit: bool = True) -> bool: ...


class AddCommand(QUndoCommand):
    def __init__(self, layer: Store, ann: Annotation, text: str):
        super().__init__(text)
        self.layer, self.ann = layer, ann

    def redo(self) -> None:  # noqa: D102
        self.layer._put(self.ann)

    def undo(self) -> None:  # noqa: D102
        current = self.layer.get(self.ann.uid)
        if current is not None:
            self.ann = current  # changed externally since: a redo brings back what this undo removed
        self.layer._drop(self.ann.uid)  # emits annotation_deleted only when something was removed


class DeleteCommand(QUndoCommand):
    def __init__(self, layer: Store, ann: Annotation, text: str):
        super().__init__(text)
        self.layer, self.ann = layer, ann

    def redo(self) -> None:  # noqa: D102
        current = self.layer.get(self.ann.uid)
        if current is not None:
            self.ann = current
        self.layer._drop(self.ann.uid)

    def undo(self) -> None:  # noqa: D102
        self.layer._put(self.ann)


class ModifyCommand(QUndoCommand):
    def __init__(self, layer: Store, before: Annotation, after: Annotation, text: str):
        super().__init__(text)
        self.layer, self.before, self.after = layer, before, after

    def redo(self) -> None:  # noqa: D102
        if self.layer.get(self.after.uid) is not None:  # removed externally meanwhile: nothing to modify
            self.layer._put(self.after)

    def undo(self) -> None:  # noqa: D102
        if self.layer.get(self.before.uid) is not None:
            self.layer._put(self.before)
