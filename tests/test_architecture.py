"""The core stays headless: only medviewer.ui imports Qt/pyqtgraph, nothing but the entry point imports ui, and
importing the core (or running a headless subcommand) never loads Qt or torch."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "medviewer"
QT_MODULES = ("PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_only_ui_imports_qt_and_only_entry_point_imports_ui():
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        in_ui = rel.startswith("medviewer/ui/")
        for name in _imports(path):
            top = name.split(".")[0]
            if top in QT_MODULES and not in_ui:
                offenders.append(f"{rel} imports {name}")
            if name.startswith("medviewer.ui") and not in_ui and rel != "medviewer/__main__.py":
                offenders.append(f"{rel} imports {name}")
    assert offenders == []


def test_import_linter_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.skip("import-linter not installed")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_core_import_and_scan_load_no_qt_or_torch(tmp_path):
    code = (
        "import sys, json\n"
        "import medviewer.io, medviewer.imaging, medviewer.jobs, medviewer.cli, medviewer.config\n"
        "from medviewer.__main__ import main\n"
        "import io, contextlib\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    main(['scan', '--json', {str(tmp_path)!r}])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('PySide6','pyqtgraph','shiboken6','torch','transformers'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == []


def test_gui_start_path_does_not_import_torch_or_transformers(tmp_path):
    """The window opens without torch (the model is imported in a worker on first use)."""
    code = (
        "import os, sys\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        f"os.environ['MEDVIEWER_DATA_DIR'] = {str(tmp_path)!r}\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from medviewer.ui.main_window import MainWindow\n"
        "w = MainWindow(); w.show(); app.processEvents()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'captum')))\n"
        "w.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "XDG_CONFIG_HOME": str(tmp_path)})
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_inference_core_imports_without_torch_until_used():
    code = ("import sys\nimport medviewer.inference.scorer, medviewer.inference.card, "
            "medviewer.inference.preprocess\nprint('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
