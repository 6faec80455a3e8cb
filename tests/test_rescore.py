"""Re-scoring stored cases (medviewer.store.rescore) with the real models on a real chest CR, and the agreement of
AI calls with the radiologist's (medviewer.store.agreement).

The "new weights" are the shipped pneumonia model's weights, perturbed and saved as safetensors in tmp_path with a
card naming their SHA-256 and a threshold chosen so that the call on the CR flips. Expected values come from
independent computations (the models' own outputs, numpy, scikit-learn), never from numbers copied from the code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

torch = pytest.importorskip("torch")

from medviewer.inference.card import sha256_file  # noqa: E402
from medviewer.inference.frames import read_frame  # noqa: E402
from medviewer.inference.scorer import ImageModel, ScoreResult  # noqa: E402
from medviewer.io import scan  # noqa: E402
from medviewer.jobs import Cancelled, TaskState  # noqa: E402
from medviewer.store import CaseStore  # noqa: E402
from medviewer.store.agreement import agreement, auc_mann_whitney  # noqa: E402
from medviewer.store.rescore import (  # noqa: E402
    case_history,
    images_to_score,
    rescore,
    rescore_case,
    rescore_case_in_process,
    stale_models,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models"
NOTE_V1 = "Large right pleural effusion."
NOTE_V2 = "Large right pleural effusion. Cardiomegaly."


def _cr_path() -> Path:
    from medviewer.io.sample import pydicom_data_file

    try:
        return pydicom_data_file("RG1_UNCI.dcm")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def cr_folder(tmp_path_factory) -> tuple[Path, list[str]]:
    """Four one-image studies, copies of the real chest CR with new UIDs; the files of the 4th are broken later."""
    from pydicom.uid import generate_uid

    src = pydicom.dcmread(_cr_path())
    folder = tmp_path_factory.mktemp("crs")
    uids = []
    for k in range(4):
        ds = src.copy()
        ds.PatientName = f"TEST^CASE{k}"
        ds.PatientID = f"P{k}"
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDate = f"2024010{k + 1}"
        ds.save_as(folder / f"cr{k}.dcm", enforce_file_format=True)
        uids.append(str(ds.StudyInstanceUID))
    return folder, uids


@pytest.fixture(scope="module")
def models(tmp_path_factory, cr_folder) -> dict:
    """The shipped image model, a perturbed copy whose call on the CR is the opposite, and the notes model."""
    from safetensors.torch import save_file

    from medviewer.inference.weights import load_state_dict
    from medviewer.notes.model import NoteClassifier

    m0 = ImageModel.load("pneumonia-cnn", device="cpu")
    frame = read_frame(cr_folder[0] / "cr0.dcm")
    r0 = m0.score_frame(frame, explain=None, force=True)

    mdir = tmp_path_factory.mktemp("models")
    shutil.copytree(SHIPPED / "notes-minilm", mdir / "notes-minilm")
    new = mdir / "pneumonia-cnn"
    new.mkdir()
    gen = torch.Generator().manual_seed(0)
    state = {k: (v * (1 + 0.05 * torch.randn(v.shape, generator=gen)) if v.is_floating_point() else v).contiguous()
             for k, v in load_state_dict(SHIPPED / "pneumonia-cnn" / "model.safetensors").items()}
    save_file(state, str(new / "model.safetensors"))
    card = json.loads((SHIPPED / "pneumonia-cnn" / "card.json").read_text(encoding="utf-8"))
    card.update(version="1.0.1-test", weights_sha256=sha256_file(new / "model.safetensors"))
    (new / "card.json").write_text(json.dumps(card), encoding="utf-8")
    s1 = ImageModel.load(new, device="cpu").score_frame(frame, explain=None, force=True).probabilities["pneumonia"]
    # A threshold that makes the new weights call the opposite of the shipped ones.
    card["threshold"] = (s1 + 1.0) / 2.0 if r0.positive else s1 / 2.0
    (new / "card.json").write_text(json.dumps(card), encoding="utf-8")
    m1 = ImageModel.load(new, device="cpu")
    assert m1.card.weights_sha256 != m0.card.weights_sha256
    return {"m0": m0, "m1": m1, "r0": r0, "s1": s1, "dir": mdir, "new": new,
            "clf": NoteClassifier.load(threads=1)}


@pytest.fixture
def store(db_url, cr_folder):
    """A case store on each engine (SQLite, PostgreSQL: conftest ``db_url``) holding the CR cases."""
    folder = cr_folder[0]
    st = CaseStore(db_url)
    st.register_index(scan(folder), str(folder))
    yield st
    st.close()


def _break(store: CaseStore, uid: str, tmp_path: Path) -> str:
    """Point the case's image at a broken copy of its file (half the bytes), as after a failed copy."""
    img = store.case_images(uid)[0]
    broken = tmp_path / "broken.dcm"
    data = Path(img["path"]).read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    from sqlalchemy import update

    from medviewer.store import schema as S

    with store.engine.begin() as conn:
        conn.execute(update(S.case_images).where(S.case_images.c.sop_instance_uid == img["sop_instance_uid"])
                     .values(path=str(broken)))
    return str(broken)


