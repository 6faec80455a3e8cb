"""Case-note classifier: free text -> 14 ChestX-ray14 findings + "normal" (Qt-free; torch imported lazily)."""

from medviewer.notes.labels import FINDINGS, LABELS

__all__ = ["FINDINGS", "LABELS"]
