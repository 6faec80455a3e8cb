"""Exporting a case (PDF and/or JSON) and the worklist (CSV), identified or de-identified.

:func:`export_case` builds the :class:`~medviewer.report.model.Report` from the case store, renders the key images
(no patient text on de-identified ones), writes the PDF and the JSON (:meth:`Report.to_dict
<medviewer.report.model.Report.to_dict>`) from that one report atomically and records a "report exported" event in
the case's history. :func:`export_worklist_csv` writes one RFC 4180 CSV line per case.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medviewer.report.content import build_report
from medviewer.report.deid import deidentify_report, installation_salt, new_uid, pseudonym, safe_basename
from medviewer.report.model import Report

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["export_case", "ExportResult", "report_json", "export_worklist_csv", "render_key_images",
           "resolve_output", "resolve_worklist_output", "score_case_radiographs", "WORKLIST_COLUMNS",
           "check_output_target", "RADIOGRAPH_MODALITIES", "WORKLIST_FILENAME", "heatmap_caption",
           "remove_stale_temporaries"]

#: The worklist's file name when the output given is a folder.
WORKLIST_FILENAME = "worklist.csv"

#: Columns of the worklist CSV, in order.
WORKLIST_COLUMNS = ("patient", "patient ID", "study date", "modality", "status", "AI model", "AI score",
                    "AI positive", "AI intended use", "note findings", "note uncertain findings",
                    "radiologist call", "confidence", "n annotations", "StudyInstanceUID")


log = logging.getLogger(__name__)

_TEMPORARY = re.compile(r"^\..+\.(\d+)(?:\.json|\.pdf)?\.tmp$")


def _process_running(pid: int) -> bool:
    """Whether process ``pid`` may still be running (signal 0, POSIX kill()): True when it exists, also as
    another user's (PermissionError), and when the number is no process id at all (OverflowError: not ours to
    judge, so its file is left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        log.info("temporary file names process id %d, which is no process id; left alone", pid)
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove the temporary files an export killed before its rename left in ``folder`` (``.NAME.PID[.ext].tmp``
    whose process no longer runs); returns how many. Other files are never touched. A folder that cannot be
    listed or a file that cannot be removed is logged and left as it is (the export itself goes on)."""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError as exc:
        log.warning("cannot look for stale temporary files in %s: %s", folder, exc)
        return 0
    for name in names:
        m = _TEMPORARY.match(name)
        if not m or int(m.group(1)) == os.getpid() or _process_running(int(m.group(1))):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed += 1
        except OSError as exc:
            log.warning("cannot remove the stale temporary file %s: %s", os.path.join(folder, name), exc)
    return removed


def check_output_target(path: str | os.PathLike) -> Path:
    """The file an output should really be written to, refusing anything but a regular file: an output is
    written to a temporary file renamed over its target, which would replace a device, FIFO or socket by a file
    (and writing into a FIFO blocks). A symbolic link is followed to its target, so that the link itself is never
    replaced; links into /dev or /proc (``/dev/stdout``...) are refused.

    Returns the resolved target (``path`` itself when it is not a link).

    Raises
    ------
    ValueError: ``path`` is, or links to, something that is not a regular file or folder, or lies in (or links
        through) /dev or /proc (the message says what).
    """
    p = Path(os.path.abspath(path))
    for _ in range(40):  # every hop of a link chain: none may pass through /dev or /proc
        if p.parts[:2] in (("/", "dev"), ("/", "proc")):
            raise ValueError(f"{path} is or links to {p}: refusing to write a report there")
        if not p.is_symlink():
            break
        p = Path(os.path.abspath(os.path.join(p.parent, os.readlink(p))))
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return p
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return p
    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
    raise ValueError(f"{path} is a {kind}, not a file: refusing to write a report over it")


def resolve_output(path: str | os.PathLike, report: Report, suffix: str) -> Path:
    """``path`` itself, or ``<path>/<safe_basename(report)><suffix>`` when ``path`` is an existing folder or ends
    with a path separator."""
    p = Path(path)
    if p.is_dir() or str(path).endswith((os.sep, "/")):
        return p / (safe_basename(report) + suffix)
    return p


def resolve_worklist_output(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``<path>/worklist.csv`` when ``path`` is an existing folder or ends with a path
    separator (like :func:`resolve_output`)."""
    p = Path(path)
    if p.is_dir() or str(path).endswith((os.sep, "/")):
        return p / WORKLIST_FILENAME
    return p