# ---------------------------------------------------------------------------------------------- the main flow
def test_weights_change_rescore_history_stale_and_notes(store, models, cr_folder, tmp_path):
    _, uids = cr_folder
    a, b, c, d = uids
    m0, m1, clf = models["m0"], models["m1"], models["clf"]
    # Radiographs of a fresh case: the single CR image, frame 0, with its file.
    todo = images_to_score(store, a, "pneumonia-cnn")
    assert todo == [(store.case_images(a)[0]["sop_instance_uid"], 0, store.case_images(a)[0]["path"])]

    # Notes of case A, classified earlier by the "old" notes weights, with the radiologist's decisions.
    store.save_text(a, NOTE_V1)
    old = clf.classify([NOTE_V1])[0]
    decisions = {"Effusion": "rejected", "Nodule": "confirmed"}
    store.save_findings(a, old.to_dict()["findings"], decisions, "notes-minilm", "0.9.0", weights_sha256="0" * 64)
    store.save_text(a, NOTE_V2)  # then the note was edited

    run1 = rescore(store, [a, b, c], image_model=m0, notes=False, reason="initial")
    assert store.runs()[-1]["state"] == "finished" and store.runs()[-1]["n_done"] == 3
    assert store.runs()[-1]["models"] == {"pneumonia-cnn": m0.card.weights_sha256}

    stale = stale_models(store, models["dir"])  # the folder holds the new image weights and the real notes card
    assert sorted(stale["pneumonia-cnn"]) == sorted([a, b, c])
    assert stale["notes-minilm"] == [a]
    assert stale_models(store, SHIPPED)["pneumonia-cnn"] == []  # the shipped weights made them: not stale

    summaries = []
    run2 = rescore(store, [a, b, c, d], image_model=m1, note_classifier=clf, reason="weights changed",
                   on_case=summaries.append)
    assert run2 != run1
    run = store.runs()[-1]
    assert run["state"] == "finished" and run["n_done"] == 4 and run["n_cases"] == 4
    assert run["models"] == {"pneumonia-cnn": m1.card.weights_sha256,
                             "notes-minilm": clf.card["weights_sha256"]}

    # Both results are kept, each with its weights and a stored Grad-CAM heat map.
    results = store.ai_results(a, "pneumonia-cnn")
    assert [r.weights_sha256 for r in results] == [m0.card.weights_sha256, m1.card.weights_sha256]
    assert [r.run_id for r in results] == [run1, run2]
    for r in results:
        heat = r.heatmap()
        assert heat is not None and max(heat.shape) <= 256 and heat.max() > 0
    assert results[0].score == pytest.approx(models["r0"].probabilities["pneumonia"], abs=1e-6)
    assert results[1].score == pytest.approx(models["s1"], abs=1e-6)

    # The call flipped, and the summary and the history say so.
    sa = summaries[0]
    assert sa["study_instance_uid"] == a and sa["run_id"] == run2 and sa["errors"] == []
    assert sa["positive_before"] == models["r0"].positive and sa["positive_after"] == (not models["r0"].positive)
    assert sa["flipped"] is True
    hist = case_history(store, a, "pneumonia-cnn")
    assert len(hist) == 2
    assert [h["run_id"] for h in hist] == [run1, run2]
    assert [h["flipped"] for h in hist] == [False, True]
    assert [h["weights_sha256"] for h in hist] == [m0.card.weights_sha256, m1.card.weights_sha256]
    assert hist[1]["score_change"] == pytest.approx(results[1].score - results[0].score)

    # Stale before, not after.
    stale = stale_models(store, models["dir"])
    assert stale["pneumonia-cnn"] == [] and stale["notes-minilm"] == []
    assert sorted(stale_models(store, SHIPPED)["pneumonia-cnn"]) == sorted([a, b, c, d])

    # Notes: the latest note version was classified, the decisions were carried over.
    notes = store.note_results(a)
    assert len(notes) == 2
    assert notes[-1].decisions == decisions and notes[-1].run_id == run2
    assert notes[-1].weights_sha256 == clf.card["weights_sha256"]
    assert notes[-1].note_version_id == store.note_versions(a)[-1][0]
    expected = clf.classify([NOTE_V2])[0]
    assert [f["label"] for f in notes[-1].findings if f["positive"]] == expected.positives
    assert "Effusion" not in notes[-1].positives  # still rejected by the radiologist
    assert "Nodule" in notes[-1].positives  # still confirmed
    nh = case_history(store, a, "notes-minilm")
    assert len(nh) == 2
    # flips are present <-> absent; a move into or out of "uncertain" is a change, not a flip
    was, now = old.states, expected.states
    assert nh[1]["appeared"] == [k for k in expected.positives if was[k] == "absent"]
    assert nh[1]["disappeared"] == [k for k in old.positives if now[k] == "absent"]
    assert nh[1]["flipped"] == bool(nh[1]["appeared"] or nh[1]["disappeared"])
    assert [(c["label"], c["before"], c["after"]) for c in nh[1]["changes"]] == \
        [(k, was[k], now[k]) for k in now if was[k] != now[k]]
    assert nh[1]["uncertain"] == expected.uncertain
    assert [f["state"] for f in notes[-1].findings] == [expected.state(k) for k in expected.probabilities]
    assert summaries[0]["notes"]["decisions"] == decisions
    assert summaries[1]["notes"]["skipped"] == "no note"  # case B has no note: nothing classified
    assert store.note_results(b) == []

    # Case D had no results: its radiograph was scored for the first time.
    assert summaries[3]["positive_before"] is None and summaries[3]["score_after"] is not None
    assert summaries[3]["flipped"] is False


