"""Headless command-line subcommands (no Qt): ``medviewer scan PATH [--json]``.

The JSON document printed by ``scan --json`` (schema ``medviewer.scan/1``) is documented in README.md; build it with
:func:`index_to_dict`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

from medviewer.imaging.stacks import Stack, build_stacks
from medviewer.io.model import DicomIndex, Instance
from medviewer.io.scan import display_path, scan
from medviewer.inference.scorer import DEFAULT_MODEL
from medviewer.io.sopclass import sop_class_name

SCAN_SCHEMA = "medviewer.scan/1"


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(float(v), nd)


def stack_to_dict(stack: Stack) -> dict[str, Any]:
    """JSON form of one image stack (see README, "scan --json")."""
    inst0 = stack.slices[0].instance
    ps = stack.pixel_spacing
    spacing = None
    if ps is not None:
        spacing = [_round(ps[1]), _round(ps[0]), _round(stack.slice_spacing) if stack.slice_spacing else None]
    return {
        "label": stack.label,
        "kind": stack.kind,
        "slices": int(stack.n_slices),
        "instances": len(stack.instances),
        "dimensions": [int(stack.columns), int(stack.rows), int(stack.n_slices)],
        "spacing": spacing,
        "slice_spacing": _round(stack.slice_spacing),
        "spacing_range": [_round(v) for v in stack.spacing_range] if stack.spacing_range else None,
        "tilt_degrees": _round(stack.tilt_deg, 2),
        "image_orientation_patient": list(stack.orientation) if stack.orientation else None,
        "first_position": list(stack.slices[0].position) if stack.slices[0].position else None,
        "last_position": list(stack.slices[-1].position) if stack.slices[-1].position else None,
        "photometric_interpretation": inst0.photometric_interpretation,
        "transfer_syntaxes": sorted({s.instance.transfer_syntax_uid for s in stack.slices}),
        "warnings": list(stack.warnings),
    }


def _non_image_to_dict(inst: Instance, series_uid: str | None) -> dict[str, Any]:
    return {
        "path": inst.path,
        "kind": inst.kind,
        "sop_class_uid": inst.sop_class_uid,
        "sop_class_name": sop_class_name(inst.sop_class_uid),
        "sop_instance_uid": inst.sop_instance_uid,
        "series_instance_uid": series_uid,
    }


def index_to_dict(index: DicomIndex, paths: list[str] | None = None) -> dict[str, Any]:
    """The whole index as the ``medviewer.scan/1`` JSON document."""
    patients = []
    non_image_all = []
    for patient in index.patients.values():
        studies = []
        for study in patient.studies.values():
            series_list = []
            for series in study.series.values():
                stacks = build_stacks(series) if series.image_instances else []
                non_image = [_non_image_to_dict(i, series.series_instance_uid) for i in series.non_image_instances]
                non_image_all.extend(non_image)
                series_list.append({
                    "series_instance_uid": series.series_instance_uid,
                    "series_number": series.series_number,
                    "modality": series.modality,
                    "series_description": series.series_description,
                    "series_date": series.series_date,
                    "body_part_examined": series.body_part_examined,
                    "manufacturer": series.manufacturer,
                    "instances": len(series.instances),
                    "image_instances": len(series.image_instances),
                    "stacks": [stack_to_dict(s) for s in stacks],
                    "non_image": non_image,
                })
            studies.append({
                "study_instance_uid": study.study_instance_uid,
                "study_date": study.study_date,
                "study_time": study.study_time,
                "study_description": study.study_description,
                "accession_number": study.accession_number,
                "study_id": study.study_id,
                "series": series_list,
            })
        patients.append({
            "patient_id": patient.patient_id,
            "patient_name": patient.patient_name,
            "patient_birth_date": patient.patient_birth_date,
            "patient_sex": patient.patient_sex,
            "studies": studies,
        })
    non_image_all.extend(_non_image_to_dict(i, None) for i in index.directory_files)
    return {
        "schema": SCAN_SCHEMA,
        "paths": paths or [],
        "files_seen": index.files_seen,
        "cancelled": index.cancelled,
        "patients": patients,
        "non_image": non_image_all,
        "skipped": [{"path": s.path, "reason": s.reason} for s in index.skipped],
    }


def _fmt_spacing(d: dict[str, Any]) -> str:
    sp = d["spacing"]
    if not sp:
        return "unknown (no valid PixelSpacing)"
    parts = [f"{v:.3f}" if v is not None else "?" for v in sp]
    return " x ".join(parts) + " mm"


def print_tree(doc: dict[str, Any], out: TextIO) -> None:
    """Human-readable form of an ``index_to_dict`` document."""
    w = out.write
    for p in doc["patients"]:
        extra = ", ".join(x for x in (p["patient_birth_date"] and f"born {p['patient_birth_date']}",
                                      p["patient_sex"] and f"sex {p['patient_sex']}") if x)
        w(f"Patient {p['patient_name'] or '(no name)'}  ID {p['patient_id'] or '(none)'}"
          f"{'  (' + extra + ')' if extra else ''}\n")
        for st in p["studies"]:
            w(f"  Study {st['study_date'] or '(no date)'}  {st['study_description'] or '(no description)'}"
              f"  [{st['study_instance_uid']}]\n")
            for se in st["series"]:
                num = se["series_number"] if se["series_number"] is not None else "-"
                w(f"    Series {num}  {se['modality'] or '??'}  {se['series_description'] or '(no description)'}"
                  f"  {se['instances']} instance{'s' if se['instances'] != 1 else ''}\n")
                for k, s in enumerate(se["stacks"], 1):
                    dims = "x".join(str(v) for v in s["dimensions"][:2])
                    label = f" [{s['label']}]" if s["label"] else ""
                    w(f"      Stack {k}{label}: {s['kind']}, {s['slices']} slice{'s' if s['slices'] != 1 else ''}, "
                      f"{dims}, spacing {_fmt_spacing(s)}\n")
                    for warning in s["warnings"]:
                        w(f"        ! {warning}\n")
                for ni in se["non_image"]:
                    w(f"      Non-image {ni['kind']}: {os.path.basename(ni['path'])} ({ni['sop_class_name']})\n")
    dirs = [n for n in doc["non_image"] if n["series_instance_uid"] is None]
    for ni in dirs:
        w(f"Non-image {ni['kind']}: {ni['path']} ({ni['sop_class_name']})\n")
    skipped = doc["skipped"]
    w(f"Skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''}" + (":\n" if skipped else "\n"))
    for s in skipped:
        w(f"  {s['path']}: {s['reason']}\n")
    if doc["cancelled"]:
        w("Scan cancelled: the listing is partial.\n")


def json_safe(value: Any) -> Any:
    """``value`` made strict JSON (RFC 8259): NaN and infinities become null, file names that are not UTF-8 are
    shown with \\xNN escapes, tuples become lists. Every ``--json`` output goes through it."""
    import math

    from medviewer.io.scan import display_path

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return display_path(value)
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


def dump_json(value: Any, stream: TextIO) -> None:
    """Write ``value`` as strict JSON (see :func:`json_safe`) and a newline."""
    json.dump(json_safe(value), stream, indent=2, ensure_ascii=False, allow_nan=False)
    stream.write("\n")


class _TerminalProgress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.enabled = stream.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done != total and now - self.last < 0.1:
            return
        self.last = now
        width = 30
        filled = int(width * done / total) if total else width
        self.stream.write(f"\rScanning [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def cmd_scan(args: argparse.Namespace) -> int:
    """``medviewer scan PATH... [--json]``: exit 0 on success (bad files are listed, not fatal), 2 when a PATH
    does not exist."""
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print(f"medviewer scan: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    index = scan(args.paths, progress=_TerminalProgress(sys.stderr))
    doc = index_to_dict(index, [os.path.abspath(p) for p in args.paths])
    if args.json:
        dump_json(doc, sys.stdout)
    else:
        print_tree(json_safe(doc), sys.stdout)
    return 0


def add_scan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="index DICOM files and print patients/studies/series/stacks",
                       description="Scan folders (recursively), DICOMDIRs or files and print the "
                                   "Patient/Study/Series/Stack tree and the skipped files.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folder, DICOMDIR or file")
    p.add_argument("--json", action="store_true", help="print one JSON document (schema medviewer.scan/1)")
    p.set_defaults(func=cmd_scan)


# ------------------------------------------------------------------------------------------------------------------
# medviewer score
# ------------------------------------------------------------------------------------------------------------------


def _score_targets(paths: list[str]) -> tuple[list[tuple[str, int]], list[dict]]:
    """(path, frame) for every image frame under ``paths`` (scanned headers only), and the skipped files."""
    index = scan(paths)
    targets: list[tuple[str, int]] = []
    for _, _, series in index.iter_series():
        for stack in build_stacks(series) if series.image_instances else []:
            for ref in stack.slices:
                targets.append((ref.instance.path, ref.frame.index))
    skipped = [{"path": s.path, "reason": s.reason} for s in index.skipped]
    return targets, skipped


def _save_overlay_png(path: str, values, window, monochrome1: bool, heat, label: str) -> None:  # noqa: ANN001
    """Write the image (windowed, 8-bit) with the heat map blended over it (jet-like colour map) as PNG."""
    import numpy as np
    from PIL import Image

    from medviewer.imaging.voi import Window, auto_window, to_display

    if values.ndim == 3:
        grey = values.astype(np.float32).mean(axis=2)
        base = to_display(grey, auto_window(grey))
    else:
        win = Window(window[0], window[1], window[2]) if window else auto_window(values)
        base = to_display(values, win, invert=monochrome1)
    h = np.clip(heat, 0, 1)
    colour = np.stack([np.clip(1.5 - abs(4 * h - 3), 0, 1), np.clip(1.5 - abs(4 * h - 2), 0, 1),
                       np.clip(1.5 - abs(4 * h - 1), 0, 1)], axis=-1)
    alpha = (0.45 * np.clip(h * 1.5, 0, 1))[..., None]
    rgb = base[..., None].astype(np.float32) / 255 * (1 - alpha) + colour * alpha
    Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(path)
    del label


def _overlay_path(cam_dir: str, sop_instance_uid: str, path: str, frame: int) -> str | None:
    """``<cam_dir>/<name>_gradcam.png``, the name made of the SOPInstanceUID's digits and dots only (a UID from a
    file may hold anything, "../" included), else a hash of the path; None when that name is taken by something
    other than a regular file (a FIFO, a device, a link)."""
    import hashlib
    import re

    uid = sop_instance_uid if re.fullmatch(r"[0-9.]{1,64}", sop_instance_uid or "") else ""
    stem = (uid or hashlib.sha256(os.fsencode(path)).hexdigest()[:16]) + (f"_f{frame}" if frame else "")
    out = os.path.join(cam_dir, f"{stem}_gradcam.png")
    if os.path.lexists(out) and (os.path.islink(out) or not os.path.isfile(out)):
        return None
    return out


def cmd_score(args: argparse.Namespace) -> int:
    """``medviewer score PATH [--model NAME] [--json] [--cam-dir DIR]``: exit 0, 2 for a missing PATH or model."""
    from medviewer.inference.card import ModelCardError
    from medviewer.inference.frames import FrameReadError, read_frame
    from medviewer.inference.scorer import ImageModel
    from medviewer.inference.weights import UnsafeWeightsError

    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print(f"medviewer score: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        model = ImageModel.load(args.model, device=args.device)
    except (ModelCardError, UnsafeWeightsError, ValueError, FileNotFoundError) as exc:
        print(f"medviewer score: cannot load model {args.model!r}: {exc}", file=sys.stderr)
        return 2
    targets, skipped = _score_targets(args.paths)
    if args.cam_dir:
        if os.path.lexists(args.cam_dir) and not os.path.isdir(args.cam_dir):
            print(f"medviewer score: --cam-dir {args.cam_dir} exists and is not a folder", file=sys.stderr)
            return 2
        try:
            os.makedirs(args.cam_dir, exist_ok=True)
        except OSError as exc:
            print(f"medviewer score: cannot make --cam-dir {args.cam_dir}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    bar = _TerminalProgress(sys.stderr)
    results, errors = [], []
    for n, (path, frame) in enumerate(targets, 1):
        try:
            mf = read_frame(path, frame)
            res = model.score_frame(mf, explain="gradcam" if args.cam_dir else None, force=args.score_anyway)
            results.append(res)
            if args.cam_dir and res.heatmap is not None:
                out = _overlay_path(args.cam_dir, mf.sop_instance_uid, path, frame)
                if out is None:
                    errors.append({"path": path, "frame": frame, "reason": "overlay not written: its name in "
                                   "--cam-dir is taken by something that is not a regular file"})
                else:
                    _save_overlay_png(out, mf.values, mf.window, mf.monochrome1, res.heatmap, res.heatmap_label)
        except FrameReadError as exc:
            errors.append({"path": path, "frame": frame, "reason": str(exc)})
        bar(n, len(targets), path)
    if args.json:
        dump_json([r.to_dict() for r in results], sys.stdout)
    else:
        print(f"Model {model.card.name} {model.card.version} (weights {model.card.weights_sha256[:12]}), "
              f"threshold {model.card.threshold:.3f} on P({results[0].positive_label if results else 'positive'})"
              " - research use only, not for diagnosis")
        for r in results:
            where = f"{display_path(os.path.basename(r.path))}{f' frame {r.frame + 1}' if r.frame else ''}"
            if not r.has_call:
                print(f"{where}: no call - {r.scope_text()}")
                continue
            probs = "  ".join(f"{k} {v:.3f}" for k, v in r.probabilities.items())
            flag = "POSITIVE" if r.positive else "negative"
            notes = "; ".join(([r.scope_text()] if r.scope_text() else []) + r.warnings)
            print(f"{where}: {probs}  -> {flag}" + (f"  [{notes}]" if notes else ""))
    for e in errors:
        print(f"not scored: {e['path']}: {e['reason']}", file=sys.stderr)
    for s in skipped:
        print(f"skipped: {s['path']}: {s['reason']}", file=sys.stderr)
    return 0


def add_score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score every image in a file or folder with an image model",
                       description="Score every image under PATH with a bundled model (headless). Research use "
                                   "only, not for diagnosis.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM file, folder or DICOMDIR")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name under models/ or a model folder "
                                                         f"(default {DEFAULT_MODEL})")
    p.add_argument("--json", action="store_true", help="print a JSON list, one entry per image")
    p.add_argument("--score-anyway", action="store_true",
                   help="also give a call for images outside the model's intended use (recorded as such)")
    p.add_argument("--cam-dir", metavar="DIR", help="write a Grad-CAM overlay PNG per image into DIR")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda or mps")
    p.set_defaults(func=cmd_score)


# ------------------------------------------------------------------------------------------------------------------
# medviewer classify-note
# ------------------------------------------------------------------------------------------------------------------


def cmd_classify_note(args: argparse.Namespace) -> int:
    """``medviewer classify-note [--json] TEXT... [--file F...]``: one note per argument/file, in order."""
    from medviewer.notes.model import NoteClassifier

    texts = list(args.texts)
    for f in args.file or []:
        try:
            texts.append(open(f, encoding="utf-8").read())
        except OSError as exc:
            print(f"medviewer classify-note: cannot read {f}: {exc}", file=sys.stderr)
            return 2
    if not texts:
        print("medviewer classify-note: give at least one TEXT or --file", file=sys.stderr)
        return 2
    try:
        model = NoteClassifier.load(threads=args.threads)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"medviewer classify-note: cannot load the notes model: {exc}", file=sys.stderr)
        return 2
    results = model.classify(texts)
    if args.json:
        out = []
        for text, res in zip(texts, results):
            entry = res.to_dict()
            entry["text"] = text
            out.append(entry)
        json.dump(json_safe(out), sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
        sys.stdout.write("\n")
    else:
        for n, (text, res) in enumerate(zip(texts, results), 1):
            short = " ".join(text.split())
            print(f"[{n}] {short[:70]}{'...' if len(short) > 70 else ''}")
            if not res.classified:
                print(f"    not classified: {res.reason}")
                continue
            found = ", ".join(f"{k} ({res.probabilities[k]:.2f})" for k in res.positives) or "none"
            print(f"    present: {found}")
            hedged = res.uncertain
            if hedged:
                print("    uncertain: " + ", ".join(f"{k} ({res.uncertain_probabilities[k]:.2f})" for k in hedged))
            if res.windows > 1:
                print(f"    (read in {res.windows} overlapping windows, {res.tokens} word pieces)")
    return 0


def add_classify_note_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify-note", help="classify free-text notes into chest X-ray findings",
                       description="Classify each TEXT (and each --file, one note per file) into the 14 "
                                   "ChestX-ray14 findings + normal with the bundled notes model: each finding "
                                   "present, absent or uncertain (hedged). Empty notes and notes not in English "
                                   "are reported, not classified.")
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--file", action="append", metavar="F", help="a file holding one note (repeatable)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one entry per note, in order")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.set_defaults(func=cmd_classify_note)


# ------------------------------------------------------------------------------------------------------------------
# medviewer export / medviewer worklist
# ------------------------------------------------------------------------------------------------------------------


def _looks_like_uid(text: str) -> bool:
    """A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1)."""
    import re

    return len(text) <= 64 and re.fullmatch(r"[0-9]+(\.[0-9]+)+", text) is not None


def _studies_with_images(index: DicomIndex) -> dict[str, tuple[Any, Any]]:
    """{StudyInstanceUID: (patient, study)} of the studies of a scan that hold images, in scan order."""
    out: dict[str, tuple[Any, Any]] = {}
    for patient in index.patients.values():
        for study in patient.studies.values():
            if any(s.image_instances for s in study.series.values()):
                out.setdefault(study.study_instance_uid, (patient, study))
    return out


def _study_line(study) -> str:  # noqa: ANN001 - medviewer.io.model.Study
    """One line naming a study for a terminal: UID, date, modalities, description, images (no patient data)."""
    mods = ",".join(sorted({s.modality for s in study.series.values() if s.modality})) or "??"
    n = sum(len(s.image_instances) for s in study.series.values())
    return (f"  {study.study_instance_uid}  {study.study_date or '(no date)'}  {mods}  "
            f"{study.study_description or '(no description)'}  ({n} image{'s' if n != 1 else ''})")


def _same_output(a: str, b: str) -> bool:
    """True when --pdf and --json would write one file (neither is a folder, which gets two named files)."""
    if any(os.path.isdir(x) or x.endswith((os.sep, "/")) for x in (a, b)):
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def cmd_export(args: argparse.Namespace) -> int:
    """``medviewer export PATH|STUDY_UID [--pdf OUT] [--json OUT] [--sr FILE] [--seg FILE] [--sc FILE] [--deidentify]
    [--no-ai] [--study UID]``.

    Exit 0 on success; 2 for bad input (no output asked, --pdf and --json the same file, a PATH that does not
    exist and is not a UID, PATH without DICOM images, several studies without ``--study``, ``--study`` with a
    UID, unknown StudyInstanceUID, unusable case store); 1 when writing fails (then neither file is written).
    """
    from medviewer.io.pixels import PixelDecodeError
    from medviewer.report.content import ReportError
    from medviewer.report.deid import DeidentificationError
    from medviewer.report.dicom_objects import (DicomObjectError, NoHeatmapError, export_dicom_objects,
                                                import_dicom_results)
    from medviewer.report.export import export_case, score_case_radiographs
    from medviewer.store.cases import CaseStoreError, display_url, open_default_store

    prog = "medviewer export"
    dicom_out = bool(args.sr or args.seg or args.sc)
    if not args.pdf and not args.json and not dicom_out:
        print(f"{prog}: nothing to write: give --pdf OUT, --json OUT, --sr FILE, --seg FILE and/or --sc FILE",
              file=sys.stderr)
        return 2
    if dicom_out and args.deidentify:
        print(f"{prog}: --sr/--seg/--sc write DICOM objects into the patient's study (identified, to send to the "
              "PACS); they cannot be de-identified: leave out --deidentify", file=sys.stderr)
        return 2
    named = [(flag, value) for flag, value in (("--pdf", args.pdf), ("--json", args.json), ("--sr", args.sr),
                                                ("--seg", args.seg), ("--sc", args.sc)) if value]
    for i, (fa, va) in enumerate(named):
        for fb, vb in named[i + 1:]:
            if not os.path.isdir(va) and _same_output(va, vb) and {fa, fb} != {"--pdf", "--json"}:
                print(f"{prog}: {fa} and {fb} name the same file ({va}); give two different files, or a folder "
                      "for both", file=sys.stderr)
                return 2
    if args.pdf and args.json and _same_output(args.pdf, args.json):
        print(f"{prog}: --pdf and --json name the same file ({args.pdf}); give two different files, or a folder "
              "for both", file=sys.stderr)
        return 2
    target = args.target
    is_path = os.path.exists(target)
    if not is_path and not _looks_like_uid(target):
        print(f"{prog}: no such file or folder: {target} (and not a StudyInstanceUID in the case store)",
              file=sys.stderr)
        return 2
    if not is_path and args.study:
        print(f"{prog}: --study only applies to a PATH (the target {target} is a StudyInstanceUID)",
              file=sys.stderr)
        return 2
    try:
        store = open_default_store()
    except CaseStoreError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    try:
        if is_path:
            index = scan([target], progress=_TerminalProgress(sys.stderr))
            studies = _studies_with_images(index)
            if not studies:
                print(f"{prog}: no DICOM images in {target} ({index.files_seen} file"
                      f"{'s' if index.files_seen != 1 else ''} seen, {len(index.skipped)} skipped)", file=sys.stderr)
                return 2
            if args.study:
                if args.study not in studies:
                    print(f"{prog}: study {args.study} is not in {target}; it holds:", file=sys.stderr)
                    for _, st in studies.values():
                        print(_study_line(st), file=sys.stderr)
                    return 2
                patient, study = studies[args.study]
            elif len(studies) > 1:
                print(f"{prog}: {target} holds {len(studies)} studies; pick one with --study UID:", file=sys.stderr)
                for _, st in studies.values():
                    print(_study_line(st), file=sys.stderr)
                return 2
            else:
                patient, study = next(iter(studies.values()))
            store.register_study(patient, study, source_path=os.path.abspath(target))
            import_dicom_results(store, study)
            uid = study.study_instance_uid
        else:
            uid = target
            if store.get_case(uid) is None:
                print(f"{prog}: no case with StudyInstanceUID {uid} in the case store ({display_url(store.url)}); "
                      "export a file or folder instead, or open the study in medviewer first", file=sys.stderr)
                return 2
        if not args.no_ai and not store.ai_results(uid):
            try:
                n, errors = score_case_radiographs(store, uid, device=args.device)
                if n:
                    print(f"scored {n} radiograph{'s' if n != 1 else ''} with the bundled image model "
                          "(research use only, not for diagnosis)", file=sys.stderr)
                for e in errors:
                    print(f"not scored: {e}", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001 - no model/torch: export without AI, say why
                print(f"{prog}: warning: AI scoring skipped: {exc}", file=sys.stderr)
        if dicom_out:
            try:
                objects = export_dicom_objects(store, uid, sr=args.sr, seg=args.seg, sc=args.sc)
            except ReportError as exc:
                print(f"{prog}: {exc}", file=sys.stderr)
                return 2
            except NoHeatmapError as exc:
                print(f"{prog}: {exc}; nothing was written", file=sys.stderr)
                return 1
            except (DicomObjectError, PixelDecodeError, OSError, ValueError) as exc:
                print(f"{prog}: cannot write the DICOM objects: {exc}; nothing was written", file=sys.stderr)
                return 1
            for w in objects["warnings"]:
                print(f"{prog}: warning: {w}", file=sys.stderr)
            for k in ("sr", "seg", "sc"):
                for p in objects.get(k, []):
                    print(p)
            if not args.pdf and not args.json:
                return 0
        try:
            result = export_case(store, uid, pdf=args.pdf, json_path=args.json, deidentify=args.deidentify,
                                 max_key_images=args.max_key_images)
        except ReportError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 2
        except DeidentificationError as exc:
            print(f"{prog}: {exc}; nothing was written", file=sys.stderr)
            return 1
        except (OSError, ValueError) as exc:
            print(f"{prog}: cannot write the report: {exc}; nothing was written", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - a PDF layout failure...: say so, exit 1, no traceback
            print(f"{prog}: cannot write the report: {type(exc).__name__}: {exc}; nothing was written",
                  file=sys.stderr)
            return 1
    finally:
        store.close()
    files = result.files
    for key in ("pdf", "json"):
        if key in files:
            print(files[key])
    for w in result.report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a case report as PDF and/or JSON (optionally de-identified)",
                       description="Export the report of one study: a file or folder holding ONE study (scanned "
                                   "and registered in your case store), or the StudyInstanceUID of a case already "
                                   "in the store. Cases without an AI result get their radiographs (CR/DX) scored "
                                   "with the bundled image model unless --no-ai. Not for diagnostic use.")
    p.add_argument("target", metavar="PATH|STUDY_UID", help="DICOM file/folder/DICOMDIR of one study, or a "
                                                            "StudyInstanceUID in the case store")
    p.add_argument("--pdf", metavar="OUT", help="write the PDF here (a folder: named from a pseudonym)")
    p.add_argument("--json", metavar="OUT", help="write the report content as JSON (schema medviewer.report/1)")
    p.add_argument("--sr", metavar="FILE", help="write a DICOM TID 1500 Structured Report (AI findings, the "
                                                "reader's calls and measurements); a folder: named from the case")
    p.add_argument("--seg", metavar="FILE", help="write each AI heat map as a fractional DICOM Segmentation")
    p.add_argument("--sc", metavar="FILE", help="write each AI heat map over its image as an RGB DICOM Secondary "
                                                "Capture")
    p.add_argument("--deidentify", action="store_true", help="de-identify (DICOM PS3.15 Basic Application Level "
                                                             "Confidentiality Profile)")
    p.add_argument("--no-ai", action="store_true", help="do not run the image model (stored results are still "
                                                        "reported)")
    p.add_argument("--study", metavar="UID", help="the study to export when PATH holds several")
    p.add_argument("--max-key-images", type=_positive_int, default=6, metavar="N",
                   help="at most N key images, N >= 1 (default 6)")
    p.add_argument("--device", default=None, help="device for AI scoring: auto (default), cpu, cuda or mps")
    p.set_defaults(func=cmd_export)


def cmd_worklist(args: argparse.Namespace) -> int:
    """``medviewer worklist --csv OUT [--deidentify]`` (OUT a file, or a folder: ``OUT/worklist.csv``): exit 0, 2
    for an unusable case store, 1 when writing fails."""
    from medviewer.report.export import export_worklist_csv, resolve_worklist_output
    from medviewer.store.cases import CaseStoreError, open_default_store

    out = resolve_worklist_output(args.csv)
    try:
        store = open_default_store()
    except CaseStoreError as exc:
        print(f"medviewer worklist: {exc}", file=sys.stderr)
        return 2
    try:
        n = export_worklist_csv(store, out, deidentify=args.deidentify)
    except OSError as exc:
        print(f"medviewer worklist: cannot write {out}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{n} case{'s' if n != 1 else ''} written to {out}", file=sys.stderr)
    return 0


def add_worklist_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worklist", help="write the worklist of the case store as CSV",
                       description="Write one CSV line per case of your case store (RFC 4180, UTF-8).")
    p.add_argument("--csv", metavar="OUT", required=True, help="the CSV file to write (a folder: OUT/worklist.csv)")
    p.add_argument("--deidentify", action="store_true", help="pseudonyms instead of names, no IDs or dates, new "
                                                             "UIDs (PS3.15 Basic Profile)")
    p.set_defaults(func=cmd_worklist)
