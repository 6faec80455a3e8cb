"""Annotation tools in the image viewport: draw, select, move, edit, delete, undo/redo measurements and marks.

The data model and the measurement maths live in :mod:`medviewer.imaging.annotations` (headless); this package shows
them over an :class:`~medviewer.ui.viewer.ImageViewer` and lets the user edit them.

Coordinates
-----------
Annotations are stored in **image pixel coordinates** ``(x, y) = (column, row)``, continuous: pixel ``(i, j)``
covers ``[j, j+1) x [i, i+1)``. The viewer's ImageItem is scaled by the pixel spacing, so its ViewBox (the
"view") is in millimetres: ``view (x, y) = (column * spacing[2], row * spacing[1])`` with ``spacing`` the
volume's ``(slice, row, column)`` spacing (1 mm per pixel when the image has no PixelSpacing). The graphics items
live in view coordinates; :meth:`AnnotationLayer.image_to_view` / :meth:`AnnotationLayer.view_to_image` convert.

Interaction
-----------
* No tool (``set_tool(None)``, key N): the normal navigation mode (left-drag pans, right-drag window/level, wheel
  slices). A click on an annotation selects it, dragging its body moves it, dragging a handle edits it; each
  finished drag is ONE undo step.
* A tool (``set_tool("length")``...): left-drag on the image draws a length, arrow, rectangle or ellipse; an angle
  is three clicks (first end, vertex, second end) or a drag along the first arm (first end to vertex) and a click
  for the second end; a text is a click, the text then comes from ``text_provider``. The tool stays active (draw
  several in a row) until N or Escape. Existing annotations keep their handles editable but their bodies let the
  drag through (so one can draw over a large ROI). Escape cancels a drawing in progress and returns to no tool.
* Delete / Backspace delete the selected annotation; Ctrl+Z undoes, Ctrl+Shift+Z or Ctrl+Y redoes (through the
  layer's :class:`QUndoStack`). A double-click on a text annotation edits its text.

Each viewer owns one :class:`AnnotationLayer` (``viewer.annotations``) that knows the annotations of any number
of images (keyed by SOPInstanceUID and frame) and shows those of the image on screen.

Modules
-------
* :mod:`.layer`: :class:`AnnotationLayer`, the per-viewer controller (annotations, undo stack, selection, tool,
  what is shown);
* :mod:`.marks`: the graphics item of each annotation kind; :mod:`.label_item`: the measurement label item;
  :mod:`.style`: colours, pens, sizes;
* :mod:`.graphics_cache`: the graphics made per annotation, shown or parked;
* :mod:`.label_layout` (with the Qt-free :mod:`.label_geometry`): where the measurement labels go;
* :mod:`.measuring`: where an annotation's image is in the viewer's volume and what it measures;
  :mod:`.formatting`: the texts of labels and descriptions;
* :mod:`.drawing`: drawing a new annotation with a tool; :mod:`.commands`: the undo steps; :mod:`.points`:
  annotation point helpers;
* :mod:`.tools`: the tool table and its keys; :mod:`.actions`: a window's menu / toolbar actions;
  :mod:`.dialogs`: the text dialog;
* :mod:`.pg_adapter`: the only module using pyqtgraph internals (a pinned version range, tested).
"""

from __future__ import annotations

from medviewer.ui.annotations.actions import build_annotation_actions, sync_tool_actions
from medviewer.ui.annotations.dialogs import ask_text
from medviewer.ui.annotations.layer import AnnotationLayer
from medviewer.ui.annotations.marks import BoxMark, Mark, PolyMark, TextMark
from medviewer.ui.annotations.tools import SHORTCUTS, TOOLS

__all__ = [
    "SHORTCUTS",
    "TOOLS",
    "AnnotationLayer",
    "BoxMark",
    "Mark",
    "PolyMark",
    "TextMark",
    "ask_text",
    "build_annotation_actions",
    "sync_tool_actions",
]

# The names of the mark classes while this package was one module (tests import them).
_BoxMark, _PolyMark, _TextMark = BoxMark, PolyMark, TextMark