def test_broken_file_is_reported_not_raised(store, models, cr_folder, tmp_path):
    a, d = cr_folder[1][0], cr_folder[1][3]
    path = _break(store, d, tmp_path)
    summary = rescore_case(store, d, image_model=models["m0"])
    assert summary["image"]["n_images"] == 1 and summary["image"]["n_scored"] == 0
    assert len(summary["errors"]) == 1 and summary["errors"][0]["path"] == path
    assert summary["errors"][0]["error"]  # the exception's type and message
    assert summary["score_after"] is None and summary["flipped"] is False
    assert store.ai_results(d) == []
    assert any(e.kind == "rescore error" for e in store.events(d))

    # In a run the broken case does not stop the others.
    got = []
    rescore(store, [d, a], image_model=models["m0"], notes=False, on_case=got.append)
    assert store.runs()[-1]["state"] == "finished"
    assert got[0]["errors"] and got[1]["errors"] == [] and len(store.ai_results(a)) == 1


def test_cancel_keeps_done_cases_and_marks_run(store, models, cr_folder):
    _, uids = cr_folder
    a, b, c, _ = uids
    state = TaskState()
    seen = []

    def progress(done, total, uid):  # noqa: ANN001
        seen.append((done, total, uid))
        if done == 1:
            state.cancel()

    state.on_progress = progress
    with pytest.raises(Cancelled):
        rescore(store, [a, b, c], image_model=models["m0"], notes=False, state=state)
    run = store.runs()[-1]
    assert run["state"] == "cancelled" and run["n_done"] == 1 and run["n_cases"] == 3
    assert run["finished_at"] is not None
    assert seen == [(0, 3, ""), (1, 3, a)]
    assert len(store.ai_results(a)) == 1 and store.ai_results(b) == [] and store.ai_results(c) == []


