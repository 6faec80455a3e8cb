"""medviewer: a desktop radiology workstation with local AI.

The core packages (``io``, ``imaging``, ``jobs``, ``inference``, ``notes``, ``store``, ``report``) run headless;
only :mod:`medviewer.ui` imports Qt.
"""

__version__ = "0.1.0"
