"""The intended-use gate (issue #10): header rules, blank images, the OOD score, population warnings, and how an
out-of-scope result travels through the CLI, the store, the worklist and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medviewer.inference.frames import read_frame  # noqa: E402
from medviewer.inference.scope import (  # noqa: E402
    HeaderFacts,
    header_reasons,
    is_blank,
    population_warnings,
    read_header_facts,
)
from medviewer.inference.scorer import OUT_OF_SCOPE, SCORED, SCORED_ANYWAY, ImageModel  # noqa: E402
from medviewer.io.sample import pydicom_data_file  # noqa: E402
from medviewer.training.dicomwrap import VARIANTS, wrap_film  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "pneumonia-chest224"


def _film(seed: int = 0) -> np.ndarray:
    """A chest-like 8-bit film: a bright mediastinum and ribs over darker lungs, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    img = 60 + 120 * np.exp(-((xx - 0.5) / 0.12) ** 2) + 40 * (np.sin(yy * 40) > 0.6) + 60 * (yy > 0.85)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- header rules
@pytest.mark.parametrize("facts, word", [
    (HeaderFacts(modality="CT"), "modality CT"),
    (HeaderFacts(modality="MR", body_part="HEAD"), "modality MR"),
    (HeaderFacts(modality=""), "modality missing"),
    (HeaderFacts(modality="CR", body_part="HAND"), "body part HAND"),
    (HeaderFacts(modality="DX", view_position="LL"), "view LL"),
    (HeaderFacts(modality="CR", descriptions="THORAX LATERAL"), "lateral view"),
    (HeaderFacts(modality="CR", samples_per_pixel=3, photometric_interpretation="RGB"), "colour image"),
    (HeaderFacts(modality="DX", number_of_frames=4), "multi-frame"),
])
def test_header_rules_name_the_reason(facts, word):
    reasons = header_reasons(facts)
    assert reasons and word in "; ".join(reasons)


@pytest.mark.parametrize("facts", [
    HeaderFacts(modality="CR"),
    HeaderFacts(modality="DX", body_part="CHEST", view_position="PA", photometric_interpretation="MONOCHROME1"),
    HeaderFacts(modality="CR", body_part="THORAX", view_position="AP", descriptions="CHEST AP PORTABLE"),
])
def test_frontal_chest_radiographs_pass_the_header_rules(facts):
    assert header_reasons(facts) == []


def test_population_warning_from_age_or_birth_date():
    pop = {"age_years": [1, 5]}
    assert population_warnings(HeaderFacts(patient_age_years=3.0), pop) == []
    assert population_warnings(HeaderFacts(patient_age_years=None), pop) == []
    warn = population_warnings(HeaderFacts(patient_age_years=45.0), pop)
    assert warn and "45 years" in warn[0] and "1-5" in warn[0]
    assert "months" in population_warnings(HeaderFacts(patient_age_years=0.25), pop)[0]


def test_header_facts_read_age_from_the_file(tmp_path):
    path = wrap_film(_film(), VARIANTS[1], tmp_path / "a.dcm", patient_age="045Y", view_position="PA")
    facts = read_header_facts(path)
    assert facts.modality == "CR" and facts.body_part == "CHEST" and facts.view_position == "PA"
    assert facts.patient_age_years == 45.0


def test_blank_images():
    assert is_blank(np.zeros((50, 50))) and is_blank(np.full((50, 50), 0.7))
    assert is_blank(np.array([[np.nan, 1.0], [0.0, 1.0]]))
    assert not is_blank(np.random.default_rng(0).random((50, 50)))


# ---------------------------------------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def model():
    if not (SHIPPED / "card.json").is_file():
        pytest.skip("the 224 model is not shipped in this checkout")
    return ImageModel.load(SHIPPED, device="cpu")


def test_ct_is_out_of_scope_and_score_anyway_is_recorded(model):
    frame = read_frame(pydicom_data_file("693_UNCI.dcm"))
    res = model.score_frame(frame, explain=None)
    assert res.status == OUT_OF_SCOPE and "modality CT" in res.scope_reason
    assert res.probabilities == {} and not res.positive and not res.has_call
    d = res.to_dict()
    assert d["status"] == "out_of_scope" and d["probability"] == {} and d["positive"] is None
    assert "outside the model's intended use (modality CT" in d["message"]
    forced = model.score_frame(frame, explain=None, force=True)
    assert forced.status == SCORED_ANYWAY and forced.has_call
    assert set(forced.probabilities) == {"normal", "pneumonia"}
    assert "scored anyway" in forced.scope_text()