def test_failed_run_is_marked(store, cr_folder):
    _, uids = cr_folder

    def boom(uid, run_id):  # noqa: ANN001
        raise RuntimeError("model process died")

    with pytest.raises(RuntimeError):
        rescore(store, uids[:2], image_model_name="pneumonia-cnn", notes=False, run_case=boom)
    assert store.runs()[-1]["state"] == "failed" and store.runs()[-1]["n_done"] == 0


def test_rescore_case_in_model_process_reloads_changed_weights(store, models, cr_folder, tmp_path):
    """Through a real spawned model process, as the GUI does; a model whose card changed on disk is reloaded."""
    from medviewer.jobs.process import ModelProcess

    _, uids = cr_folder
    a = uids[0]
    folder = tmp_path / "pneumonia-cnn"
    shutil.copytree(SHIPPED / "pneumonia-cnn", folder)
    proc = ModelProcess()
    try:
        state = TaskState()
        run_case = lambda uid, run: proc.call(  # noqa: E731
            state, rescore_case_in_process, store.url, uid, str(folder), False, run)
        rescore(store, [a], image_model_name=str(folder), notes=False, state=state, run_case=run_case)
        # New weights appear in the same folder: the cached model must not be reused.
        shutil.copy(models["new"] / "model.safetensors", folder / "model.safetensors")
        shutil.copy(models["new"] / "card.json", folder / "card.json")
        run2 = rescore(store, [a], image_model_name=str(folder), notes=False, state=state, run_case=run_case)
    finally:
        proc.shutdown()
    results = store.ai_results(a)
    assert [r.weights_sha256 for r in results] == [models["m0"].card.weights_sha256,
                                                    models["m1"].card.weights_sha256]
    assert store.runs()[-1]["models"] == {"pneumonia-cnn": models["m1"].card.weights_sha256}
    assert results[1].run_id == run2 and results[1].heatmap_png
    assert [h["flipped"] for h in case_history(store, a, "pneumonia-cnn")] == [False, True]


# ---------------------------------------------------------------------------------------------- note states
class _FakeNotes:
    """A notes classifier giving fixed states (NoteResult of medviewer.notes.model, 15 labels), no model loaded."""

    card = {"name": "notes-minilm", "version": "2.0.0-test", "weights_sha256": "f" * 64}

    def __init__(self, states: dict[str, str]):
        self.states = states

    def classify(self, texts: list[str]) -> list:
        from medviewer.notes.labels import LABELS
        from medviewer.notes.model import NoteResult

        p = {k: 0.9 if self.states.get(k) == "present" else 0.1 for k in LABELS}
        u = {k: 0.8 if self.states.get(k) == "uncertain" else 0.05 for k in LABELS}
        thr = dict.fromkeys(LABELS, 0.5)
        return [NoteResult(p, thr, "notes-minilm", "2.0.0-test", u, dict(thr)) for _ in texts]


