"""Finding a Unicode TrueType font for the report (PDF text and labels drawn on key images), headless.

Search order: DejaVu Sans on the system (``/usr/share/fonts``, ``~/.fonts``, macOS and Windows font folders),
the copy bundled with matplotlib when it is installed, then Bitstream Vera bundled with reportlab (Latin-1 only).
Text a font cannot draw is replaced by :func:`printable` rather than rendered as empty boxes.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

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
        except OSError:
            continue
    try:
        import matplotlib

        p = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / name
        if p.is_file():
            return p
    except Exception:  # noqa: BLE001 - matplotlib absent or broken: try the next source
        pass
    try:
        import reportlab

        p = Path(reportlab.__file__).parent / "fonts" / ("VeraBd.ttf" if bold else "Vera.ttf")
        if p.is_file():
            return p
    except ImportError:
        pass
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
        if ok:
            out.append(ch)
        else:
            sub = _FALLBACK.get(ch)
            if sub is None:
                import unicodedata

                decomposed = unicodedata.normalize("NFKD", ch)
                sub = "".join(c for c in decomposed if ord(c) < 128 and not unicodedata.combining(c)) or "?"
            out.append(sub)
    return "".join(out)


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
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


__all__ = ["find_ttf", "ttf_charset", "printable", "pil_font"]