def heatmap_caption(result) -> str:  # noqa: ANN001 - medviewer.store.cases.AIResult
    """The caption printed under a key image's heat map: method, class, model and P(positive label)."""
    from medviewer.report.render import METHOD_NAMES

    method = METHOD_NAMES.get(result.heatmap_method, result.heatmap_method or "heat map")
    return (f"{method}, class {result.heatmap_label or result.positive_label}, model {result.model} "
            f"{result.model_version}; P({result.positive_label}) {result.score:.3f}")


def render_key_images(store, identified: Report, shown: Report | None = None, *,  # noqa: ANN001
                      max_side: int = 1024) -> list[Image.Image | None]:
    """PIL images of the key images of ``identified`` (the report built without de-identification), in order; None
    where an image cannot be read.

    shown: the report the images illustrate (the de-identified copy, key images in the same order): its
    annotation texts are the ones drawn, and no patient text is drawn when it is de-identified. Heat maps are the
    stored ones of each key image's latest AI result (the first model's when several).
    """
    from medviewer.report.render import load_frame, render_key_image

    shown = shown or identified
    deid = shown.deidentified
    uid = identified.header["StudyInstanceUID"]
    paths = {img["sop_instance_uid"]: img["path"] for img in store.case_images(uid)}
    ai_by_id = {r.id: r for r in store.latest_ai_results(uid)}
    h = identified.header
    patient_text = None
    if not deid:
        from medviewer.io.display import patient_line

        patient_text = patient_line(h.get("PatientName", ""), h.get("PatientID", "")) or None
    out: list[Image.Image | None] = []
    for ident, entry in zip(identified.key_images, shown.key_images, strict=True):
        path = paths.get(ident.sop_instance_uid)
        if path is None:
            out.append(None)
            continue
        try:
            fi = load_frame(path, ident.frame)
        except Exception:  # noqa: BLE001 - already reported in the report as the entry's error
            out.append(None)
            continue
        heat, caption = None, ""
        for r in ident.ai_results:
            res = ai_by_id.get(r.id)
            if res is not None and res.heatmap_png:
                heat, caption = res.heatmap(), heatmap_caption(res)
                break
        anns = [{"kind": a.kind, "points": a.points, "text": a.text, "label": a.label} for a in entry.annotations]
        try:
            out.append(render_key_image(fi, annotations=anns, heatmap=heat, heat_caption=caption,
                                        patient_text=patient_text, max_side=max_side))
        except Exception:  # noqa: BLE001 - a rendering failure drops the picture, not the report
            out.append(None)
    return out


@dataclass
class ExportResult:
    """What :func:`export_case` wrote: the (possibly de-identified) report the PDF and the JSON were written from,
    and the files: ``{"pdf": path, "json": path, "pages": number of PDF pages as text}`` (the kinds written)."""

    report: Report
    files: dict[str, str] = field(default_factory=dict)


