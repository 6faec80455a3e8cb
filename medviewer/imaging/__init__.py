"""Imaging: stacks and volumes with LPS geometry, Modality LUT, VOI LUT and display maths (pure numpy)."""

from medviewer.imaging.stacks import SliceRef, Stack, build_stacks
from medviewer.imaging.volume import SliceError, Volume, load_volume
from medviewer.imaging.voi import CT_PRESETS, Window, auto_window, to_display, voi_window

__all__ = [
    "SliceRef", "Stack", "build_stacks", "SliceError", "Volume", "load_volume",
    "CT_PRESETS", "Window", "auto_window", "to_display", "voi_window",
]
