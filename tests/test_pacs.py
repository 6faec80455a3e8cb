"""PACS connectivity against a real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``), started by the tests on free
loopback ports with our AE title in DicomModalities: echo, find at each level, C-GET, C-MOVE, C-STORE, QIDO-RS,
WADO-RS, STOW-RS, a retrieval cancelled half-way and resumed, a PACS that rejects us, and one that goes away
mid-transfer. Under CI (``CI=true``) a missing Orthanc fails instead of skipping: .ci/run installs it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pydicom
import pytest

from medviewer.net import dicomweb, dimse, service
from medviewer.net.nodes import PacsError, PacsNode, parse_node
from tests.orthanc_server import LocalOrthanc, available, free_port
from medviewer.net.query import Query
from tests.conftest import dicom_files, pydicom_charset_file, pydicom_testfile

if not available():
    if os.environ.get("CI"):
        pytest.fail("Orthanc is not installed (.ci/run installs Debian's orthanc and orthanc-dicomweb)",
                    pytrace=False)
    pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)", allow_module_level=True)


@pytest.fixture(scope="module")
def scp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, ge_dir, scp_port):
    """An Orthanc holding the GE head CT (28 slices), a Japanese-named MR (ISO 2022 IR 87) and a JPEG-LS MR."""
    folder = tmp_path_factory.mktemp("orthanc")
    with LocalOrthanc(folder, our_port=scp_port, users={"reader": "pw-for-tests"}) as server:
        ge = dicom_files(ge_dir)
        assert server.upload(ge) == len(ge)
        server.upload([pydicom_charset_file("chrH31.dcm"), pydicom_testfile("MR_small_jpeg_ls_lossless.dcm")])
        server.ge_files = ge
        yield server


@pytest.fixture(scope="module")
def ge_study(ge_dir) -> tuple[str, str, set[str]]:
    uids = set()
    study = series = ""
    for p in dicom_files(ge_dir):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        uids.add(str(ds.SOPInstanceUID))
        study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
    return study, series, uids


@pytest.fixture
def web(pacs, monkeypatch) -> PacsNode:
    monkeypatch.setenv("MEDVIEWER_PACS_SECRET", "pw-for-tests")
    return pacs.web_node(auth="basic", username="reader")


def _sops(folder: Path) -> set[str]:
    return {p.stem for p in folder.rglob("*.dcm")}


# ----------------------------------------------------------------------------------------------- nodes
def test_parse_node_forms(tmp_path):
    from medviewer.net.nodes import NetSettings

    s = NetSettings(nodes=[PacsNode(name="main", ae_title="PACS", host="pacs.example", port=104)])
    assert parse_node("main", s).host == "pacs.example"
    n = parse_node("ORTHANC@127.0.0.1:4242", s)
    assert (n.ae_title, n.host, n.port, n.is_dicomweb) == ("ORTHANC", "127.0.0.1", 4242, False)
    assert parse_node("http://h:8042/dicom-web/", s).url == "http://h:8042/dicom-web"
    for bad in ("nonsense", "TOO_LONG_AE_TITLE_X@h:1", "A@h:99999", "ftp://x"):
        with pytest.raises(PacsError) as e:
            parse_node(bad, s)
        assert e.value.cause == "bad-input"


def test_settings_round_trip_without_secrets(tmp_path, monkeypatch):
    from medviewer.net.nodes import NetSettings, load_settings, save_settings

    monkeypatch.setenv("MEDVIEWER_PACS_SECRET", "top-secret-value")
    node = PacsNode(name="web", url="https://pacs/dicom-web", auth="basic", username="u")
    path = save_settings(NetSettings(nodes=[node], scp_port=4006), tmp_path / "nodes.json")
    assert "top-secret-value" not in path.read_text()
    back = load_settings(path)
    assert back.nodes == [node] and back.scp_port == 4006
    assert back.nodes[0].secret() == "top-secret-value"
    (tmp_path / "bad.json").write_text("{not json")
    assert load_settings(tmp_path / "bad.json").nodes == []


# ----------------------------------------------------------------------------------------------- echo / find
def test_echo_dimse_and_dicomweb(pacs, web):
    assert 0 < service.echo(pacs.node()) < 10
    assert 0 < service.echo(web) < 10


def test_find_each_level_dimse(pacs, ge_study):
    node = pacs.node()
    study_uid, series_uid, uids = ge_study
    patients = service.find(node, Query(level="PATIENT"))
    assert len(patients) == 3
    studies = service.find(node, Query(level="STUDY", modality="CT"))
    assert [s["StudyInstanceUID"] for s in studies] == [study_uid]
    assert studies[0]["NumberOfStudyRelatedInstances"] == str(len(uids))
    series = service.find(node, Query(level="SERIES", study_uid=study_uid))
    assert [s["SeriesInstanceUID"] for s in series] == [series_uid] and series[0]["Modality"] == "CT"
    images = service.find(node, Query(level="IMAGE", study_uid=study_uid))
    assert {r["SOPInstanceUID"] for r in images} == uids
    assert service.find(node, Query(level="STUDY", patient_name="NOBODY*")) == []
    assert len(service.find(node, Query(level="STUDY", study_date="19000101-19000102"))) == 0


def test_find_decodes_specific_character_set(pacs, web):
    ref = pydicom.dcmread(pydicom_charset_file("chrH31.dcm"))
    expected = str(ref.PatientName)
    assert any(ord(c) > 0x3000 for c in expected)  # real Japanese characters, not escapes
    family = expected.split("^")[0][:2]
    for node in (pacs.node(), web):
        rows = service.find(node, Query(level="STUDY", patient_id=str(ref.PatientID)))
        assert len(rows) == 1, node.describe()
        assert rows[0]["PatientName"] == expected, node.describe()
    # wildcard on the name
    rows = service.find(pacs.node(), Query(level="PATIENT", patient_name=family + "*"))
    assert [r["PatientName"] for r in rows] == [expected]


def test_qido_matches_c_find(pacs, web, ge_study):
    study_uid, _, uids = ge_study
    for q in (Query(level="STUDY"), Query(level="STUDY", modality="MR"), Query(level="SERIES", study_uid=study_uid),
              Query(level="STUDY", patient_name="*")):
        key = "SeriesInstanceUID" if q.level == "SERIES" else "StudyInstanceUID"
        assert sorted(r[key] for r in service.find(web, q)) == sorted(r[key] for r in service.find(pacs.node(), q))
    assert {r["SOPInstanceUID"] for r in service.find(web, Query(level="IMAGE", study_uid=study_uid))} == uids


# ----------------------------------------------------------------------------------------------- retrieve
def test_c_get_study_registers_case(pacs, ge_study, tmp_path, monkeypatch):
    from medviewer.store.cases import CaseStore

    study_uid, _, uids = ge_study
    seen = []
    result = service.retrieve(pacs.node(), study_uid, tmp_path / "cache", progress=lambda d, t, m: seen.append(d))
    assert (len(result.files), result.total, result.failed, result.cancelled) == (len(uids), len(uids), 0, False)
    assert _sops(tmp_path / "cache") == uids
    assert seen == list(range(1, len(uids) + 1))  # progress per image
    store = CaseStore(path=tmp_path / "cases.db")
    ids, skipped = service.register_retrieved(store, tmp_path / "cache", study_uid)
    assert len(ids) == 1 and skipped == []
    assert {i["sop_instance_uid"] for i in store.case_images(study_uid)} == uids
    # bytes as sent: the pixel data of a retrieved slice equals the original's
    orig = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in pacs.ge_files[:2]}
    for sop, p in orig.items():
        got = next((tmp_path / "cache").rglob(f"{sop}.dcm"))
        assert pydicom.dcmread(got).PixelData == pydicom.dcmread(p).PixelData
    store.close()


def test_c_get_keeps_compressed_transfer_syntax(pacs, tmp_path):
    ref = pydicom.dcmread(pydicom_testfile("MR_small_jpeg_ls_lossless.dcm"))
    result = service.retrieve(pacs.node(), str(ref.StudyInstanceUID), tmp_path, series_uid=str(ref.SeriesInstanceUID))
    assert len(result.files) == 1
    got = pydicom.dcmread(result.files[0])
    assert got.file_meta.TransferSyntaxUID == ref.file_meta.TransferSyntaxUID  # JPEG-LS kept, not transcoded
    assert (got.pixel_array == ref.pixel_array).all()


def test_storage_contexts_respect_limit():
    classes = [f"1.2.840.10008.5.1.4.1.1.{i}" for i in range(1, 60)]
    cx = dimse.storage_contexts(classes)
    assert len(cx) == dimse.MAX_CONTEXTS - 1
    assert all(syntaxes == dimse.UNCOMPRESSED for _, syntaxes in cx[:59])
    one = dimse.storage_contexts(["1.2.840.10008.5.1.4.1.1.2"])
    assert len(one) == 1 + len(dimse.compressed_syntaxes())


def test_c_move_to_our_storage_scp(pacs, ge_study, scp_port, tmp_path):
    study_uid, series_uid, uids = ge_study
    with dimse.StorageSCP(tmp_path, "MEDVIEWER", port=scp_port) as scp:
        result = service.retrieve(pacs.node(), study_uid, tmp_path, series_uid=series_uid, move=True, scp=scp)
    assert (len(result.files), result.failed) == (len(uids), 0)
    assert _sops(tmp_path) == uids


def test_c_move_to_unknown_destination(pacs, ge_study, tmp_path):
    study_uid, _, _ = ge_study
    with dimse.StorageSCP(tmp_path, "NOTKNOWN", port=0) as scp:
        with pytest.raises(PacsError) as e:
            dimse.move(pacs.node(), study_uid, scp)
    assert e.value.cause == "unknown-ae" and "NOTKNOWN" in str(e.value)


def test_wado_rs_retrieve_and_resume(web, ge_study, tmp_path):
    study_uid, _, uids = ge_study
    first = dicomweb.get(web, study_uid, tmp_path)
    assert len(first.files) == len(uids) and _sops(tmp_path) == uids
    gone = sorted(tmp_path.rglob("*.dcm"))[:5]
    for p in gone:
        p.unlink()
    again = dicomweb.get(web, study_uid, tmp_path)
    assert (len(again.files), again.already) == (5, len(uids) - 5)
    assert _sops(tmp_path) == uids


def test_cancel_half_way_then_resume(pacs, ge_study, tmp_path):
    study_uid, _, uids = ge_study
    cancel = threading.Event()

    def progress(done: int, total: int | None, _m: str) -> None:
        if done >= total // 2:
            cancel.set()

    first = service.retrieve(pacs.node(), study_uid, tmp_path, progress=progress, cancel=cancel)
    assert first.cancelled
    have = _sops(tmp_path)
    assert len(uids) // 2 <= len(have) < len(uids)
    assert not list(tmp_path.rglob("*.part"))  # nothing half-written looks complete
    for p in tmp_path.rglob("*.dcm"):
        pydicom.dcmread(p)  # every kept file is whole
    second = service.retrieve(pacs.node(), study_uid, tmp_path)
    assert not second.cancelled and second.already == len(have)
    assert len(second.files) == len(uids) - len(have)
    assert _sops(tmp_path) == uids


def test_no_matches(pacs, web, tmp_path):
    for node in (pacs.node(), web):
        with pytest.raises(PacsError) as e:
            service.retrieve(node, "1.2.3.4.5.6.7", tmp_path)
        assert e.value.cause == "no-matches"


# ----------------------------------------------------------------------------------------------- rejection
def test_pacs_rejects_wrong_called_ae(pacs):
    node = PacsNode(name="x", ae_title="NOT_ORTHANC", host="127.0.0.1", port=pacs.dicom_port)
    with pytest.raises(PacsError) as e:
        service.echo(node)
    # the rejection's reason, or (when the PACS closes the socket before pynetdicom reads its A-ASSOCIATE-RJ) the
    # called AE title named in the message
    assert e.value.cause in ("unknown-ae", "rejected") and "NOT_ORTHANC" in str(e.value)


def test_pacs_refuses_unknown_calling_ae(pacs, ge_study, tmp_path):
    stranger = pacs.node(our_ae="STRANGER")
    for op in (lambda: service.find(stranger, Query(level="STUDY")),
               lambda: service.retrieve(stranger, ge_study[0], tmp_path)):
        with pytest.raises(PacsError) as e:
            op()
        assert e.value.cause == "unknown-ae" and "STRANGER" in str(e.value)


def test_dicomweb_bad_credentials(pacs, monkeypatch):
    node = pacs.web_node(auth="basic", username="reader")
    monkeypatch.delenv("MEDVIEWER_PACS_SECRET", raising=False)
    with pytest.raises(PacsError) as e:
        service.echo(node)
    assert e.value.cause == "bad-input"
    monkeypatch.setenv("MEDVIEWER_PACS_SECRET", "wrong")
    with pytest.raises(PacsError) as e:
        service.echo(node)
    assert e.value.cause == "rejected" and "wrong" not in str(e.value)


def test_unreachable_pacs():
    node = PacsNode(name="x", ae_title="ANY", host="127.0.0.1", port=free_port(), timeout_s=3)
    with pytest.raises(PacsError) as e:
        service.echo(node)
    assert e.value.cause == "connection"


# ----------------------------------------------------------------------------------------------- send / lost
def _write_dicomdir(path: Path) -> None:
    from pydicom.data import get_testdata_file

    src = get_testdata_file("DICOMDIR", download=False)
    if src is None:
        pytest.skip("pydicom's DICOMDIR test file is not available")
    path.write_bytes(Path(src).read_bytes())


def test_c_store_and_stow_rs_into_empty_pacs(tmp_path, ge_dir, monkeypatch):
    files = dicom_files(ge_dir)
    with LocalOrthanc(tmp_path / "o", users={"u": "p"}) as server:
        dicomdir = tmp_path / "DICOMDIR"
        _write_dicomdir(dicomdir)
        sent = service.send(server.node(), files[:10] + [Path(ge_dir) / "LICENSE", dicomdir])
        # a LICENSE and a DICOMDIR are not objects to store: skipped, not failures
        assert (len(sent.files), sent.failed, sent.skipped) == (10, 0, 2)
        assert "LICENSE: skipped" in sent.messages[0] and "DICOMDIR" in sent.messages[1]
        assert len(server.instances()) == 10
        monkeypatch.setenv("MEDVIEWER_PACS_SECRET", "p")
        stowed = service.send(server.web_node(auth="basic", username="u"), files[10:])
        assert (len(stowed.files), stowed.failed) == (len(files) - 10, 0)
        assert len(server.instances()) == len(files)


def test_pacs_goes_away_mid_transfer(tmp_path, ge_dir):
    files = dicom_files(ge_dir)
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    server = LocalOrthanc(tmp_path / "o").start()
    try:
        server.upload(files)

        def progress(done: int, _total: int | None, _m: str) -> None:
            if done == 5:
                server.kill()

        with pytest.raises(PacsError) as e:
            service.retrieve(server.node(timeout_s=5), study_uid, tmp_path / "d", progress=progress)
        assert e.value.cause == "connection" and "connection lost after" in str(e.value)
        kept = list((tmp_path / "d").rglob("*.dcm"))
        assert 5 <= len(kept) < len(files)
        for p in kept:
            pydicom.dcmread(p)
    finally:
        server.stop()


def test_storage_scp_receives_a_push(pacs, ge_study, scp_port, tmp_path):
    """Orthanc pushes (C-STORE, asked through its REST API) to our listener, which reports the study."""
    import json

    study_uid, _, uids = ge_study
    got: list[tuple[str, int]] = []
    done = threading.Event()

    def on_study(study: str, paths: list[Path]) -> None:
        got.append((study, len(paths)))
        done.set()

    with dimse.StorageSCP(tmp_path, "MEDVIEWER", port=scp_port, on_study=on_study):
        orthanc_id = pacs.rest("POST", "/tools/lookup", study_uid.encode())[0]["ID"]
        pacs.rest("POST", "/modalities/medviewer/store", json.dumps({"Resources": [orthanc_id],
                                                                     "Synchronous": True}).encode())
        assert done.wait(30)
    assert got == [(study_uid, len(uids))]
    assert _sops(tmp_path) == uids


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_echo_find_get_send(pacs, ge_study, tmp_path, monkeypatch, capsys):
    from medviewer.__main__ import main
    from medviewer.store.cases import CaseStore

    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "data"))
    spec = f"ORTHANC@127.0.0.1:{pacs.dicom_port}"
    study_uid, _, uids = ge_study
    assert main(["pacs", "echo", spec]) == 0
    assert main(["pacs", "nodes", "add", "main", "--aet", "ORTHANC", "--host", "127.0.0.1", "--port",
                 str(pacs.dicom_port)]) == 0
    capsys.readouterr()
    assert main(["pacs", "find", "main", "--level", "study", "--modality", "CT", "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert [r["StudyInstanceUID"] for r in doc["results"]] == [study_uid]
    assert main(["pacs", "find", "main", "--level", "series", "--study", study_uid]) == 0
    assert "CT" in capsys.readouterr().out
    assert main(["pacs", "get", "main", "--study", study_uid, "--dest", str(tmp_path / "got")]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path / "got" / study_uid)
    store = CaseStore(path=tmp_path / "data" / "cases.db") if (tmp_path / "data" / "cases.db").exists() else None
    from medviewer.store.cases import open_default_store

    store = store or open_default_store()
    assert {i["sop_instance_uid"] for i in store.case_images(study_uid)} == uids
    store.close()
    # bad input -> 2; failed operation -> 1, one line saying why
    assert main(["pacs", "find", "main", "--level", "series"]) == 2
    assert "needs the StudyInstanceUID" in capsys.readouterr().err
    assert main(["pacs", "get", "main", "--study", "1.2.3.4", "--dest", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no matches" in err[0]
    assert main(["pacs", "echo", f"STRANGE@127.0.0.1:{free_port()}"]) == 1
    assert main(["pacs", "send", spec, str(tmp_path / "missing")]) == 2