def report_json(report: Report) -> str:
    """The JSON export of a report (schema ``medviewer.report/1``): :meth:`Report.to_dict
    <medviewer.report.model.Report.to_dict>`, indented, UTF-8 text (not ASCII-escaped), one final newline."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def export_case(store, study_uid: str, pdf: str | os.PathLike | None = None,  # noqa: ANN001
                json_path: str | os.PathLike | None = None, deidentify: bool = False, *,
                max_key_images: int = 6, salt: str | None = None, log: bool = True) -> ExportResult:
    """Export one case as PDF and/or JSON, both written from one :class:`~medviewer.report.model.Report`; returns
    that (possibly de-identified) report and the written paths (:class:`ExportResult`).

    pdf / json_path: output files, or existing folders (then the file is named by
    :func:`medviewer.report.deid.safe_basename`, never from the patient's name or ID). deidentify: PS3.15 Basic
    Profile (see :mod:`medviewer.report.deid`). log: append a "report exported" event to the case's history.

    Both files are written to temporary names and renamed at the end: when one cannot be written, neither is
    (an existing file at the target is left as it was).

    Raises medviewer.report.content.ReportError (unknown case), DeidentificationError (identifiers would remain;
    nothing is written), ValueError (``pdf`` and ``json_path`` are the same file), OSError (cannot write).
    """
    salt = salt if salt is not None else installation_salt()
    identified = build_report(store, study_uid, max_key_images=max_key_images, salt=salt)
    report = deidentify_report(identified, salt) if deidentify else identified
    jp = resolve_output(json_path, report, ".json") if json_path is not None else None
    pp = resolve_output(pdf, report, ".pdf") if pdf is not None else None
    jp = check_output_target(jp) if jp is not None else None
    pp = check_output_target(pp) if pp is not None else None
    for target in (jp, pp):
        if target is not None:
            remove_stale_temporaries(target.parent)
    if jp is not None and pp is not None and os.path.abspath(jp) == os.path.abspath(pp):
        raise ValueError(f"the PDF and the JSON would both be written to {pp}")
    # Both files are written to temporary names beside their targets and renamed at the end, so a failure (of
    # either) leaves neither a partial file nor a JSON without its PDF.
    files: dict[str, str] = {}
    tmps: list[Path] = []
    try:
        if jp is not None:
            jp.parent.mkdir(parents=True, exist_ok=True)
            jtmp = jp.with_name(f".{jp.name}.{os.getpid()}.json.tmp")
            tmps.append(jtmp)
            jtmp.write_text(report_json(report), encoding="utf-8")
        if pp is not None:
            from medviewer.report.pdf import write_pdf

            pp.parent.mkdir(parents=True, exist_ok=True)
            ptmp = pp.with_name(f".{pp.name}.{os.getpid()}.pdf.tmp")
            tmps.append(ptmp)
            images = render_key_images(store, identified, report)
            files["pages"] = str(write_pdf(report, ptmp, images))
        if pp is not None:
            os.replace(ptmp, pp)
            files["pdf"] = str(pp)
        if jp is not None:
            os.replace(jtmp, jp)
            files["json"] = str(jp)
    finally:
        for t in tmps:
            if t.exists():
                t.unlink()
    if log and files and not getattr(store, "read_only", False):
        store.log_event(study_uid, "report exported", deidentified=bool(deidentify),
                        pdf=files.get("pdf", ""), json=files.get("json", ""),
                        pseudonym=report.pseudonym)
    return ExportResult(report=report, files=files)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:  # noqa: ANN001
    """A CSV cell; text that a spreadsheet would run as a formula gets a leading apostrophe (numbers are kept)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    s = str(value)
    if s.startswith(_FORMULA_START):
        try:
            float(s)
        except ValueError:
            return "'" + s
    return s


def export_worklist_csv(store, out_path: str | os.PathLike, deidentify: bool = False, *,  # noqa: ANN001
                        salt: str | None = None) -> int:
    """Write the worklist (:meth:`CaseStore.worklist`) as CSV (RFC 4180: comma-separated, double-quoted where
    needed, CRLF line ends, UTF-8, one header row of :data:`WORKLIST_COLUMNS`). Returns the number of cases.

    AI score is P(positive) of the case's latest model (max over its images, 4 decimals); "AI positive" and the
    booleans are "yes"/"no"; note findings (present) and note uncertain findings (hedged in the note, never among
    the note findings) are joined with "; "; the radiologist call is ``label: positive`` or
    ``label: negative``. deidentify: patient -> pseudonym, patient ID and study date emptied (PS3.15 Table E.1-1
    Z), StudyInstanceUID -> the same new UID as in de-identified reports (same salt). Cells starting with = + - @
    (and not numbers) are prefixed with an apostrophe against spreadsheet formula injection.

    out_path: the CSV file, or a folder (then ``<folder>/worklist.csv``, see :func:`resolve_worklist_output`).

    Raises OSError when ``out_path`` cannot be written.
    """
    salt = salt if salt is not None else (installation_salt() if deidentify else "")
    rows = store.worklist()
    out_path = resolve_worklist_output(out_path)
    out_path = check_output_target(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_path.parent)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fp:
            w = csv.writer(fp, dialect="excel", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
            w.writerow(WORKLIST_COLUMNS)
            for row in rows:
                c = row.case
                if deidentify:
                    patient = pseudonym(c.patient_id, c.patient_name, salt, c.study_instance_uid)
                    pid, date, uid = "", "", new_uid(c.study_instance_uid, salt)
                else:
                    patient, pid, date, uid = c.patient_name, c.patient_id, c.study_date, c.study_instance_uid
                call = ""
                if row.radiologist_label:
                    call = f"{row.radiologist_label}: {'positive' if row.radiologist_positive else 'negative'}"
                scope = ""
                if row.ai_status == "out_of_scope":
                    scope = f"outside the model's intended use ({row.ai_scope_reason})"
                elif row.ai_status == "scored_anyway":
                    scope = f"outside the model's intended use ({row.ai_scope_reason}), scored anyway"
                w.writerow([_cell(v) for v in (
                    patient, pid, date, c.modalities.replace("\\", " "), c.status, row.ai_model, row.ai_score,
                    row.ai_positive, scope, "; ".join(row.note_findings), "; ".join(row.note_uncertain), call,
                    row.radiologist_confidence, row.n_annotations, uid)])
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(rows)


#: Modalities scored by the bundled chest radiograph model when a case has no AI result.
RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "RG")


def score_case_radiographs(store, study_uid: str, model=None, *, explain: str = "gradcam",  # noqa: ANN001
                           device: str | None = None) -> tuple[int, list[str]]:
    """Score the case's single-frame greyscale radiographs (modality CR/DX/DR/RG) with the image model and store
    the results (with their heat maps); returns (number scored, errors as "image: reason").

    model: a loaded :class:`medviewer.inference.scorer.ImageModel` (default: the bundled model, loaded here only
    when there is something to score; this imports torch). Raises what ``ImageModel.load`` raises
    (ModelCardError, UnsafeWeightsError, ValueError, ImportError when torch is missing).
    """
    from medviewer.inference.frames import read_frame

    targets = [img for img in store.case_images(study_uid)
               if (img.get("modality") or "").upper() in RADIOGRAPH_MODALITIES and int(img.get("number_of_frames")
                                                                                        or 1) == 1]
    if not targets:
        return 0, []
    if model is None:
        from medviewer.inference.scorer import ImageModel

        model = ImageModel.load(device=device)
    # Scored as a run, like a background re-score: the results do not count as a reader's work on the case (its
    # status stays as it is).
    run_id = store.start_run("report export", {model.card.name: model.card.weights_sha256}, 1)
    n, errors = 0, []
    for img in targets:
        try:
            mf = read_frame(img["path"], 0)
            # the intended-use gate decides; an out-of-scope image is stored as such (no call) and reported so
            res = model.score_frame(mf, explain=explain)
            store.add_ai_result(study_uid, res, run_id=run_id)
            n += 1
        except Exception as exc:  # noqa: BLE001 - one unreadable image does not stop the others
            errors.append(f"{img.get('modality', '')} #{img.get('instance_number')}: "
                          f"{getattr(exc, 'reason', None) or exc}")
    store.update_run(run_id, n_done=1, state="finished")
    return n, errors
