"""The PDF form of a report (reportlab platypus): A4, header table, banner, findings, AI, key images, audit trail.

Text is set in DejaVu Sans when it can be found (see :mod:`medviewer.report.fonts`), so measurement labels and notes
keep their ``± ° µ ²``; characters it lacks (Chinese, Japanese, Korean...) are set in a fallback font when one is
installed (:func:`medviewer.report.fonts.find_cjk_font`), else replaced by ASCII stand-ins, never dropped silently:
a PDF where some had to be printed as ``?`` says so near the top (:data:`FONT_MISSING_WARNING`).

A de-identified report's PDF metadata (CreationDate, ModDate) is its shifted generation time, and its title,
author, subject and creator carry no identifier (the pseudonym at most).
Key images are embedded as JPEG (quality 90) at the pixel size they were rendered at, which keeps a page quick to
rasterise.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from xml.sax.saxutils import escape

from medviewer.io.display import format_age, format_da, format_person_name
from medviewer.report import fonts as _fonts
from medviewer.report.fonts import find_ttf, printable, stand_in, ttf_charset
from medviewer.report.model import AIResultEntry, Report
from medviewer.report.render import METHOD_NAMES

__all__ = ["write_pdf", "register_fonts", "register_fallback_font", "FONT_MISSING_WARNING"]

_FONTS: dict[str, object] = {}
_FALLBACKS: dict[str, tuple[str, frozenset[int]] | None] = {}

#: Printed near the top of a PDF in which some characters had to be replaced (no installed font has them).
FONT_MISSING_WARNING = ("Some characters could not be printed: font missing (they are shown as ?; install a font "
                        "with them, e.g. the Debian/Ubuntu package fonts-droid-fallback for Chinese, Japanese and "
                        "Korean). The JSON export keeps the full text.")


def register_fonts() -> tuple[str, str, frozenset[int] | None]:
    """Register the report's fonts with reportlab once; returns (regular name, bold name, charset or None).

    A TrueType font found by :func:`medviewer.report.fonts.find_ttf` is embedded (subset); without one the
    standard Helvetica is used (WinAnsi characters only; the rest are replaced by :func:`fonts.printable`).
    """
    if _FONTS:
        return _FONTS["regular"], _FONTS["bold"], _FONTS["charset"]  # type: ignore[return-value]
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    regular, bold, charset = "Helvetica", "Helvetica-Bold", None
    path = find_ttf(False)
    if path is not None:
        try:
            pdfmetrics.registerFont(TTFont("MVSans", str(path)))
            regular = bold = "MVSans"
            charset = ttf_charset(str(path)) or None
            bpath = find_ttf(True)
            if bpath is not None:
                try:
                    pdfmetrics.registerFont(TTFont("MVSans-Bold", str(bpath)))
                    bold = "MVSans-Bold"
                    if charset is not None:
                        bold_cs = ttf_charset(str(bpath))
                        charset = charset & bold_cs if bold_cs else charset
                except Exception:  # noqa: BLE001 - a broken bold face: use the regular one
                    bold = "MVSans"
            addMapping("MVSans", 0, 0, regular)
            addMapping("MVSans", 1, 0, bold)
            addMapping("MVSans", 0, 1, regular)
            addMapping("MVSans", 1, 1, bold)
        except Exception:  # noqa: BLE001 - an unreadable TTF: fall back on the standard fonts
            regular, bold, charset = "Helvetica", "Helvetica-Bold", None
    _FONTS.update(regular=regular, bold=bold, charset=charset)
    return regular, bold, charset


def register_fallback_font() -> tuple[str, frozenset[int]] | None:
    """Register the fallback font for characters the main font lacks (CJK: :func:`fonts.find_cjk_font`) once per
    font file; returns (font name, charset), or None when there is no usable one."""
    path = _fonts.find_cjk_font()
    if path is None:
        return None
    key = str(path)
    if key not in _FALLBACKS:
        from reportlab.lib.fonts import addMapping
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        name = f"MVFallback{len(_FALLBACKS)}"
        try:
            charset = ttf_charset(key)
            if not charset:
                raise ValueError("no glyph table")
            pdfmetrics.registerFont(TTFont(name, key))
            for bold in (0, 1):
                for italic in (0, 1):
                    addMapping(name, bold, italic, name)
            _FALLBACKS[key] = (name, charset)
        except Exception:  # noqa: BLE001 - an unreadable font: no fallback
            _FALLBACKS[key] = None
    return _FALLBACKS[key]


# ------------------------------------------------------------------------------------------------------------------
# Formatting helpers
# ------------------------------------------------------------------------------------------------------------------

DASH = "\N{EM DASH}"


def _fmt_name(pn: str) -> str:
    """DICOM PN -> ``Prefix Family, Given Middle Suffix``, as everywhere (:mod:`medviewer.io.display`)."""
    return format_person_name(pn)


def _fmt_date(da: str) -> str:
    """DICOM DA -> ``YYYY-MM-DD``, as everywhere (:mod:`medviewer.io.display`)."""
    return format_da(da)


def _fmt_time(tm: str) -> str:
    tm = (tm or "").strip().replace(":", "")
    if len(tm) >= 4 and tm[:4].isdigit():
        return f"{tm[:2]}:{tm[2:4]}" + (f":{tm[4:6]}" if len(tm) >= 6 else "")
    return tm


def _fmt_iso(t: str | None) -> str:
    if not t:
        return DASH
    return t.replace("T", " ").replace("Z", " UTC")


def _fmt_method(m: str) -> str:
    return METHOD_NAMES.get(m or "", m or "")


def _fmt_p(p) -> str:  # noqa: ANN001
    try:
        return f"{float(p):.3f}"
    except (TypeError, ValueError):
        return DASH


class _Doc:
    """Paragraph factory bound to the registered fonts."""

    def __init__(self) -> None:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle

        self.regular, self.bold, self.charset = register_fonts()
        self.fallback: str | None = None
        self.fallback_charset: frozenset[int] = frozenset()
        fb = register_fallback_font()
        if fb is not None:
            self.fallback, self.fallback_charset = fb
        #: True once a character had to be printed as "?" (no installed font has it).
        self.missing = False
        self.colors = colors
        base = {"fontName": self.regular, "fontSize": 9, "leading": 11.5}
        self.styles = {
            "body": ParagraphStyle("body", **base, spaceAfter=3),
            "small": ParagraphStyle("small", fontName=self.regular, fontSize=7.5, leading=9.5),
            "cell": ParagraphStyle("cell", fontName=self.regular, fontSize=8, leading=10),
            "cellb": ParagraphStyle("cellb", fontName=self.bold, fontSize=8, leading=10),
            "title": ParagraphStyle("title", fontName=self.bold, fontSize=17, leading=21, spaceAfter=2),
            "subtitle": ParagraphStyle("subtitle", fontName=self.regular, fontSize=10.5, leading=13,
                                       textColor=colors.HexColor("#444444"), spaceAfter=6),
            "h2": ParagraphStyle("h2", fontName=self.bold, fontSize=12, leading=15, spaceBefore=9, spaceAfter=4,
                                 textColor=colors.HexColor("#1F3A5F")),
            "h3": ParagraphStyle("h3", fontName=self.bold, fontSize=9.5, leading=12, spaceBefore=5, spaceAfter=2),
            "banner": ParagraphStyle("banner", fontName=self.bold, fontSize=11, leading=14,
                                     textColor=colors.white),
            "bannersmall": ParagraphStyle("bannersmall", fontName=self.regular, fontSize=8, leading=10,
                                          textColor=colors.white),
            "warn": ParagraphStyle("warn", fontName=self.regular, fontSize=8.5, leading=10.5,
                                   textColor=colors.HexColor("#8A4B00")),
            "note": ParagraphStyle("note", fontName=self.regular, fontSize=9.5, leading=12.5),
            "caption": ParagraphStyle("caption", fontName=self.regular, fontSize=8, leading=10,
                                      textColor=colors.HexColor("#333333"), spaceAfter=2),
        }

    def _main_has(self, ch: str) -> bool:
        if self.charset is not None:
            return ord(ch) in self.charset
        try:
            ch.encode("cp1252")
            return True
        except UnicodeEncodeError:
            return False

    def runs(self, s) -> list[tuple[str | None, str]]:  # noqa: ANN001
        """``s`` as (font name, text) runs: None for the main font, the fallback font's name for characters only
        it has; characters no font has are replaced (:func:`fonts.stand_in`; :attr:`missing` set when lost)."""
        s = "" if s is None else str(s)
        out: list[tuple[str | None, str]] = []
        for ch in s:
            font = None
            if ch in "\n\t" or self._main_has(ch):
                piece = ch
            elif self.fallback is not None and ord(ch) in self.fallback_charset:
                font, piece = self.fallback, ch
            else:
                piece = stand_in(ch)
                if piece == "?":
                    self.missing = True
            if out and out[-1][0] == font:
                out[-1] = (font, out[-1][1] + piece)
            else:
                out.append((font, piece))
        return out

    def text(self, s) -> str:  # noqa: ANN001
        """Escaped, drawable Paragraph markup (newlines become line breaks; characters only the fallback font has
        are set in it)."""
        parts = []
        for font, t in self.runs(s):
            t = escape(t).replace("\n", "<br/>")
            parts.append(t if font is None else f'<font name="{font}">{t}</font>')
        return "".join(parts)

    def p(self, s, style: str = "body", raw: bool = False):  # noqa: ANN001, ANN201
        from reportlab.platypus import Paragraph

        return Paragraph(s if raw else self.text(s), self.styles[style])

    def table(self, rows, widths, header: bool = True, zebra: bool = True, style_extra=()):  # noqa: ANN001, ANN201
        """A table of Paragraph cells (strings are wrapped), header row bold on grey, repeated on page breaks."""
        from reportlab.platypus import Table, TableStyle

        cells = []
        for r, row in enumerate(rows):
            out = []
            for c in row:
                if isinstance(c, str) or c is None:
                    out.append(self.p(c if c not in (None, "") else DASH, "cellb" if header and r == 0 else "cell"))
                else:
                    out.append(c)
            cells.append(out)
        t = Table(cells, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
        cmds = [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, self.colors.HexColor("#CCCCCC")),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ("LEFTPADDING", (0, 0), (-1, -1), 3),
            ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ]
        if header:
            cmds.append(("BACKGROUND", (0, 0), (-1, 0), self.colors.HexColor("#E4E8EE")))
        if zebra:
            for r in range(1 if header else 0, len(cells)):
                if (r % 2 == 0) == header:
                    cmds.append(("BACKGROUND", (0, r), (-1, r), self.colors.HexColor("#F6F7F9")))
        t.setStyle(TableStyle(cmds + list(style_extra)))
        return t


def _pdf_date(iso: str | None) -> str:
    """ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ`` -> PDF date ``D:YYYYMMDDHHMMSS+00'00'`` (PDF 32000-1 7.9.4); the
    reportlab default date (2000-01-01, its "invariant" time) when ``iso`` is not such a time."""
    import re

    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z", iso or "")
    return "D:" + ("".join(m.groups()) if m else "20000101000000") + "+00'00'"


def _footer_canvas(doc_font: str, left: str, generated: str, charset, pdf_date: str | None = None,  # noqa: ANN001
                   runs=None):  # noqa: ANN001, ANN202
    """A canvas class that writes "page N of M", the generation time and the banner text in every footer.

    pdf_date: the PDF date written as the document's CreationDate and ModDate instead of the current time (for
    de-identified reports: the shifted generation time). runs: a function splitting ``left`` into (font name or
    None, text) runs (fallback font for characters the main font lacks)."""
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    left_runs = runs(left) if runs is not None else [(None, printable(left, charset, None if charset else "cp1252"))]

    class FooterCanvas(canvas.Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []
            if pdf_date is not None:
                self.setDateFormatter(lambda *_ymdhms: pdf_date)

        def showPage(self) -> None:  # noqa: N802 - reportlab's API
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._footer(total)
                super().showPage()
            super().save()

        def _footer(self, total: int) -> None:
            w, _h = self._pagesize
            self.saveState()
            self.setStrokeColorRGB(0.75, 0.75, 0.75)
            self.setLineWidth(0.4)
            self.line(15 * mm, 14 * mm, w - 15 * mm, 14 * mm)
            self.setFont(doc_font, 7.5)
            self.setFillColorRGB(0.3, 0.3, 0.3)
            x = 15 * mm
            for font, text in left_runs:
                self.setFont(font or doc_font, 7.5)
                self.drawString(x, 10 * mm, text)
                x += self.stringWidth(text, font or doc_font, 7.5)
            self.setFont(doc_font, 7.5)
            self.drawRightString(w - 15 * mm, 10 * mm, f"Page {self._pageNumber} of {total}")
            self.setFillColorRGB(0.65, 0.1, 0.1)
            self.drawString(15 * mm, 6.5 * mm, "NOT FOR DIAGNOSTIC USE")
            self.setFillColorRGB(0.3, 0.3, 0.3)
            self.drawRightString(w - 15 * mm, 6.5 * mm, f"Generated {generated}")
            self.restoreState()

    return FooterCanvas


def _jpeg(img, quality: int = 90) -> io.BytesIO:  # noqa: ANN001 - PIL image
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    buf.seek(0)
    return buf


# ------------------------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------------------------


def _header_section(d: _Doc, report: Report, width: float) -> list:
    from reportlab.lib.units import mm

    h = report.header
    deid = report.deidentified
    removed = "removed (de-identified)"
    actions = report.deidentification.actions if report.deidentification is not None else {}

    def val(kw: str, fmt=lambda x: x) -> str:  # noqa: ANN001
        if kw not in h or h.get(kw) in ("", None):
            return removed if deid and kw in actions else DASH
        return fmt(str(h[kw]))

    lw = 30 * mm
    vw = width / 2 - lw
    rows = []
    if deid:
        rows.append(["Pseudonym", report.pseudonym, "Patient ID", val("PatientID")])
        rows.append(["Patient name", val("PatientName", _fmt_name), "Birth date", val("PatientBirthDate",
                                                                                      _fmt_date)])
    else:
        rows.append(["Patient name", val("PatientName", _fmt_name), "Patient ID", val("PatientID")])
        rows.append(["Birth date", val("PatientBirthDate", _fmt_date), "Sex", val("PatientSex")])
    if deid:
        rows.append(["Sex", val("PatientSex"), "Modalities", val("ModalitiesInStudy", lambda s: s.replace("\\", ", "))])
    rows.append(["Study date", val("StudyDate", _fmt_date), "Study time", val("StudyTime", _fmt_time)])
    rows.append(["Accession", val("AccessionNumber"), "Study ID", val("StudyID")])
    if not deid:
        rows.append(["Modalities", val("ModalitiesInStudy", lambda s: s.replace("\\", ", ")), "Status",
                     report.case.status])
    else:
        rows.append(["Status", report.case.status, "Images", str(report.case.n_images)])
    extras = [("InstitutionName", "Institution"), ("ReferringPhysicianName", "Referring physician"),
              ("PatientAge", "Age"), ("Manufacturer", "Manufacturer"), ("ManufacturerModelName", "Model"),
              ("StationName", "Station"), ("BodyPartExamined", "Body part"), ("OperatorsName", "Operator"),
              ("PerformingPhysicianName", "Performing physician"), ("InstitutionalDepartmentName", "Department"),
              ("OtherPatientIDs", "Other patient IDs")]
    pending = []
    for kw, label in extras:
        if h.get(kw):
            v = _fmt_name(h[kw]) if kw.endswith("Name") and kw not in ("InstitutionName", "StationName") else h[kw]
            v = format_age(v) if kw == "PatientAge" else v
            pending.append((label, v))
    for i in range(0, len(pending), 2):
        a = pending[i]
        b = pending[i + 1] if i + 1 < len(pending) else ("", "")
        rows.append([a[0], a[1], b[0], b[1] or ""])
    span_rows = []
    rows.append(["Description", val("StudyDescription"), "", ""])
    span_rows.append(len(rows) - 1)
    rows.append(["Study UID", val("StudyInstanceUID"), "", ""])
    span_rows.append(len(rows) - 1)
    cells = []
    for r in rows:
        cells.append([d.p(r[0], "cellb"), d.p(r[1] or DASH, "cell"), d.p(r[2], "cellb"),
                      d.p(r[3] or (DASH if r[2] else ""), "cell")])
    extra: list[tuple] = [("SPAN", (1, r), (3, r)) for r in span_rows]  # reportlab TableStyle commands
    extra.append(("BOX", (0, 0), (-1, -1), 0.5, d.colors.HexColor("#9AA5B1")))
    extra.append(("BACKGROUND", (0, 0), (0, -1), d.colors.HexColor("#EEF1F5")))
    extra.append(("BACKGROUND", (2, 0), (2, -1), d.colors.HexColor("#EEF1F5")))
    return [d.table(cells, [lw, vw, lw, vw], header=False, zebra=False, style_extra=extra)]


def _banner(d: _Doc, report: Report, width: float) -> list:
    from reportlab.platypus import Table, TableStyle

    body = [d.p("NOT FOR DIAGNOSTIC USE", "banner"), d.p(report.disclaimer, "bannersmall")]
    t = Table([[body]], colWidths=[width], hAlign="LEFT")
    t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), d.colors.HexColor("#A61B1B")),
                           ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                           ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    return [t]


def _signoff(d: _Doc, report: Report) -> list:
    s = report.sign_off
    if s.signed:
        who = s.reader or ("(reader removed)" if report.deidentified else "(no reader recorded)")
        text = f"<b>Signed off</b> by {d.text(who)} at {d.text(_fmt_iso(s.signed_at))}."
    else:
        text = f"<b>Not signed off</b> (status: {d.text(s.status)})."
    return [d.p(text, "body", raw=True)]


#: The model's call on a note finding as the PDF prints it (by NoteFinding.state).
_NOTE_CALLS = {"present": "positive", "absent": "negative", "uncertain": "uncertain"}


def _note_section(d: _Doc, report: Report, width: float) -> list:
    note = report.note
    out = [d.p("Report note", "h2")]
    if note.text:
        out.append(d.p(note.text, "note"))
        out.append(d.p(f"Note saved {_fmt_iso(note.saved_at)} ({note.versions} version"
                       f"{'s' if note.versions != 1 else ''}).", "small"))
    else:
        out.append(d.p("No note was written for this case.", "body"))
    if note.findings:
        out.append(d.p("Findings classified from the note", "h3"))
        rows = [["Finding", "P", "Threshold", "P(hedged)", "Model call", "Radiologist"]]
        for f in note.findings:
            rows.append([f.label, _fmt_p(f.probability), _fmt_p(f.threshold),
                         _fmt_p(f.uncertain_probability),  # a dash when the finding has none
                         _NOTE_CALLS.get(f.state, f.state), f.decision or DASH])
        w = [width * 0.28, width * 0.10, width * 0.12, width * 0.12, width * 0.16, width * 0.22]
        out.append(d.table(rows, w))
        cur = note.findings_current
        hedged = (f" Uncertain (hedged in the note, not counted as positive): {', '.join(note.uncertain)}."
                  if note.uncertain else "")
        out.append(d.p(f"Classifier {note.model} {note.model_version}, run "
                       f"{_fmt_iso(note.classified_at)}"
                       + ("" if cur in (None, True) else " on an earlier version of the note") + ". Positives after "
                       f"the radiologist's review: {', '.join(note.positives) or 'none'}.{hedged}", "small"))
    return out


def _scores_section(d: _Doc, report: Report, width: float) -> list:
    scores = report.radiologist_scores
    out = [d.p("Radiologist assessment", "h2")]
    if not scores:
        out.append(d.p("No radiologist call recorded.", "body"))
    else:
        rows = [["Finding", "Call", "Confidence", "Overrides AI", "Reader", "Time", "Comment"]]
        for s in report.current_reader_calls():
            rows.append([s.label, s.call, f"{s.confidence}/5" if s.confidence else DASH,
                         "yes" if s.override else "no", s.reader or DASH,
                         _fmt_iso(s.created_at), s.comment or DASH])
        w = [0.15, 0.09, 0.12, 0.10, 0.14, 0.17, 0.23]
        out.append(d.table(rows, [width * x for x in w]))
        earlier = sum(1 for s in scores if not s.current)
        if earlier:
            out.append(d.p(f"{earlier} earlier call{'s' if earlier != 1 else ''} superseded (kept in the case "
                           "history).", "small"))
    return out


def _ai_call(r: AIResultEntry) -> str:
    """``POSITIVE`` / ``negative``: the AI call of a result that has one."""
    return "POSITIVE" if r.positive else "negative"


def _ai_section(d: _Doc, report: Report, width: float) -> list:
    ai = report.ai
    results = ai.results
    out = [d.p("AI results", "h2")]
    if not results:
        out.append(d.p("No AI result for this case.", "body"))
        return out
    for card in ai.models:
        if not card.available:
            note = card.note if card.note is not None else "model card not available"
            out.append(d.p(f"{card.name}: {note}.", "body"))
            continue
        m = card.test_metrics or {}
        metr = ", ".join(f"{k.replace('_', ' ')} {float(m[k]):.3f}" for k in ("auc", "accuracy", "sensitivity",
                                                                              "specificity") if k in m)
        n = f" (n = {m['n']}" + (f", {m['n_positive']} positive)" if "n_positive" in m else ")") if "n" in m else ""
        text = (f"<b>{d.text(card.name)} {d.text(card.version)}</b>: {d.text(card.task or '')}. "
                f"<b>Intended use:</b> {d.text(card.intended_use or '')}. "
                f"<b>Test metrics</b>{d.text(n)}: {d.text(metr or 'not recorded')}. "
                f"Threshold {float(card.threshold or 0):.3f} on P({d.text(card.positive_label or '')})"
                + (f" ({d.text(card.threshold_rule)})" if card.threshold_rule else "")
                + f"; trained on {d.text(card.training_data or '')}; weights "
                f"{d.text((card.weights_sha256 or '')[:12])}...")
        out.append(d.p(text, "body", raw=True))
    rows = [["Image", "Model", "P(positive)", "Threshold", "AI call", "Heat map", "Time"]]
    shown = results[:60]
    for r in shown:
        if r.score is None:  # outside the model's intended use: no probability, no call
            rows.append([r.image, f"{r.model} {r.version}", DASH, _fmt_p(r.threshold),
                         "no call", DASH, _fmt_iso(r.created_at)])
            continue
        rows.append([r.image, f"{r.model} {r.version}",
                     f"{_fmt_p(r.score)} ({r.positive_label})", _fmt_p(r.threshold), _ai_call(r),
                     f"{_fmt_method(r.heatmap_method)} {r.heatmap_label or ''}".strip() if r.has_heatmap else DASH,
                     _fmt_iso(r.created_at)])
    w = [0.16, 0.17, 0.17, 0.10, 0.10, 0.13, 0.17]
    out.append(d.table(rows, [width * x for x in w]))
    for r in shown:
        notes = ([r.scope] if r.scope else []) + list(r.warnings)
        if notes:
            out.append(d.p(f"{d.text(r.image)}: {d.text('; '.join(notes))}.", "small", raw=True))
    if len(results) > len(shown):
        out.append(d.p(f"... and {len(results) - len(shown)} more results (see the JSON export).", "small"))
    out.append(d.p(ai.disclaimer, "small"))
    return out


class _ImageBlock:
    """Factory of the key-image flowable (defined lazily so that importing this module does not import reportlab)."""

    cls = None

    @classmethod
    def make(cls, top: list, image, caption: list, max_w: float, max_h: float, min_h: float):  # noqa: ANN001, ANN206
        if cls.cls is None:
            from reportlab.lib.utils import ImageReader
            from reportlab.platypus import Flowable

            class ImageBlock(Flowable):
                """Headings, one picture and its caption kept together; the picture shrinks (down to ``min_h``) to
                use the rest of a page instead of leaving it blank, and is drawn at full size on a new page."""

                def __init__(self, top, image, caption, max_w, max_h, min_h):  # noqa: ANN001
                    super().__init__()
                    self.top, self.caption = top, caption
                    self.reader = ImageReader(_jpeg(image)) if image is not None else None
                    self.iw, self.ih = image.size if image is not None else (1, 1)
                    self.max_w, self.max_h, self.min_h = max_w, max_h, min_h
                    self.gap = 3.0

                def _heights(self, aw: float, ah: float) -> tuple[list, list, float, float]:
                    th = [f.wrap(aw, ah)[1] for f in self.top]
                    ch = [f.wrap(aw, ah)[1] for f in self.caption]
                    text_h = sum(th) + sum(ch) + self.gap * (len(th) + len(ch))
                    if self.reader is None:
                        return th, ch, 0.0, text_h
                    s = min(min(self.max_w, aw) / self.iw, self.max_h / self.ih)
                    room = ah - text_h
                    if room < self.ih * s:
                        s = max(room, self.min_h) / self.ih if room >= self.min_h else s
                    return th, ch, self.ih * s, text_h

                def wrap(self, aw: float, ah: float) -> tuple[float, float]:
                    self._th, self._ch, self._img_h, text_h = self._heights(aw, ah)
                    self.width, self.height = aw, text_h + self._img_h
                    return self.width, self.height

                def split(self, aw: float, ah: float) -> list:
                    return []  # never split: the whole block moves to the next page

                def draw(self) -> None:
                    y = self.height
                    for f, h in zip(self.top, self._th, strict=True):
                        y -= h
                        f.drawOn(self.canv, 0, y)
                        y -= self.gap
                    if self.reader is not None:
                        w = self._img_h * self.iw / self.ih
                        y -= self._img_h
                        self.canv.drawImage(self.reader, 0, y, width=w, height=self._img_h)
                        y -= self.gap
                    for f, h in zip(self.caption, self._ch, strict=True):
                        y -= h
                        f.drawOn(self.canv, 0, y)
                        y -= self.gap

            cls.cls = ImageBlock
        return cls.cls(top, image, caption, max_w, max_h, min_h)


def _key_images_section(d: _Doc, report: Report, images, width: float) -> list:  # noqa: ANN001
    from reportlab.lib.units import mm
    from reportlab.platypus import Spacer

    keys = report.key_images
    heading = d.p("Key images", "h2")
    out: list = []
    if not keys:
        return [heading, d.p("No image in this case.", "body")]
    for n, k in enumerate(keys):
        img = images[n] if images is not None and n < len(images) else None
        parts = [k.image, k.series_description or "", k.reason]
        title = f"Key image {n + 1}: " + " \N{EM DASH} ".join(p for p in parts if p)
        top = ([heading] if n == 0 else []) + [d.p(title, "h3")]
        caption = []
        if img is None:
            caption.append(d.p(f"Image not shown: {k.error or 'not rendered'}.", "warn"))
        sp = k.pixel_spacing_mm
        win = k.window
        cap = [f"SOPInstanceUID {k.sop_instance_uid}"]
        if int(k.number_of_frames or 1) > 1:
            cap.append(f"frame {int(k.frame) + 1} of {k.number_of_frames}")
        if sp:
            cap.append(f"pixel spacing {sp[0]:.3f} x {sp[1]:.3f} mm")
        else:
            cap.append("no pixel spacing (sizes in pixels)")
        if win:
            cap.append(f"window C {win.center:g} / W {win.width:g}")
        if k.burned_in_annotation:
            cap.append(f"BurnedInAnnotation {k.burned_in_annotation}")
        caption.append(d.p("; ".join(cap) + ".", "caption"))
        for r in k.ai_results:
            if r.score is None:
                caption.append(d.p(f"AI {r.model} {r.version}: no call, {r.scope}.", "caption"))
                continue
            caption.append(d.p(f"AI {r.model} {r.version}: P({r.positive_label}) = {_fmt_p(r.score)}, "
                               f"threshold {_fmt_p(r.threshold)} \N{RIGHTWARDS ARROW} {_ai_call(r)}"
                               + (f"; heat map: {_fmt_method(r.heatmap_method)} for class {r.heatmap_label}"
                                  if r.has_heatmap else "") + ".", "caption"))
        anns = k.annotations
        table = None
        if anns:
            rows = [["#", "Kind", "Text", "Measurement", "Source"]]
            for i, a in enumerate(anns, 1):
                rows.append([str(i), a.kind, a.text or DASH, a.label or DASH, a.measurement_source])
            w = [0.05, 0.10, 0.25, 0.45, 0.15]
            table = d.table(rows, [width * x for x in w])
        if table is not None and len(anns) <= 8:  # a short table stays with its picture
            out.append(_ImageBlock.make(top, img, caption + [table], width, 115 * mm, 60 * mm))
        else:
            out.append(_ImageBlock.make(top, img, caption, width, 115 * mm, 60 * mm))
            if table is not None:
                out.append(d.p(f"Annotations of key image {n + 1}", "h3"))
                out.append(table)
        out.append(Spacer(1, 5 * mm))
    other = report.other_annotations
    if other:
        out.append(d.p("Annotations on other images", "h3"))
        rows = [["Image", "Kind", "Text", "Measurement (stored)"]]
        for a in other:
            rows.append([a.image or "", a.kind, a.text or DASH, a.label or DASH])
        out.append(d.table(rows, [width * x for x in (0.2, 0.1, 0.25, 0.45)]))
    return out


def _audit_section(d: _Doc, report: Report, width: float) -> list:
    from reportlab.platypus import KeepTogether

    ts = report.timestamps
    names = [("case_created", "Case created"), ("case_updated", "Case updated"), ("note_saved", "Note saved"),
             ("findings_classified", "Note findings classified"), ("last_ai_result", "Latest AI result"),
             ("last_radiologist_score", "Latest radiologist call"), ("signed_off", "Signed off"),
             ("report_generated", "Report generated")]
    rows = [["Event", "Time (UTC)"]] + [[label, _fmt_iso(getattr(ts, key))] for key, label in names]
    rows.append(["Entries in the case history", str(report.events)])
    if report.deidentified:
        rows.append(["Note", "de-identified report: every time is shifted by the same secret number of days"])
    out = [KeepTogether([d.p("Timestamps and audit", "h2"), d.table(rows, [width * 0.45, width * 0.55])])]
    deid = report.deidentification
    if deid is not None:
        block = [d.p("De-identification", "h3"),
                 d.p(f"{deid.profile}. PatientIdentityRemoved: {deid.PatientIdentityRemoved}. "
                     f"Method: {deid.DeidentificationMethod}. Codes: "
                     + ", ".join(f"{c.CodeValue} {c.CodeMeaning}" for c in deid.DeidentificationMethodCodeSequence)
                     + f". {deid.uids_replaced} UIDs replaced. Pixel data not cleaned: key images are "
                       "drawn without patient text.", "small")]
        if deid.actions:
            block.append(d.p("Header actions: " + "; ".join(f"{k} {v}" for k, v in deid.actions.items()) + ".",
                             "small"))
        out.append(KeepTogether(block))
    out.append(d.p(f"Generated by {report.generator.name} {report.generator.version}, report schema "
                   f"{report.schema}.", "small"))
    return out


def write_pdf(report: Report, out_path: str | os.PathLike, images=None) -> int:  # noqa: ANN001
    """Write ``report`` (from :func:`medviewer.report.content.build_report`, possibly de-identified) as an A4 PDF.

    images: PIL images aligned with ``report.key_images`` (None entries, or None for none: the key images are
    listed without pictures). The file is written to a temporary name beside ``out_path`` and renamed, so a failed
    export never leaves a partial PDF. Returns the number of pages.

    Raises OSError when ``out_path`` cannot be written.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate, Spacer

    d = _Doc()
    out_path = Path(out_path)
    page_w = A4[0]
    margin = 15 * mm
    width = page_w - 2 * margin
    deid = report.deidentified
    h = report.header
    if deid:
        who = f"Pseudonym {report.pseudonym} (de-identified)"
    else:
        who = f"{_fmt_name(h.get('PatientName', '')) or '(no name)'}  ID {h.get('PatientID', '') or DASH}"
        if h.get("StudyDate"):
            who += f"  study {_fmt_date(h['StudyDate'])}"
    generated = _fmt_iso(report.generated_at)
    story = [d.p("Radiology case report", "title")]
    sub = h.get("StudyDescription") or ("De-identified report" if deid else "")
    if deid and h.get("StudyDescription"):
        sub += " (de-identified report)"
    if sub:
        story.append(d.p(sub, "subtitle"))
    story += _banner(d, report, width)
    story.append(Spacer(1, 3 * mm))
    warn_at = len(story)
    story += _header_section(d, report, width)
    story.append(Spacer(1, 2 * mm))
    story += _signoff(d, report)
    for w in report.warnings:
        story.append(d.p(f"\N{WARNING SIGN} {w}", "warn"))
    story += _note_section(d, report, width)
    story += _scores_section(d, report, width)
    story += _ai_section(d, report, width)
    story += _key_images_section(d, report, images, width)
    story += _audit_section(d, report, width)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    # Document information: nothing about the patient. A de-identified report's dates are its shifted
    # generation time (never the real time, which would give the secret date shift away), and "invariant" mode
    # keeps the real time out of the file ID too.
    title = "medviewer report" + (f" {report.pseudonym}" if deid else "")
    doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=14 * mm,
                            bottomMargin=20 * mm, title=title, author="medviewer",
                            subject="Not for diagnostic use", creator="medviewer", invariant=1 if deid else None)
    canvasmaker = _footer_canvas(d.regular, who, generated, d.charset,
                                 _pdf_date(report.generated_at) if deid else None, d.runs)
    if d.missing:
        story.insert(warn_at, d.p(FONT_MISSING_WARNING, "warn"))
    try:
        doc.build(story, canvasmaker=canvasmaker)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return int(doc.page)