def test_rescore_stores_note_states_and_history_tells_flips_from_uncertain_changes(db_url):
    """Re-scoring stores the findings with their states; a present <-> absent change is a flip (appeared /
    disappeared), a move into or out of "uncertain" is listed in ``changes`` and sets ``uncertain_changed`` but
    does not count as a flip; findings saved before three states compare as present / absent."""
    st = CaseStore(db_url)
    uid = "1.2.840.77"
    st.save_text(uid, "Effusion, mass and atelectasis. Possible pneumonia.")
    first = {"Effusion": "present", "Pneumonia": "uncertain", "Mass": "present", "Atelectasis": "present"}
    st.save_findings(uid, _FakeNotes(first).classify(["x"])[0].to_dict()["findings"], {"Pneumonia": "confirmed"},
                     "notes-minilm", "2.0.0-test", start_work=False)
    second = {"Effusion": "present", "Pneumonia": "present", "Mass": "uncertain", "Nodule": "present",
              "Edema": "uncertain"}  # Atelectasis: present -> absent
    run = st.start_run("test", {"notes-minilm": "f" * 64}, 1)
    summary = rescore_case(st, uid, note_classifier=_FakeNotes(second), run_id=run)["notes"]
    stored = st.note_results(uid)[-1]
    assert {f["label"]: f["state"] for f in stored.findings if f["state"] != "absent"} == second
    assert stored.run_id == run and stored.decisions == {"Pneumonia": "confirmed"}
    assert stored.uncertain == ["Mass", "Edema"]
    assert summary["appeared"] == ["Nodule"] and summary["disappeared"] == ["Atelectasis"]
    assert summary["flipped"] is True and summary["uncertain_changed"] is True
    assert summary["uncertain_before"] == ["Pneumonia"] and summary["uncertain_after"] == ["Mass", "Edema"]
    assert {(c["label"], c["before"], c["after"]) for c in summary["changes"]} == {
        ("Pneumonia", "uncertain", "present"), ("Mass", "present", "uncertain"), ("Nodule", "absent", "present"),
        ("Atelectasis", "present", "absent"), ("Edema", "absent", "uncertain")}

    # only hedges change: not a flip
    third = {**second, "Pneumonia": "uncertain", "Edema": "absent"}
    third.pop("Edema")
    summary = rescore_case(st, uid, note_classifier=_FakeNotes(third), run_id=run)["notes"]
    assert summary["flipped"] is False and summary["uncertain_changed"] is True
    assert summary["appeared"] == [] and summary["disappeared"] == []

    hist = case_history(st, uid, "notes-minilm")
    assert [h["flipped"] for h in hist] == [False, True, False]
    assert [h["uncertain_changed"] for h in hist] == [False, True, True]
    assert hist[0]["changes"] == [] and hist[0]["uncertain"] == ["Pneumonia"]
    assert hist[0]["effective"] == ["Atelectasis", "Effusion", "Mass", "Pneumonia"] and \
        hist[0]["effective_uncertain"] == []  # the reader confirmed the hedged pneumonia
    assert [(c["label"], c["before"], c["after"]) for c in hist[2]["changes"]] == [
        ("Pneumonia", "present", "uncertain"), ("Edema", "uncertain", "absent")]
    assert hist[2]["positives"] == ["Effusion", "Nodule"]
    assert hist[2]["uncertain"] == ["Mass", "Pneumonia"]  # in labels order

    # a result saved before three states (no "state"): present when positive, else absent
    old_uid = "1.2.840.78"
    st.save_text(old_uid, "Effusion?")
    st.save_findings(old_uid, [{"label": "Effusion", "probability": 0.7, "threshold": 0.5, "positive": True}], {},
                     "notes-minilm", "1.0.0")
    legacy = rescore_case(st, old_uid, note_classifier=_FakeNotes({"Effusion": "uncertain"}))["notes"]
    assert legacy["before"] == ["Effusion"] and legacy["uncertain_before"] == []
    assert legacy["changes"] == [{"label": "Effusion", "before": "present", "after": "uncertain"}]
    assert legacy["flipped"] is False and legacy["uncertain_changed"] is True
    st.close()


def test_archive_run_counts_note_flips_apart_from_uncertain_changes(tmp_path, monkeypatch):
    """rescore_archive's summary counts cases with a note flip (present <-> absent) and cases with a finding now or
    no longer uncertain separately (through rescore_case with a stand-in classifier in place of the model
    process)."""
    from medviewer.store import archive

    st = CaseStore(path=tmp_path / "archive.sqlite3")
    cases = {"1.9.1": ({"Effusion": "present"}, {"Effusion": "absent"}),  # flip
             "1.9.2": ({"Effusion": "present"}, {"Effusion": "uncertain"}),  # hedge only
             "1.9.3": ({"Mass": "uncertain"}, {"Mass": "uncertain"})}  # nothing changed
    for uid, (before, _) in cases.items():
        st.save_text(uid, f"note of {uid}")
        st.save_findings(uid, _FakeNotes(before).classify(["x"])[0].to_dict()["findings"], {}, "notes-minilm",
                         "2.0.0-test")

    def fake_if_stale(db_url, uid, image_model_name, notes, run_id, weights, one_thread=False):  # noqa: ANN001
        return {**rescore_case(st, uid, note_classifier=_FakeNotes(cases[uid][1]), run_id=run_id), "skipped": False}

    monkeypatch.setattr(archive, "rescore_if_stale", fake_if_stale)
    summary = archive.rescore_archive(st, list(cases), image_model_name=None, notes=True)
    assert (summary.n_rescored, summary.n_failed) == (3, 0)
    assert summary.n_notes_flipped == 1 and summary.n_notes_uncertain_changed == 1
    assert summary.n_flipped == 0  # the image call: no image model in this run
    assert summary.to_dict()["n_notes_flipped"] == 1
    assert [f["state"] for f in st.note_results("1.9.2")[-1].findings if f["label"] == "Effusion"] == ["uncertain"]
    st.close()


