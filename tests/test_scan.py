"""Scanning folders, files and DICOMDIRs into the Patient/Study/Series/Instance index (headers only).

Every expected value is computed here from what the test wrote, or read independently with pydicom.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest

import dicomfactory as fac
from medviewer.imaging import build_stacks
from medviewer.io import scan
from medviewer.jobs import TaskState

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def _paths(instances) -> set[str]:
    return {os.path.realpath(i.path) for i in instances}


def _skipped(index) -> dict[str, str]:
    return {os.path.realpath(s.path): s.reason for s in index.skipped}


def _instance_at(index, path):
    real = os.path.realpath(path)
    found = [i for i in index.iter_instances() if os.path.realpath(i.path) == real]
    assert len(found) == 1, f"{path} indexed {len(found)} times"
    return found[0]


# ----------------------------------------------------------------------------------------------------------------
# Folders, file names, preamble
# ----------------------------------------------------------------------------------------------------------------


def test_folder_is_walked_recursively_and_names_need_no_extension(tmp_path):
    ids = fac.SeriesIds()
    written = [
        fac.image_slice(tmp_path / "I10", ids, ipp=(0, 0, 0), instance_number=1),
        fac.image_slice(tmp_path / "a" / "IMG0002.DCM", ids, ipp=(0, 0, 1), instance_number=2),
        fac.image_slice(tmp_path / "a" / "b" / "c" / "00000003", ids, ipp=(0, 0, 2), instance_number=3),
        fac.image_slice(tmp_path / "a" / "b" / "slice.dcm", ids, ipp=(0, 0, 3), instance_number=4),
    ]
    hidden = fac.image_slice(tmp_path / ".hidden" / "IM5", ids, ipp=(0, 0, 4), instance_number=5)

    index = scan(tmp_path)

    assert index.skipped == []
    assert index.files_seen == len(written)
    assert _paths(index.iter_instances()) == {os.path.realpath(p) for p in written}
    assert os.path.realpath(hidden) not in _paths(index.iter_instances())
    series = index.find_series(ids.series_uid)
    assert len(series.image_instances) == 4
    assert sorted(i.instance_number for i in series.instances) == [1, 2, 3, 4]


def test_header_values_are_indexed_as_written(tmp_path):
    ids = fac.SeriesIds(patient_id="ID42", patient_name="Doe^Jane")
    iop = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    path = fac.image_slice(tmp_path / "x", ids, ipp=(-12.5, 30.25, 7.0), iop=iop, pixel_spacing=(0.7, 0.4),
                           rows=6, cols=9, slope=2.5, intercept=-100.0, instance_number=17, echo_numbers=2,
                           acquisition_number=5, slice_thickness=3.0, window=(40, 400), modality="MR",
                           sop_class=fac.MR_IMAGE)
    index = scan(path)
    inst = _instance_at(index, path)
    assert inst.kind == "image" and inst.is_image
    assert (inst.rows, inst.columns) == (6, 9)
    assert inst.instance_number == 17
    assert inst.acquisition_number == 5
    assert inst.echo_numbers == "2"
    assert inst.modality == "MR"
    assert inst.sop_class_uid == fac.MR_IMAGE
    assert inst.bits_allocated == 16 and inst.pixel_representation == 1
    assert len(inst.frames) == 1
    fr = inst.frames[0]
    assert fr.image_position_patient == pytest.approx((-12.5, 30.25, 7.0))
    assert fr.image_orientation_patient == pytest.approx(iop)
    assert fr.pixel_spacing == pytest.approx((0.7, 0.4))
    assert fr.slice_thickness == pytest.approx(3.0)
    assert (fr.rescale_slope, fr.rescale_intercept) == pytest.approx((2.5, -100.0))
    assert fr.window_center == pytest.approx((40.0,)) and fr.window_width == pytest.approx((400.0,))
    patient = index.patients["ID42"]
    assert patient.patient_name == "Doe^Jane"


@pytest.mark.parametrize("variant", ["no-preamble", "no-meta"])
def test_files_without_preamble_are_indexed(tmp_path, variant):
    ids = fac.SeriesIds()
    kwargs = {"preamble": False} if variant == "no-preamble" else {"meta": False}
    path = fac.image_slice(tmp_path / "IM1", ids, ipp=(1.0, 2.0, 3.5), instance_number=7, rows=5, cols=4, **kwargs)
    data = path.read_bytes()
    assert data[128:132] != b"DICM"
    # no-preamble starts with the File Meta group 0002, no-meta with the dataset's group 0008
    assert int.from_bytes(data[:2], "little") == (0x0002 if variant == "no-preamble" else 0x0008)

    index = scan(tmp_path)
    assert index.skipped == []
    inst = _instance_at(index, path)
    assert inst.kind == "image"
    assert inst.sop_instance_uid == pydicom.dcmread(path, force=True).SOPInstanceUID
    assert (inst.rows, inst.columns) == (5, 4)
    assert inst.instance_number == 7
    assert inst.frames[0].image_position_patient == pytest.approx((1.0, 2.0, 3.5))


def test_mixed_folder_indexes_dicom_and_skips_the_rest(tmp_path):
    ids = fac.SeriesIds()
    good = [fac.image_slice(tmp_path / f"IM{k}", ids, ipp=(0, 0, k), instance_number=k + 1) for k in range(3)]
    (tmp_path / "notes.txt").write_text("not dicom at all\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "tiny").write_bytes(b"\x08\x00")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (tmp_path / "fake_preamble").write_bytes(b"\x00" * 128 + b"DICM" + os.urandom(64))

    index = scan(tmp_path)

    assert _paths(index.iter_instances()) == {os.path.realpath(p) for p in good}
    skipped = _skipped(index)
    for name in ("notes.txt", "empty", "tiny", "image.png", "fake_preamble"):
        assert os.path.realpath(tmp_path / name) in skipped, name
    assert "not a dicom" in skipped[os.path.realpath(tmp_path / "notes.txt")].lower()
    assert "not a dicom" in skipped[os.path.realpath(tmp_path / "empty")].lower()
    assert index.files_seen == 8


def test_missing_path_is_reported(tmp_path):
    index = scan([tmp_path / "does-not-exist"])
    assert index.instance_count == 0
    assert [os.path.basename(s.path) for s in index.skipped] == ["does-not-exist"]


# ----------------------------------------------------------------------------------------------------------------
# Truncated and damaged files
# ----------------------------------------------------------------------------------------------------------------


def _element_offsets(path: Path) -> list[tuple[int, int, int]]:
    """(tag, value offset, value length) of every top-level dataset element, read by pydicom."""
    ds = pydicom.dcmread(path)
    out = []
    for tag in ds.keys():
        raw = ds.get_item(tag)
        out.append((int(tag), raw.value_tell, raw.length))
    return out


@pytest.mark.parametrize("where", ["inside-patient-name", "inside-element-header", "inside-rescale-slope",
                                   "inside-pixel-data-header"])
def test_truncated_header_is_skipped(tmp_path, where):
    ids = fac.SeriesIds()
    path = fac.image_slice(tmp_path / "cut", ids, rows=16, cols=16, patient_name="Truncated^Header")
    good = fac.image_slice(tmp_path / "good", ids, ipp=(0, 0, 1), rows=16, cols=16)
    elements = {tag: (tell, length) for tag, tell, length in _element_offsets(path)}
    if where == "inside-patient-name":
        tell, length = elements[0x00100010]
        keep = tell + length // 2
    elif where == "inside-element-header":
        tell, _ = elements[0x00200013] if 0x00200013 in elements else elements[0x00280010]
        keep = tell - 5  # 3 bytes of the tag/VR header of an element in the middle of the header
    elif where == "inside-rescale-slope":
        tell, length = elements[0x00281053]
        keep = tell + 1
    else:
        tell, _ = elements[0x7FE00010]
        keep = tell - 6
    fac.truncate(path, keep=keep)

    index = scan(tmp_path)

    assert _paths(index.iter_instances()) == {os.path.realpath(good)}
    reason = _skipped(index)[os.path.realpath(path)]
    assert "truncated" in reason.lower() or "damaged" in reason.lower()


@pytest.mark.parametrize("drop", [1, 2, 100, 511])
def test_truncated_pixel_data_is_skipped(tmp_path, drop):
    ids = fac.SeriesIds()
    files = fac.write_series(tmp_path, [(0, 0, z) for z in range(4)], ids, rows=16, cols=16)
    fac.truncate(files[2], drop=drop)
    index = scan(tmp_path)
    assert _paths(index.iter_instances()) == {os.path.realpath(p) for k, p in enumerate(files) if k != 2}
    reason = _skipped(index)[os.path.realpath(files[2])]
    assert "truncated pixel data" in reason.lower()


def test_pixel_data_shorter_than_rows_columns_need_is_skipped(tmp_path):
    """A complete file whose Pixel Data element holds fewer bytes than Rows x Columns x BitsAllocated."""
    ids = fac.SeriesIds()
    path = fac.image_slice(tmp_path / "short", ids, rows=8, cols=8)
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[: 8 * 8 * 2 - 16]
    ds.save_as(path, enforce_file_format=True)
    index = scan(path)
    assert index.instance_count == 0
    assert "truncated pixel data" in _skipped(index)[os.path.realpath(path)].lower()


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the invalid values it meets
def test_scan_never_raises_on_garbage(tmp_path):
    rng = np.random.default_rng(1234)
    ids = fac.SeriesIds()
    template = fac.image_slice(tmp_path / "template.bin", ids, rows=8, cols=8).read_bytes()
    (tmp_path / "template.bin").unlink()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    n = 0
    for k in range(60):
        kind = k % 6
        size = int(rng.integers(0, 1500))
        blob = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
        if kind == 1:  # DICM marker, then garbage
            blob = b"\x00" * 128 + b"DICM" + blob
        elif kind == 2:  # looks like a raw dataset (group 0008), then garbage
            blob = b"\x08\x00" + blob
        elif kind == 3:  # looks like a file meta group without preamble
            blob = b"\x02\x00\x00\x00UL\x04\x00" + blob
        elif kind == 4:  # a real file cut anywhere
            blob = template[: int(rng.integers(0, len(template)))]
        elif kind == 5:  # a real file with random bytes flipped in its header
            arr = bytearray(template)
            for pos in rng.integers(132, 900, size=8):
                arr[int(pos)] = int(rng.integers(0, 256))
            blob = bytes(arr)
        (garbage / f"g{k:03d}").write_bytes(blob)
        n += 1

    index = scan(garbage)  # must not raise

    assert index.files_seen == n
    indexed = _paths(index.iter_instances())
    skipped = _skipped(index)
    assert len(indexed) + len(skipped) == n
    assert not indexed & set(skipped)
    assert all(reason for reason in skipped.values())


def test_duplicate_sop_instance_uid_is_skipped(tmp_path):
    ids = fac.SeriesIds()
    first = fac.image_slice(tmp_path / "a" / "IM1", ids, instance_number=1)
    copy = tmp_path / "b" / "IM1-copy"
    copy.parent.mkdir()
    shutil.copyfile(first, copy)
    other = fac.image_slice(tmp_path / "b" / "IM2", ids, ipp=(0, 0, 1), instance_number=2)

    index = scan(tmp_path)

    assert index.instance_count == 2
    assert _paths(index.iter_instances()) == {os.path.realpath(first), os.path.realpath(other)}
    reason = _skipped(index)[os.path.realpath(copy)]
    assert "duplicate" in reason.lower()
    assert pydicom.dcmread(first).SOPInstanceUID in reason


def test_same_file_listed_twice_is_read_once(tmp_path):
    ids = fac.SeriesIds()
    path = fac.image_slice(tmp_path / "IM1", ids)
    link = tmp_path / "link"
    link.symlink_to(path)
    index = scan([tmp_path, path, link])
    assert index.files_seen == 1
    assert index.instance_count == 1
    assert index.skipped == []


# ----------------------------------------------------------------------------------------------------------------
# DICOMDIR
# ----------------------------------------------------------------------------------------------------------------


def _dicomdir_records(dicomdir: Path):
    """Independent walk of a DICOMDIR's DirectoryRecordSequence with pydicom: referenced files (resolved on the
    file system), and the UIDs the records name."""
    ds = pydicom.dcmread(dicomdir)
    files, sop_uids, series_uids, study_uids, patient_ids = [], set(), set(), set(), set()
    for rec in ds.DirectoryRecordSequence:
        rtype = rec.DirectoryRecordType
        if rtype == "PATIENT":
            patient_ids.add(str(rec.PatientID))
        elif rtype == "STUDY":
            study_uids.add(str(rec.StudyInstanceUID))
        elif rtype == "SERIES":
            series_uids.add(str(rec.SeriesInstanceUID))
        if "ReferencedFileID" in rec:
            fid = rec.ReferencedFileID
            parts = [fid] if isinstance(fid, str) else [str(p) for p in fid]
            files.append(dicomdir.parent.joinpath(*parts))
            sop_uids.add(str(rec.ReferencedSOPInstanceUIDInFile))
    return files, sop_uids, series_uids, study_uids, patient_ids


def test_dicomdir_indexes_every_referenced_file(testfile):
    dicomdir = Path(testfile("DICOMDIR"))
    files, sop_uids, series_uids, study_uids, patient_ids = _dicomdir_records(dicomdir)
    assert len(files) > 10

    index = scan(dicomdir)

    assert index.skipped == []
    assert index.files_seen == len(set(files)) + 1
    directory = [i for i in index.iter_instances() if i.kind == "DICOMDIR"]
    assert [os.path.realpath(i.path) for i in directory] == [os.path.realpath(dicomdir)]
    referenced = [i for i in index.iter_instances() if i.kind != "DICOMDIR"]
    assert _paths(referenced) == {os.path.realpath(p) for p in files}
    assert {i.sop_instance_uid for i in referenced} == sop_uids
    assert {s.series_instance_uid for _, _, s in index.iter_series() if s.instances and
            any(i.kind != "DICOMDIR" for i in s.instances)} == series_uids
    assert {st.study_instance_uid for p in index.patients.values() for st in p.studies.values()
            if any(i.kind != "DICOMDIR" for s in st.series.values() for i in s.instances)} == study_uids
    assert {p.patient_id for p in index.patients.values()
            if any(i.kind != "DICOMDIR" for st in p.studies.values() for s in st.series.values()
                   for i in s.instances)} == patient_ids
    # the DICOMDIR is never offered as an image
    for _, _, series in index.iter_series():
        assert all(i.kind == "image" for i in series.image_instances)
        assert not any(i.kind == "DICOMDIR" for i in series.image_instances)


def test_dicomdir_with_missing_and_differently_cased_files(tmp_path, testfile):
    src = Path(testfile("DICOMDIR")).parent
    root = tmp_path / "media"
    shutil.copytree(src, root)
    dicomdir = root / "DICOMDIR"
    files, *_ = _dicomdir_records(dicomdir)
    missing = files[0]
    missing.unlink()
    # a folder written in lower case on the medium while the DICOMDIR names it in upper case
    recased = files[-1]
    lower_dir = recased.parent.with_name(recased.parent.name.lower())
    assert lower_dir.name != recased.parent.name
    recased.parent.rename(lower_dir)
    moved = {p for p in files if p.parent == recased.parent}

    index = scan(dicomdir)

    skipped = _skipped(index)
    assert os.path.realpath(missing) in skipped
    assert "missing" in skipped[os.path.realpath(missing)]
    indexed_names = {(Path(i.path).parent.name.lower(), Path(i.path).name) for i in index.iter_instances()}
    for p in moved:
        assert (p.parent.name.lower(), p.name) in indexed_names
    assert index.instance_count == len(set(files)) - 1 + 1


# ----------------------------------------------------------------------------------------------------------------
# Non-image objects
# ----------------------------------------------------------------------------------------------------------------


def test_non_image_objects_are_indexed_with_their_kind_but_not_as_images(tmp_path):
    ct = fac.SeriesIds()
    study = ct.study_uid
    slices = fac.write_series(tmp_path / "ct", [(0, 0, z) for z in range(3)], ct)
    written = {}
    for n, kind in enumerate(sorted(fac.NON_IMAGE_KINDS)):
        ids = fac.SeriesIds(study_uid=study, series_number=100 + n)
        written[kind] = (fac.non_image(tmp_path / "other" / kind, kind, ids), ids.series_uid)
    # a presentation state stored in the CT series itself must not become a slice
    in_series_pr = fac.non_image(tmp_path / "ct" / "PR-in-series", "PR", ct, instance_number=99)

    index = scan(tmp_path)

    assert index.skipped == []
    for kind, (path, series_uid) in written.items():
        inst = _instance_at(index, path)
        assert inst.kind == kind
        assert not inst.is_image
        series = index.find_series(series_uid)
        assert series.image_instances == []
        assert [i.kind for i in series.non_image_instances] == [kind]
        assert build_stacks(series) == []
    ct_series = index.find_series(ct.series_uid)
    assert _paths(ct_series.image_instances) == {os.path.realpath(p) for p in slices}
    assert _paths(ct_series.non_image_instances) == {os.path.realpath(in_series_pr)}
    stacks = build_stacks(ct_series)
    assert len(stacks) == 1 and stacks[0].n_slices == 3
    assert os.path.realpath(in_series_pr) not in _paths(stacks[0].instances)
    # all of them belong to the same study
    studies = [st for p in index.patients.values() for st in p.studies.values()]
    assert [st.study_instance_uid for st in studies] == [study]


@pytest.mark.parametrize("name, kind", [("test-SR.dcm", "SR"), ("rtstruct.dcm", "RT"), ("rtplan.dcm", "RT"),
                                        ("rtdose.dcm", "RT")])
def test_pydicom_non_image_objects(testfile, name, kind):
    path = testfile(name)
    index = scan(path)
    assert index.skipped == []
    (inst,) = list(index.iter_instances())
    assert inst.kind == kind
    assert inst.sop_class_uid == pydicom.dcmread(path, stop_before_pixels=True, force=True).SOPClassUID


# ----------------------------------------------------------------------------------------------------------------
# Character sets
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("charset, name, description, marker", [
    ("ISO_IR 100", "Buc^Jérôme", "Tête et cou", "Jérôme".encode("latin-1")),
    ("ISO_IR 192", "Müller^Zoë=王^小東", "头部 CT", "王^小東".encode("utf-8")),
    ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎=やまだ^たろう", "Chest", b"\x1b$B"),
])
def test_specific_character_set_is_decoded(tmp_path, charset, name, description, marker):
    ids = fac.SeriesIds()
    charsets = charset.split("\\") if "\\" in charset else charset
    path = fac.image_slice(tmp_path / "IM1", ids, charset=charsets, patient_name=name,
                           study_description=description, series_description=description + " 2")
    raw = path.read_bytes()
    assert marker in raw  # the file holds the encoded bytes, not UTF-8 (except for ISO_IR 192)
    if charset == "ISO_IR 100":
        assert name.encode("utf-8") not in raw

    index = scan(path)
    (patient,) = index.patients.values()
    assert patient.patient_name == name
    (study,) = patient.studies.values()
    assert study.study_description == description
    (series,) = study.series.values()
    assert series.series_description == description + " 2"


# Expected values from DICOM PS3.5 Annexes H, I and J (the examples pydicom's charset files encode).
@pytest.mark.parametrize("filename, expected", [
    ("chrFren.dcm", "Buc^Jérôme"),
    ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    ("chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
    ("chrX1.dcm", "Wang^XiaoDong=王^小東"),
    ("chrRuss.dcm", "Люкceмбypг"),
    ("chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동"),
])
def test_pydicom_charset_files(charset_file, filename, expected):
    path = charset_file(filename)
    assert str(pydicom.dcmread(path).PatientName) == expected  # pydicom agrees with the standard
    index = scan(path)
    assert index.skipped == []
    (patient,) = index.patients.values()
    assert patient.patient_name == expected


def test_several_charsets_in_one_scan(charset_file):
    paths = [charset_file(n) for n in ("chrFren.dcm", "chrH31.dcm", "chrX1.dcm", "chrGreek.dcm")]
    expected = {str(pydicom.dcmread(p).PatientID): str(pydicom.dcmread(p).PatientName) for p in paths}
    index = scan(paths)
    assert {p.patient_id: p.patient_name for p in index.patients.values()} == expected


# ----------------------------------------------------------------------------------------------------------------
# Progress and cancellation
# ----------------------------------------------------------------------------------------------------------------


def _ten_files(tmp_path) -> list[Path]:
    ids = fac.SeriesIds()
    files = fac.write_series(tmp_path, [(0, 0, z) for z in range(8)], ids)
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "empty").write_bytes(b"")
    return files + [tmp_path / "readme.txt", tmp_path / "empty"]


def test_progress_is_called_with_increasing_counts(tmp_path):
    files = _ten_files(tmp_path)
    calls = []
    index = scan(tmp_path, progress=lambda done, total, path: calls.append((done, total, path)))
    assert [c[0] for c in calls] == list(range(1, len(files) + 1))
    assert {c[1] for c in calls} == {len(files)}
    assert {os.path.realpath(c[2]) for c in calls} == {os.path.realpath(p) for p in files}
    assert index.files_seen == len(files)
    assert index.cancelled is False


def test_progress_through_task_state(tmp_path):
    files = _ten_files(tmp_path)
    calls = []
    state = TaskState(on_progress=lambda d, t, m: calls.append(d))
    scan(tmp_path, state=state)
    assert calls == list(range(1, len(files) + 1))


def test_cancel_callable_stops_the_scan(tmp_path):
    _ten_files(tmp_path)
    calls = []
    index = scan(tmp_path, progress=lambda d, t, p: calls.append(d), cancel=lambda: len(calls) >= 3)
    assert index.cancelled is True
    assert index.files_seen == 3
    assert calls == [1, 2, 3]
    assert index.instance_count + len(index.skipped) == 3


def test_cancel_event_set_during_the_scan(tmp_path):
    files = _ten_files(tmp_path)
    event = threading.Event()

    def progress(done, total, path):
        if done == 5:
            event.set()

    index = scan(tmp_path, progress=progress, cancel=event)
    assert index.cancelled is True
    assert index.files_seen == 5 < len(files)


def test_cancel_before_start_reads_nothing(tmp_path):
    _ten_files(tmp_path)
    event = threading.Event()
    event.set()
    index = scan(tmp_path, cancel=event)
    assert index.cancelled is True
    assert index.files_seen == 0
    assert index.instance_count == 0


# ----------------------------------------------------------------------------------------------------------------
# Real data
# ----------------------------------------------------------------------------------------------------------------


def _check_against_pydicom(index, folder: Path) -> int:
    """Every image instance's header values equal pydicom's own parse of the file; returns how many."""
    n = 0
    for inst in index.iter_instances():
        if not inst.is_image:
            continue
        ds = pydicom.dcmread(inst.path, stop_before_pixels=True)
        assert inst.sop_instance_uid == ds.SOPInstanceUID
        assert (inst.rows, inst.columns) == (ds.Rows, ds.Columns)
        assert inst.instance_number == int(ds.InstanceNumber)
        fr = inst.frames[0]
        assert fr.image_position_patient == pytest.approx([float(v) for v in ds.ImagePositionPatient])
        assert fr.image_orientation_patient == pytest.approx([float(v) for v in ds.ImageOrientationPatient])
        assert fr.pixel_spacing == pytest.approx([float(v) for v in ds.PixelSpacing])
        assert fr.rescale_slope == pytest.approx(float(ds.get("RescaleSlope", 1)))
        assert fr.rescale_intercept == pytest.approx(float(ds.get("RescaleIntercept", 0)))
        n += 1
    return n


def test_philips_phantom_folder(philips_dir, philips_index, philips_reference):
    index = philips_index
    expected_images = {os.path.realpath(p) for p, _ in philips_reference}
    assert len(expected_images) == 140
    image_series = [s for _, _, s in index.iter_series() if s.image_instances]
    assert len(image_series) == 1
    assert _paths(image_series[0].image_instances) == expected_images
    # DIRFILE: a Media Storage Directory object (checked with pydicom), indexed as a non-image "DICOMDIR"
    dirfile = philips_dir / "DIRFILE"
    assert pydicom.dcmread(dirfile, stop_before_pixels=True).file_meta.MediaStorageSOPClassUID == \
        MEDIA_STORAGE_DIRECTORY
    inst = _instance_at(index, dirfile)
    assert inst.kind == "DICOMDIR" and not inst.is_image
    # LICENSE is the only skipped file
    assert list(_skipped(index)) == [os.path.realpath(philips_dir / "LICENSE")]
    assert index.files_seen == len(os.listdir(philips_dir))
    assert _check_against_pydicom(index, philips_dir) == 140


def test_ge_head_folder(ge_dir, ge_index, ge_reference):
    index = ge_index
    assert len(ge_reference) == 28
    image_series = [s for _, _, s in index.iter_series() if s.image_instances]
    assert len(image_series) == 1
    assert _paths(image_series[0].image_instances) == {os.path.realpath(p) for p, _ in ge_reference}
    assert list(_skipped(index)) == [os.path.realpath(ge_dir / "LICENSE")]
    assert _check_against_pydicom(index, ge_dir) == 28
    inst = image_series[0].image_instances[0]
    assert inst.gantry_detector_tilt == pytest.approx(
        float(pydicom.dcmread(inst.path, stop_before_pixels=True).GantryDetectorTilt))


# ---------------------------------------------------------------------------------------------- odd files and folders
def test_fifos_sockets_and_links_are_handled_without_blocking(tmp_path, testfile):
    """A FIFO (opening it would block forever) and a socket are skipped with a reason; links to files and to
    folders are followed; a link loop is walked once; a dangling link is reported."""
    import shutil
    import socket
    import threading

    root = tmp_path / "study"
    (root / "sub").mkdir(parents=True)
    shutil.copy(testfile("CT_small.dcm"), root / "sub" / "ct.dcm")
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(testfile("MR_small.dcm"), other / "mr.dcm")
    os.symlink(other, root / "link-to-folder")
    os.symlink(root, root / "sub" / "loop")  # a loop back to the top
    os.symlink(root / "missing.dcm", root / "dangling")
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("index", scan(str(root))), daemon=True)
    t.start()
    t.join(30)
    sock.close()
    assert not t.is_alive(), "scan blocked on a FIFO"
    index = result["index"]
    sops = {inst.sop_instance_uid for _, _, s in index.iter_series() for inst in s.instances}
    assert len(sops) == 2  # CT via the folder, MR via the folder link; the loop adds nothing twice
    reasons = {os.path.basename(s.path): s.reason for s in index.skipped}
    assert "FIFO" in reasons["pipe"] and "socket" in reasons["sock"]
    assert reasons["dangling"] == "no such file or folder"


def test_non_utf8_file_names_are_scanned_and_printable(tmp_path, testfile):
    import shutil

    from medviewer.io.scan import display_path

    name = b"caf\xe9-\xff.dcm".decode("utf-8", "surrogateescape")
    shutil.copy(testfile("CT_small.dcm"), os.path.join(str(tmp_path), name))
    index = scan(str(tmp_path))
    [inst] = [i for _, _, s in index.iter_series() for i in s.instances]
    shown = display_path(inst.path)
    shown.encode("utf-8")  # printable
    assert shown.endswith("caf\\xe9-\\xff.dcm")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_folder_is_reported(tmp_path, testfile):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        index = scan(str(tmp_path))
        assert any("folder not readable" in s.reason for s in index.skipped)
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("changes, words", [
    ({"NumberOfFrames": 2 ** 31 - 1}, "more than this viewer opens"),
    ({"NumberOfFrames": 50_000}, "needs"),
    ({"Rows": 0}, "out of range"),
    ({"BitsAllocated": 12}, "BitsAllocated 12"),
    ({"BitsStored": 40}, "does not fit"),
    ({"SamplesPerPixel": 7}, "SamplesPerPixel 7"),
])
def test_declared_sizes_are_checked_before_anything_is_allocated(tmp_path, testfile, changes, words):
    """A header that declares more than the file holds is set apart at once with the reason, without building a
    record per declared frame (2**31 frames would take minutes and gigabytes)."""
    import time

    ds = pydicom.dcmread(testfile("CT_small.dcm"))
    for k, v in changes.items():
        setattr(ds, k, v)
    path = tmp_path / "liar.dcm"
    ds.save_as(path)
    t0 = time.perf_counter()
    index = scan(str(path))
    assert time.perf_counter() - t0 < 5
    [skipped] = index.skipped
    assert words in skipped.reason


def test_a_huge_declared_element_in_a_sparse_file_is_not_read(tmp_path, testfile):
    """A private element whose length says 256 MB, in a sparse file of zeros: the scan neither reads the value
    nor parses the zeros as millions of elements; the file is set apart at once with the reason."""
    import struct
    import time

    ds = pydicom.dcmread(testfile("CT_small.dcm"))
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "OB", b"\x11\x22\x33\x44\x55\x66\x77\x88")
    path = tmp_path / "big.dcm"
    ds.save_as(path)
    raw = bytearray(path.read_bytes())
    i = raw.find(b"\x09\x00\x01\x10OB\x00\x00")
    raw[i + 8:i + 12] = struct.pack("<I", 0x10000000)
    path.write_bytes(bytes(raw))
    os.truncate(path, 300 * 1024 ** 2)
    t0 = time.perf_counter()
    index = scan(str(path))
    assert time.perf_counter() - t0 < 5
    [skipped] = index.skipped
    assert "out of order" in skipped.reason or "truncated" in skipped.reason
