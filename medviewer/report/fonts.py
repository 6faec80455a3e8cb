"""Finding a Unicode TrueType font for the report (PDF text and labels drawn on key images), headless.

Search order: DejaVu Sans on the system (``/usr/share/fonts``, ``~/.fonts``, macOS and Windows font folders),
the copy bundled with matplotlib when it is installed, then Bitstream Vera bundled with reportlab (Latin-1 only).

DejaVu has no Chinese, Japanese or Korean characters: :func:`find_cjk_font` looks for a fallback font that has
them and that reportlab can embed (TrueType outlines: Droid Sans Fallback, WenQuanYi Micro Hei/Zen Hei, IPA,
Nanum...; the ``MEDVIEWER_CJK_FONT`` environment variable names one explicitly). Noto Sans CJK / Source Han Sans
have PostScript (CFF) outlines, which reportlab cannot embed, so they are skipped. Text no font can draw is replaced
by :func:`printable` rather than rendered as empty boxes (the PDF then says so).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: ASCII stand-ins for characters a font may lack (measurement labels use ² ° ⚠ ±).
_FALLBACK = {
    "\N{WARNING SIGN}": "(!)",
    "\N{SUPERSCRIPT TWO}": "^2",
    "\N{SUPERSCRIPT THREE}": "^3",
    "\N{DEGREE SIGN}": " deg",
    "\N{PLUS-MINUS SIGN}": "+/-",
    "\N{MICRO SIGN}": "u",
    "\N{GREEK SMALL LETTER MU}": "u",
    "\N{EN DASH}": "-",
    "\N{EM DASH}": "-",
    "\N{LEFT SINGLE QUOTATION MARK}": "'",
    "\N{RIGHT SINGLE QUOTATION MARK}": "'",
    "\N{LEFT DOUBLE QUOTATION MARK}": '"',
    "\N{RIGHT DOUBLE QUOTATION MARK}": '"',
    "\N{HORIZONTAL ELLIPSIS}": "...",
    "\N{MULTIPLICATION SIGN}": "x",
    "\N{NO-BREAK SPACE}": " ",
}


def _font_dirs() -> list[Path]:
    dirs = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts",
            Path.home() / ".local" / "share" / "fonts", Path("/Library/Fonts"), Path("/System/Library/Fonts"),
            Path.home() / "Library" / "Fonts"]
    windir = os.environ.get("WINDIR")
    if windir:
        dirs.append(Path(windir) / "Fonts")
    return [d for d in dirs if d.is_dir()]


@functools.lru_cache(maxsize=None)
def find_ttf(bold: bool = False) -> Path | None:
    """Path of DejaVu Sans (``bold``: DejaVu Sans Bold) or a fallback TTF, or None when none is found.

    Looks in the system font folders, matplotlib's bundled fonts, then reportlab's bundled Vera.
    """
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for d in _font_dirs():
        direct = [d / name, d / "truetype" / "dejavu" / name, d / "dejavu" / name, d / "TTF" / name]
        for p in direct:
            if p.is_file():
                return p
        try:
            for p in d.rglob(name):
                return p
        except OSError as exc:
            log.info("font folder %s not searchable: %s", d, exc)
            continue
    try:
        import matplotlib

        p = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / name
        if p.is_file():
            return p
    except Exception as exc:  # noqa: BLE001 - matplotlib absent or broken: try the next source
        log.info("no DejaVu font from matplotlib (%s: %s); trying reportlab's", type(exc).__name__, exc)
    try:
        import reportlab

        p = Path(reportlab.__file__).parent / "fonts" / ("VeraBd.ttf" if bold else "Vera.ttf")
        if p.is_file():
            return p
    except ImportError as exc:
        log.info("no Vera font from reportlab: %s", exc)
    log.warning("no TrueType font found (system folders, matplotlib, reportlab): Pillow's built-in font is used")
    return None


#: Known CJK-capable fonts, most preferred first (matched against the file name, case-insensitive).
_CJK_NAMES = ("droidsansfallbackfull", "droidsansfallback", "wqy-microhei", "wqy-zenhei", "ipagp", "ipag",
              "takaopgothic", "vl-pgothic", "nanumgothic", "undotum", "unifont", "arialuni", "arial unicode", "msyh",
              "simsun", "msgothic", "malgun", "notosanscjk", "notosanssc", "notosansjp", "sourcehansans")
#: Where such fonts usually are when fontconfig's ``fc-list`` is not there to ask.
_CJK_PATHS = (
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/google-droid-sans-fonts/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/google-droid/DroidSansFallback.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
)
_CJK_PROBE = 0x4E2D  # 中


def _fc_list_cjk() -> list[Path]:
    """Font files fontconfig lists as having U+4E2D (empty without ``fc-list`` or on any failure)."""
    import shutil
    import subprocess

    exe = shutil.which("fc-list")
    if exe is None:
        return []
    try:
        res = subprocess.run([exe, "-f", "%{file}\\n", f":charset={_CJK_PROBE:x}"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [Path(line.strip()) for line in res.stdout.splitlines() if line.strip()]


def _cjk_rank(path: Path) -> tuple[int, int, str]:
    name = path.name.lower()
    rank = next((i for i, n in enumerate(_CJK_NAMES) if n in name), len(_CJK_NAMES))
    return rank, 0 if name.endswith((".ttf", ".ttc")) else 1, str(path)


@functools.lru_cache(maxsize=None)
def find_cjk_font() -> Path | None:
    """Path of a font with CJK characters (U+4E2D) that reportlab can embed, or None when none is installed.

    Candidates: ``$MEDVIEWER_CJK_FONT``, then the fonts ``fc-list`` reports (when fontconfig is installed) and the
    usual paths (:data:`_CJK_PATHS`, Windows' ``msyh``/``simsun``/``msgothic``/``malgun``), known fonts first. A
    candidate is accepted when reportlab reads its glyph table (TrueType outlines; at most 12 are tried).
    """
    env = os.environ.get("MEDVIEWER_CJK_FONT", "").strip()
    first = [Path(env)] if env else []
    found = _fc_list_cjk() + [Path(p) for p in _CJK_PATHS]
    windir = os.environ.get("WINDIR")
    if windir:
        found += [Path(windir) / "Fonts" / n for n in ("msyh.ttc", "simsun.ttc", "msgothic.ttc", "malgun.ttf")]
    seen: set[Path] = set()
    tried = 0
    for p in first + sorted(set(found), key=_cjk_rank):
        if p in seen or not p.is_file() or p.suffix.lower() not in (".ttf", ".ttc", ".otf"):
            continue
        seen.add(p)
        tried += 1
        if _CJK_PROBE in ttf_charset(str(p)):
            return p
        if tried >= 12:
            break
    return None


@functools.lru_cache(maxsize=None)
def ttf_charset(path: str) -> frozenset[int]:
    """Code points that the TrueType font at ``path`` has glyphs for (empty set when unreadable)."""
    try:
        from reportlab.pdfbase.ttfonts import TTFontFile

        return frozenset(TTFontFile(path).charToGlyph.keys())
    except Exception:  # noqa: BLE001 - any parse failure: treat as covering nothing special
        return frozenset()


def printable(text: str, charset: frozenset[int] | None, encoding: str | None = None) -> str:
    """``text`` with every character the font cannot draw replaced by an ASCII stand-in (or ``?``).

    charset: code points of a TrueType font (:func:`ttf_charset`); encoding: instead, a codec such as
    ``"cp1252"`` for the standard PDF fonts (WinAnsiEncoding). Newlines and tabs are kept.
    """
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
            continue
        ok = (ord(ch) in charset) if charset else _encodable(ch, encoding or "cp1252")
        out.append(ch if ok else stand_in(ch))
    return "".join(out)


def stand_in(ch: str) -> str:
    """The ASCII stand-in of a character a font lacks: from a short table (``±`` -> ``+/-``...), else its
    decomposition without accents (``ő`` -> ``o``), else ``?`` (nothing printable: the text is lost)."""
    sub = _FALLBACK.get(ch)
    if sub is None:
        import unicodedata

        decomposed = unicodedata.normalize("NFKD", ch)
        sub = "".join(c for c in decomposed if ord(c) < 128 and not unicodedata.combining(c)) or "?"
    return sub


def _encodable(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
        return True
    except UnicodeEncodeError:
        return False


def pil_font(size: int, bold: bool = False):  # noqa: ANN201 - PIL font object
    """A Pillow font of ``size`` px: the TTF of :func:`find_ttf`, else Pillow's built-in default font."""
    from PIL import ImageFont

    path = find_ttf(bold)
    if path is not None:
        try:
            return ImageFont.truetype(str(path), size)
        except OSError as exc:
            log.warning("font %s not loadable (%s): Pillow's built-in font is used", path, exc)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


__all__ = ["find_ttf", "find_cjk_font", "ttf_charset", "printable", "stand_in", "pil_font"]
