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
from medviewer.io.scan import scan
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
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print_tree(doc, sys.stdout)
    return 0


def add_scan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="index DICOM files and print patients/studies/series/stacks",
                       description="Scan folders (recursively), DICOMDIRs or files and print the "
                                   "Patient/Study/Series/Stack tree and the skipped files.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folder, DICOMDIR or file")
    p.add_argument("--json", action="store_true", help="print one JSON document (schema medviewer.scan/1)")
    p.set_defaults(func=cmd_scan)