# ---------------------------------------------------------------------------------------------- agreement
def _result(sop: str, p: float, threshold: float = 0.5) -> ScoreResult:
    return ScoreResult(sop_instance_uid=sop, model="pneumonia-cnn", version="1", weights_sha256="ab" * 32,
                       probabilities={"normal": 1 - p, "pneumonia": p}, threshold=threshold,
                       positive_label="pneumonia", positive=p >= threshold)


def test_agreement_counts_and_auc_match_sklearn(tmp_path, db_url):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    st = CaseStore(db_url)
    truth_scores, truth_ai, truth_rad, overrides = [], [], [], 0
    for k in range(40):
        uid = f"1.2.3.{k}"
        rad = bool(rng.random() < 0.45)
        n_img = 1 + int(k % 3 == 0)
        # Scores rounded to 0.1 so that ties between cases occur; positives score higher on average.
        ps = [float(np.clip(np.round(rng.normal(0.62 if rad else 0.38, 0.2), 1), 0, 1)) for _ in range(n_img)]
        for j, p in enumerate(ps):
            st.add_ai_result(uid, _result(f"{uid}.{j}", p))
        if k % 5 == 0:  # an earlier, opposite call: only the latest counts
            st.add_radiologist_score(uid, "pneumonia", not rad)
        st.add_radiologist_score(uid, "pneumonia", rad, confidence=4)
        truth_scores.append(max(ps))
        truth_ai.append(max(ps) >= 0.5)
        truth_rad.append(rad)
        overrides += int((ps[-1] >= 0.5) != rad)  # the call reviews the case's latest AI result
    st.add_ai_result("9.9.1", _result("9.9.1.0", 0.9))  # AI only
    st.add_radiologist_score("9.9.2", "pneumonia", True)  # radiologist only
    st.add_ai_result("9.9.3", _result("9.9.3.0", 0.2))
    st.add_radiologist_score("9.9.3", "effusion", True)  # another finding
    got = agreement(st, "pneumonia-cnn", "pneumonia")
    a, y = np.array(truth_ai), np.array(truth_rad)
    assert got["n"] == 40 and got["n_positive"] == int(y.sum())
    assert (got["tp"], got["fp"], got["tn"], got["fn"]) == (int((a & y).sum()), int((a & ~y).sum()),
                                                            int((~a & ~y).sum()), int((~a & y).sum()))
    assert got["sensitivity"] == pytest.approx((a & y).sum() / y.sum())
    assert got["specificity"] == pytest.approx((~a & ~y).sum() / (~y).sum())
    assert got["auc"] == pytest.approx(roc_auc_score(y, truth_scores), abs=1e-12)
    assert got["overrides"] == overrides
    assert sorted(got["study_uids"]) == sorted(f"1.2.3.{k}" for k in range(40))

    # One class empty: AUC and the undefined rate are None; an unknown model gives n = 0.
    st2 = CaseStore(path=tmp_path / "one.sqlite3")
    for k, p in enumerate([0.2, 0.7, 0.9]):
        st2.add_ai_result(f"5.{k}", _result(f"5.{k}.0", p))
        st2.add_radiologist_score(f"5.{k}", "pneumonia", True)
    one = agreement(st2, "pneumonia-cnn", "pneumonia")
    assert one["n"] == 3 and one["auc"] is None and one["specificity"] is None
    assert one["sensitivity"] == pytest.approx(2 / 3)
    none = agreement(st2, "other-model", "pneumonia")
    assert none["n"] == 0 and none["auc"] is None and none["sensitivity"] is None
    st.close()
    st2.close()


