"""Which DICOM objects are images that can be shown as a stack, and which are not.

SOP Class UIDs are from DICOM PS3.4 Annex B (Storage Service Class) and PS3.6 Annex A (UID registry); names come
from pydicom's UID dictionary.
"""

from __future__ import annotations

from pydicom.uid import UID

#: SOP Class UID of a DICOMDIR (Media Storage Directory Storage, PS3.3 F.2).
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

# Objects that carry Pixel Data but are not a greyscale/colour image for reading as a stack.
_NON_IMAGE_WITH_PIXELS = {
    "1.2.840.10008.5.1.4.1.1.481.2": "RT",  # RT Dose Storage: a dose grid, not an image
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.66.7": "SEG",  # Label Map Segmentation Storage
}


def kind_of(sop_class_uid: str | None, has_pixel_data: bool) -> str:
    """Classify an object for the index.

    Returns ``"image"`` for objects offered as image stacks; otherwise a short tag for the non-image kinds:
    ``"DICOMDIR"``, ``"SR"`` (structured reports), ``"PR"`` (presentation states), ``"KO"`` (key object
    selection), ``"PDF"``/``"CDA"``/``"STL"`` (encapsulated documents), ``"RT"`` (RT plan/structure set/dose/...),
    ``"SEG"``, ``"WAVEFORM"``, ``"RAW"``, ``"NO_PIXELS"`` (an image SOP class without Pixel Data, e.g. a
    header-only copy) or ``"OTHER"``.

    Parameters
    ----------
    sop_class_uid: the object's SOPClassUID (0008,0016) or MediaStorageSOPClassUID; None if absent.
    has_pixel_data: whether the object holds Pixel Data (7FE0,0010) or Float/Double Float Pixel Data.
    """
    uid = str(sop_class_uid or "")
    if uid == MEDIA_STORAGE_DIRECTORY:
        return "DICOMDIR"
    if uid in _NON_IMAGE_WITH_PIXELS:
        return _NON_IMAGE_WITH_PIXELS[uid]
    name = UID(uid).name if uid else ""
    lname = name.lower()
    if "presentation state" in lname:
        return "PR"
    if "key object selection" in lname:
        return "KO"
    if lname.endswith(" sr storage") or " sr " in lname or "structured report" in lname or "cad sr" in lname:
        return "SR"
    if lname.startswith("encapsulated"):
        return {"pdf": "PDF", "cda": "CDA", "stl": "STL", "obj": "OBJ", "mtl": "MTL"}.get(
            lname.split()[1] if len(lname.split()) > 1 else "", "DOC"
        )
    if lname.startswith("rt ") and "image" not in lname:
        return "RT"
    if "waveform" in lname or "ecg" in lname:
        return "WAVEFORM"
    if lname == "raw data storage":
        return "RAW"
    if has_pixel_data:
        return "image"
    if lname.endswith("image storage") or "image storage" in lname:
        return "NO_PIXELS"  # an image SOP class whose file holds no Pixel Data (header-only copy)
    return "OTHER"


def sop_class_name(sop_class_uid: str | None) -> str:
    """Human-readable SOP class name (e.g. ``"CT Image Storage"``), or the UID itself when unknown."""
    if not sop_class_uid:
        return "(no SOPClassUID)"
    name = UID(str(sop_class_uid)).name
    return name or str(sop_class_uid)
