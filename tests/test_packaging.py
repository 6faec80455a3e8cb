"""Package data: models/ and resources/ are found through importlib.resources in a checkout and in a non-editable
install. A wheel is built from a copy of the sources (offline: no build isolation, no index), must carry every file
of models/ and resources/, and, installed into a folder of its own (``pip install --target``) and run from outside
the checkout with the site machinery off (so the checkout's editable install cannot be picked up), must find its
models and resources inside that folder, load every model card, scan and score a DICOM file.

The PyInstaller build is not run here (minutes); ``bash packaging/build_installer.sh`` builds and smoke-tests it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from medviewer.config import models_dir, resources_dir

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def test_checkout_finds_top_level_models_and_resources(monkeypatch):
    """medviewer/models and medviewer/resources are symlinks to the repository's top-level folders."""
    monkeypatch.delenv("MEDVIEWER_MODELS_DIR", raising=False)
    assert (ROOT / "medviewer" / "models").is_symlink() and (ROOT / "medviewer" / "resources").is_symlink()
    assert models_dir() == (ROOT / "models").resolve()
    assert resources_dir() == (ROOT / "resources").resolve()
    monkeypatch.setenv("MEDVIEWER_MODELS_DIR", "/somewhere/else")
    assert models_dir() == Path("/somewhere/else")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A snapshot of the sources the wheel is built from (the checkout is never written to)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("models", "resources"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    shutil.copytree(ROOT / "medviewer", src / "medviewer", symlinks=True, ignore=ignore)
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    """medviewer's wheel, built offline (no build isolation, no index) from the snapshot."""
    src = source
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                             "--no-index", "--disable-pip-version-check", "-q", "-w", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("medviewer-*.whl")
    return built


@pytest.mark.slow
def test_wheel_carries_every_package_model_and_resource(source, wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    with zipfile.ZipFile(wheel) as zf:
        for folder in ("models", "resources"):
            expected = _files(source / folder)
            assert expected
            for rel, data in expected.items():
                member = f"medviewer/{folder}/{rel}"
                assert member in names, f"{member} missing from the wheel"
                assert zf.read(member) == data, f"{member} differs from {folder}/{rel}"
    for path in (source / "medviewer").rglob("*.py"):  # every module (rglob does not enter the symlinks)
        assert path.relative_to(source).as_posix() in names, f"{path} missing from the wheel"
    for card in (source / "models").glob("*/card.json"):  # every model's weights, by the card's own name
        weights = json.loads(card.read_text(encoding="utf-8"))["weights"]
        assert f"medviewer/models/{card.parent.name}/{weights}" in names


@pytest.mark.slow
def test_wheel_install_runs_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                             "--disable-pip-version-check", "-q", "--target", str(target), str(wheel)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (target / "medviewer" / "models").is_symlink()
    # -S: no site processing, so the checkout's editable install (a .pth finder in the venv) is not loaded; the
    # dependencies come from the venv's site-packages, medviewer only from the wheel's folder.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MEDVIEWER_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(target), *sorted(deps)]), MEDVIEWER_DATA_DIR=str(tmp_path / "data"),
               PYTHONNOUSERSITE="1")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    code = (
        "import json, medviewer\n"
        "from medviewer.config import models_dir, resources_dir\n"
        "from medviewer.inference.scorer import available_models\n"
        "from medviewer.inference.card import load_card\n"
        "cards = [load_card(c.path).name for c in available_models()]\n"
        "notes = json.loads((models_dir() / 'notes-minilm' / 'card.json').read_text())['name']\n"
        "print(json.dumps({'package': medviewer.__file__, 'models': str(models_dir()),\n"
        "                  'resources': str(resources_dir()), 'cards': cards, 'notes': notes,\n"
        "                  'qss': (resources_dir() / 'styles' / 'dark.qss').is_file()}))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    inside = str(target.resolve()) + os.sep
    assert info["package"].startswith(inside)
    assert info["models"].startswith(inside) and info["resources"].startswith(inside)
    assert info["qss"] and info["notes"] == "notes-minilm"
    assert sorted(info["cards"]) == sorted(p.parent.name for p in (ROOT / "models").glob("*/card.json")
                                           if p.parent.name != "notes-minilm")

    from medviewer.io.sample import pydicom_data_file

    try:
        chest = pydicom_data_file("RG1_UNCI.dcm")
    except FileNotFoundError:
        pytest.skip("pydicom-data is not installed")
    scan = subprocess.run([sys.executable, "-S", "-m", "medviewer", "scan", str(chest)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert scan.returncode == 0, scan.stderr
    assert "Series 1  CR" in scan.stdout and "1 instance" in scan.stdout, scan.stdout
    score = subprocess.run([sys.executable, "-S", "-m", "medviewer", "score", "--json", "--model", "pneumonia-cnn",
                            str(chest)], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert score.returncode == 0, score.stderr
    (entry,) = json.loads(score.stdout)
    assert 0.0 <= entry["probability"]["pneumonia"] <= 1.0, entry