def test_blank_and_noise_films_with_a_chest_header_are_gated(model, tmp_path):
    rng = np.random.default_rng(1)
    for name, img in {"blank": np.zeros((224, 224), np.uint8),
                      "noise": rng.integers(0, 256, (224, 224)).astype(np.uint8)}.items():
        path = wrap_film(img, VARIANTS[0], tmp_path / f"{name}.dcm", view_position="PA")
        res = model.score_frame(read_frame(path), explain=None)
        assert res.status == OUT_OF_SCOPE, (name, res)
        assert ("blank" if name == "blank" else "unlike the training films") in res.scope_reason


def test_kermany_test_films_pass_and_adults_get_a_warning(model, tmp_path):
    from medviewer.training import kermany

    root = kermany.DEFAULT_ROOT
    if not (root / "manifest.csv").is_file():
        pytest.skip("kermany-224 not available")
    rows = [r for r in kermany.read_manifest(root) if r["split"] == "test"][:40:4]
    passed = 0
    for k, r in enumerate(rows):
        path = wrap_film(kermany.load_image(root / r["path"]), VARIANTS[2], tmp_path / f"{k}.dcm")
        res = model.score_frame(read_frame(path), explain=None)
        passed += res.status == SCORED
        assert res.warnings == []  # aged 3: inside the training population
    assert passed >= len(rows) - 1
    path = wrap_film(kermany.load_image(root / rows[0]["path"]), VARIANTS[2], tmp_path / "adult.dcm",
                     patient_age="045Y")
    res = model.score_frame(read_frame(path), explain=None)
    assert res.warnings and "45 years" in res.warnings[0]


def test_cli_json_reports_out_of_scope(tmp_path):
    if not (SHIPPED / "card.json").is_file():
        pytest.skip("the 224 model is not shipped in this checkout")
    ct = str(pydicom_data_file("693_UNCI.dcm"))
    out = subprocess.run([sys.executable, "-m", "medviewer", "score", ct, "--json"], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    entry = json.loads(out.stdout)[0]
    assert entry["status"] == "out_of_scope" and entry["reason"].startswith("modality CT")
    assert entry["probability"] == {}
    out = subprocess.run([sys.executable, "-m", "medviewer", "score", ct, "--json", "--score-anyway"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    entry = json.loads(out.stdout)[0]
    assert entry["status"] == "scored_anyway" and 0 <= entry["probability"]["pneumonia"] <= 1


def test_store_worklist_and_report_say_outside_intended_use(model, tmp_path):
    import shutil

    from medviewer.io.scan import scan
    from medviewer.report.content import build_report
    from medviewer.store.cases import CaseStore

    folder = tmp_path / "study"
    folder.mkdir()
    ct = folder / "ct.dcm"
    shutil.copy(pydicom_data_file("693_UNCI.dcm"), ct)
    store = CaseStore(f"sqlite:///{tmp_path / 'cases.sqlite3'}")
    index = scan([str(folder)])
    store.register_index(index, str(folder))
    uid = next(iter(index.iter_series()))[1].study_instance_uid
    res = model.score_frame(read_frame(ct), explain=None)
    store.add_ai_result(uid, res)
    stored = store.ai_results(uid)[0]
    assert stored.status == "out_of_scope" and not stored.has_call and "modality CT" in stored.scope_reason
    row = store.worklist()[0]
    assert row.ai_score is None and row.ai_status == "out_of_scope" and "modality CT" in row.ai_scope_reason
    ai = build_report(store, uid).ai.results[0]
    assert ai.score is None and ai.positive is None
    assert "outside the model's intended use (modality CT" in ai.scope
    forced = model.score_frame(read_frame(ct), explain=None, force=True)
    store.add_ai_result(uid, forced)
    row = store.worklist()[0]
    assert row.ai_status == "scored_anyway" and row.ai_score is not None
