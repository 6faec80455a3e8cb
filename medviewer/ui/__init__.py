"""The Qt user interface: the ONLY package that imports PySide6 or pyqtgraph.

Core packages never import this one; the entry point (``medviewer.__main__``) does, on the GUI path only.
"""