def test_auc_mann_whitney_with_ties_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        y = rng.random(n) < 0.5
        if y.all() or not y.any():
            y[0] = not y[0]
        s = np.round(rng.random(n) + 0.3 * y, 1)
        assert auc_mann_whitney(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc_mann_whitney([0.1, 0.2], [True, True]) is None
    assert auc_mann_whitney([0.5, 0.5], [True, False]) == 0.5


# ---------------------------------------------------------------------------------------------- default model change
def test_new_default_model_marks_old_default_cases_stale_and_history_spans_both(tmp_path, cr_folder):
    """Cases scored by the 28 x 28 model are stale for the 224 model (its card supersedes it); re-scoring them
    adds the new model's call and the history shows both, with the flip between them."""
    chest224 = SHIPPED / "pneumonia-chest224"
    if not (chest224 / "card.json").is_file():
        pytest.skip("the 224 model is not shipped in this checkout")
    mdir = tmp_path / "models"
    for name in ("pneumonia-cnn", "pneumonia-chest224", "notes-minilm"):
        shutil.copytree(SHIPPED / name, mdir / name)
    folder, uids = cr_folder
    st = CaseStore(path=tmp_path / "change.sqlite3")
    st.register_index(scan(str(folder / "cr0.dcm")), str(folder))
    uid = uids[0]
    sop = st.case_images(uid)[0]["sop_instance_uid"]
    old = ImageModel.load(mdir / "pneumonia-cnn", device="cpu")
    res = old.score_frame(read_frame(folder / "cr0.dcm"), explain=None)
    st.add_ai_result(uid, res)
    assert st.ai_results(uid)[0].sop_instance_uid == sop
    assert uid in stale_models(st, mdir)["pneumonia-chest224"]
    assert uid not in stale_models(st, mdir)["pneumonia-cnn"]

    new = ImageModel.load(mdir / "pneumonia-chest224", device="cpu")
    summary = rescore_case(st, uid, image_model=new)
    assert summary["image"]["n_images"] == 1 and summary["image"]["model"] == "pneumonia-chest224"
    assert uid not in stale_models(st, mdir)["pneumonia-chest224"]
    hist = case_history(st, uid, "pneumonia-chest224")
    assert [h["model"] for h in hist] == ["pneumonia-cnn", "pneumonia-chest224"]
    latest = st.latest_ai_results(uid, "pneumonia-chest224")[0]
    if latest.has_call:  # the flip is reported between the two models' calls
        assert hist[1]["flipped"] == (latest.positive != res.positive)
    else:  # the new model's gate refused the adult film: no call, nothing to compare
        assert hist[1]["status"] == "out_of_scope" and hist[1]["flipped"] is False
    st.close()


# ---------------------------------------------------------------------------------------------- recipe change
def test_new_inference_recipe_of_the_same_weights_makes_old_results_stale(tmp_path, cr_folder):
    """A card that runs the same weights with another inference recipe (a new version with TTA views: the weights
    SHA-256 is unchanged) makes the old version's results stale: stale_models lists the case, the archive run does
    not skip it, the model process reloads the model; re-scoring makes the case current again."""
    from medviewer.inference import service
    from medviewer.store.archive import is_current
    from medviewer.store.rescore import _cached_image_model

    mdir = tmp_path / "models"
    for name in ("pneumonia-cnn", "notes-minilm"):
        shutil.copytree(SHIPPED / name, mdir / name)
    folder, uids = cr_folder
    st = CaseStore(path=tmp_path / "recipe.sqlite3")
    st.register_index(scan(str(folder / "cr0.dcm")), str(folder))
    uid = uids[0]
    path = str(mdir / "pneumonia-cnn")
    old = ImageModel.load(path, device="cpu")
    rescore_case(st, uid, image_model=old)
    weights = {"pneumonia-cnn": old.card.weights_sha256}
    assert uid not in stale_models(st, mdir)["pneumonia-cnn"]
    assert is_current(st, uid, weights, "pneumonia-cnn", None, old.card.version)
    service._MODELS.pop(path, None)  # noqa: SLF001 - the model process's cache, here in this process
    cached = _cached_image_model(path)

    card_path = mdir / "pneumonia-cnn" / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.update(version="1.1.0-test", inference={"tta": ["identity", "hflip"]})
    card_path.write_text(json.dumps(card), encoding="utf-8")
    new = ImageModel.load(path, device="cpu")
    assert new.card.weights_sha256 == old.card.weights_sha256 and new.card.tta_views == ["identity", "hflip"]

    assert stale_models(st, mdir)["pneumonia-cnn"] == [uid]
    assert is_current(st, uid, weights, "pneumonia-cnn", None)  # by the weights alone it would look current
    assert not is_current(st, uid, weights, "pneumonia-cnn", None, "1.1.0-test")
    reloaded = _cached_image_model(path)
    assert reloaded is not cached and reloaded.card.version == "1.1.0-test"
    service._MODELS.pop(path, None)  # noqa: SLF001

    rescore_case(st, uid, image_model=new)
    assert stale_models(st, mdir)["pneumonia-cnn"] == []
    assert is_current(st, uid, weights, "pneumonia-cnn", None, "1.1.0-test")
    latest = st.latest_ai_results(uid, "pneumonia-cnn")[0]
    assert latest.model_version == "1.1.0-test" and latest.weights_sha256 == old.card.weights_sha256
    expect = new.score_frame(read_frame(folder / "cr0.dcm"), explain=None, force=True)
    assert latest.score == pytest.approx(expect.probabilities["pneumonia"], abs=1e-6)
    # the mirrored view changes the probability: the stored score is the new recipe's
    plain = old.score_frame(read_frame(folder / "cr0.dcm"), explain=None, force=True)
    assert abs(plain.probabilities["pneumonia"] - latest.score) > 1e-6
    assert [h["model_version"] for h in case_history(st, uid, "pneumonia-cnn")] == [old.card.version,
                                                                                   "1.1.0-test"]
    st.close()


def test_new_decision_rule_of_the_same_notes_weights_makes_old_note_results_stale(tmp_path, monkeypatch):
    """The notes model's card can change its decision rule (a new version) with the same adapter weights: results
    of the old version are then stale (stale_models, the archive run's is_current), the model process reloads the
    classifier, and re-classifying makes the case current again."""
    pytest.importorskip("transformers")
    from medviewer.notes import service
    from medviewer.notes.model import NoteClassifier
    from medviewer.store import rescore as rescore_mod
    from medviewer.store.archive import is_current

    mdir = tmp_path / "models"
    shutil.copytree(SHIPPED / "notes-minilm", mdir / "notes-minilm")
    monkeypatch.setattr(rescore_mod, "_models_dir", lambda models_dir=None: mdir)
    monkeypatch.setattr(service, "_CACHE", {})
    st = CaseStore(path=tmp_path / "notes.sqlite3")
    uid = "1.2.840.78"
    st.save_text(uid, NOTE_V1)
    old = NoteClassifier.load(mdir / "notes-minilm")
    rescore_case(st, uid, note_classifier=old)
    weights = {"notes-minilm": old.card["weights_sha256"]}
    assert stale_models(st, mdir)["notes-minilm"] == []
    assert is_current(st, uid, weights, None, "notes-minilm", notes_version=old.card["version"])
    cached = rescore_mod._cached_note_classifier()  # noqa: SLF001 - the model process's cache, here

    card_path = mdir / "notes-minilm" / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.update(version="9.9.9-test", decision="argmax")
    card_path.write_text(json.dumps(card), encoding="utf-8")

    assert stale_models(st, mdir)["notes-minilm"] == [uid]
    assert is_current(st, uid, weights, None, "notes-minilm")  # by the weights alone it would look current
    assert not is_current(st, uid, weights, None, "notes-minilm", notes_version="9.9.9-test")
    reloaded = rescore_mod._cached_note_classifier()  # noqa: SLF001
    assert reloaded is not cached and reloaded.card["version"] == "9.9.9-test" and reloaded.decision == "argmax"

    rescore_case(st, uid, note_classifier=reloaded)
    assert stale_models(st, mdir)["notes-minilm"] == []
    assert is_current(st, uid, weights, None, "notes-minilm", notes_version="9.9.9-test")
    assert st.note_results(uid)[-1].model_version == "9.9.9-test"
