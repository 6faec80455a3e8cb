"""One frame path (issue #10): the viewer, ``medviewer score``, report export and re-score turn a (file, frame)
into the same model input, so one image gets one probability everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

torch = pytest.importorskip("torch")

from pydicom.dataset import Dataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from medviewer.imaging.stacks import build_stacks  # noqa: E402
from medviewer.imaging.volume import load_volume  # noqa: E402
from medviewer.inference.frames import FrameReadError, frame_from_volume, read_frame  # noqa: E402
from medviewer.inference.scorer import ImageModel  # noqa: E402
from medviewer.io.sample import pydicom_data_file  # noqa: E402
from medviewer.io.scan import scan  # noqa: E402
from medviewer.training.dicomwrap import VARIANTS, Variant, wrap_film  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "pneumonia-chest224"


def _film(seed: int) -> np.ndarray:
    """A real Kermany test film when ../shared/data is beside the checkout (then the default model gives a call),
    else a synthetic chest-like pattern (which the intended-use gate refuses: the paths must still agree)."""
    from medviewer.training import kermany

    if (kermany.DEFAULT_ROOT / "manifest.csv").is_file():
        rows = [r for r in kermany.read_manifest(kermany.DEFAULT_ROOT) if r["split"] == "test"]
        return kermany.load_image(kermany.DEFAULT_ROOT / rows[seed * 97 % len(rows)]["path"])
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    img = 50 + 140 * np.exp(-((xx - 0.5) / 0.13) ** 2) + 35 * (np.sin(yy * 38 + seed) > 0.5)
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


def _with_modality_lut_sequence(path: Path) -> None:
    """Replace RescaleSlope/Intercept by a non-linear Modality LUT Sequence (PS3.3 C.11.1): 4096 entries, 16 bit."""
    ds = pydicom.dcmread(path)
    for kw in ("RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth"):
        if kw in ds:
            del ds[kw]
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.ModalityLUTType = "US"
    item.LUTData = (65535 * (np.arange(4096) / 4095) ** 0.5).astype('<u2').tobytes()  # OW
    ds.ModalityLUTSequence = Sequence([item])
    ds.save_as(path)


def _with_voi_lut_sequence(path: Path) -> None:
    """Replace the window by a VOI LUT Sequence table (PS3.3 C.11.2.1.1)."""
    ds = pydicom.dcmread(path)
    for kw in ("WindowCenter", "WindowWidth"):
        if kw in ds:
            del ds[kw]
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.LUTData = (4095 * (np.arange(4096) / 4095) ** 1.5).astype('<u2').tobytes()  # OW
    item.LUTExplanation = "gamma 1.5"
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(path)


@pytest.fixture(scope="module")
def tricky_study(tmp_path_factory) -> tuple[Path, str]:
    """One study of tricky chest radiographs: MONOCHROME1 with a window, a Modality LUT Sequence, a VOI LUT
    Sequence, a non-square film with rescale, and the real MONOCHROME1 1955x1841 CR of pydicom-data."""
    folder = tmp_path_factory.mktemp("tricky")
    study = generate_uid()
    wrap_film(_film(1), VARIANTS[2], folder / "mono1.dcm", study_uid=study)
    mlut = Path(wrap_film(_film(2), Variant("mlut"), folder / "mlut.dcm", study_uid=study))
    _with_modality_lut_sequence(mlut)
    vlut = Path(wrap_film(_film(3), Variant("vlut"), folder / "vlut.dcm", study_uid=study))
    _with_voi_lut_sequence(vlut)
    wrap_film(_film(4), VARIANTS[4], folder / "nonsquare.dcm", study_uid=study)
    ds = pydicom.dcmread(pydicom_data_file("RG1_UNCI.dcm"))
    ds.StudyInstanceUID = study
    ds.save_as(folder / "rg1.dcm")
    return folder, study


def test_read_frame_applies_the_modality_lut_sequence(tricky_study):
    folder, _ = tricky_study
    frame = read_frame(folder / "mlut.dcm")
    ds = pydicom.dcmread(folder / "mlut.dcm")
    lut = (65535 * (np.arange(4096) / 4095) ** 0.5).astype(np.uint16)
    np.testing.assert_array_equal(frame.values, lut[ds.pixel_array].astype(np.float32))
    assert frame.window is None and frame.voi_lut is None
    vframe = read_frame(folder / "vlut.dcm")
    assert vframe.window is None and vframe.voi_lut is not None and vframe.voi_lut[0] == (4096, 0, 12)


def test_read_frame_errors_name_the_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not dicom")
    with pytest.raises(FrameReadError, match="notes.txt"):
        read_frame(bad)
    with pytest.raises(FrameReadError, match="no image frame 3"):
        read_frame(pydicom_data_file("RG1_UNCI.dcm"), 2)


def test_four_paths_give_identical_probabilities(tricky_study, tmp_path):
    if not (SHIPPED / "card.json").is_file():
        pytest.skip("the 224 model is not shipped in this checkout")
    from medviewer.report.export import score_case_radiographs
    from medviewer.store.cases import CaseStore
    from medviewer.store.rescore import rescore_case

    folder, study = tricky_study
    model = ImageModel.load(SHIPPED, device="cpu")

    def key(status: str, p: float | None) -> tuple:
        return status, None if p is None else round(float(p), 6)

    # 1. the viewer: the loaded volume of each series, as the GUI holds it
    viewer = {}
    index = scan([str(folder)])
    for _patient, _study, series in index.iter_series():
        for stack in build_stacks(series):
            vol = load_volume(stack)
            for k in range(vol.array.shape[0]):
                res = model.score_frame(frame_from_volume(vol, k), explain=None)
                viewer[res.sop_instance_uid] = key(res.status, res.probabilities.get("pneumonia"))
    assert len(viewer) == 5

    # 2. the CLI
    out = subprocess.run([sys.executable, "-m", "medviewer", "score", str(folder), "--json"], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    cli = {e["SOPInstanceUID"]: key(e["status"], e["probability"].get("pneumonia")) for e in json.loads(out.stdout)}

    # 3. report export (scores the case's radiographs into the store) and 4. re-score
    store = CaseStore(f"sqlite:///{tmp_path / 'cases.sqlite3'}")
    store.register_index(index, str(folder))
    n, errors = score_case_radiographs(store, study, model, explain=None)
    assert errors == [] and n == 5
    export = {r.sop_instance_uid: key(r.status, r.score if r.has_call else None) for r in store.ai_results(study)}
    first_ids = {r.id for r in store.ai_results(study)}
    summary = rescore_case(store, study, image_model=model, note_classifier=None)
    assert summary["image"]["n_scored"] == 5
    rescored = {r.sop_instance_uid: key(r.status, r.score if r.has_call else None)
                for r in store.ai_results(study) if r.id not in first_ids}

    assert viewer == cli == export == rescored
    from medviewer.training import kermany

    if (kermany.DEFAULT_ROOT / "manifest.csv").is_file():
        assert sum(v[0] == "scored" for v in viewer.values()) >= 4  # the wrapped test films are in scope
