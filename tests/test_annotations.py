"""Annotation geometry and measurements (medviewer.imaging.annotations), headless.

Expected values come from the phantoms built here (known HU, analytic areas) and from pydicom for the real CT,
never from medviewer's own code.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pydicom
import pytest

from medviewer.imaging.annotations import (
    KINDS,
    NO_SPACING_WARNING,
    Annotation,
    Measurement,
    measure,
    roi_mask,
)

UID = "1.2.3.4"
SPACING = (0.5, 0.8)  # PixelSpacing: 0.5 mm between rows, 0.8 mm between columns

# ------------------------------------------------------------------------------------------------- phantom
DISC_C, DISC_R = (80.0, 80.0), 30.0  # centre (x = column, y = row) and radius, pixels
SQUARE = (150, 210, 150, 230)  # rows 150..209, columns 150..229
NOISE_SD = 12.0


def phantom() -> tuple[np.ndarray, np.ndarray]:
    """256x256 int16: -1000 HU air, a 40 HU disc (pixels whose centre is within DISC_R of DISC_C) and a
    100 HU square with Gaussian noise (SD 12). Returns (image, the square's values)."""
    img = np.full((256, 256), -1000, dtype=np.int16)
    ii, jj = np.mgrid[0:256, 0:256]
    disc = (jj + 0.5 - DISC_C[0]) ** 2 + (ii + 0.5 - DISC_C[1]) ** 2 <= DISC_R ** 2
    img[disc] = 40
    r0, r1, c0, c1 = SQUARE
    rng = np.random.default_rng(7)
    square = np.round(100 + rng.normal(0, NOISE_SD, size=(r1 - r0, c1 - c0))).astype(np.int16)
    img[r0:r1, c0:c1] = square
    return img, square


def test_rect_roi_over_the_noisy_square_gives_its_exact_statistics():
    img, square = phantom()
    r0, r1, c0, c1 = SQUARE
    ann = Annotation("rect", [(c0, r0), (c1, r1)], UID)  # the square's outer edges: every centre inside
    m = measure(ann, img, SPACING, "HU")
    assert m.n_pixels == square.size == 60 * 80
    v = square.astype(np.float64)
    assert m.mean == pytest.approx(v.mean()) and m.mean == pytest.approx(100, abs=0.5)
    assert m.sd == pytest.approx(v.std(ddof=1)) and m.sd == pytest.approx(NOISE_SD, rel=0.05)
    assert (m.minimum, m.maximum) == (v.min(), v.max())
    assert m.area == pytest.approx(80 * 0.8 * 60 * 0.5)  # 64 mm x 30 mm
    assert m.calibrated and m.warning == "" and m.units == "HU"
    assert m.label() == (f"mean {v.mean():.1f} HU  SD {v.std(ddof=1):.1f}\nmin {v.min():.0f}  max {v.max():.0f}\n"
                         f"area 1920.0 mm\N{SUPERSCRIPT TWO}")
    # Corners given in any order are the same box.
    flipped = measure(Annotation("rect", [(c1, r0), (c0, r1)], UID), img, SPACING, "HU")
    assert (flipped.mean, flipped.n_pixels, flipped.area) == (m.mean, m.n_pixels, m.area)
    # Half a pixel less on each side drops the border pixels whose centres are now outside.
    inner = measure(Annotation("rect", [(c0 + 0.6, r0 + 0.6), (c1 - 0.6, r1 - 0.6)], UID), img, SPACING, "HU")
    assert inner.n_pixels == 58 * 78


def test_ellipse_roi_on_the_disc_and_pixel_count_vs_analytic_area():
    img, _ = phantom()
    cx, cy = DISC_C
    # The disc's own outline: exactly its pixels, all 40 HU.
    m = measure(Annotation("ellipse", [(cx - DISC_R, cy - DISC_R), (cx + DISC_R, cy + DISC_R)], UID), img,
                SPACING, "HU")
    assert (m.mean, m.sd, m.minimum, m.maximum) == (40.0, 0.0, 40.0, 40.0)
    assert m.n_pixels == int(np.count_nonzero(img == 40))
    assert m.n_pixels == pytest.approx(math.pi * DISC_R ** 2, rel=0.01)
    # Area in mm2 on anisotropic pixels: semi-axes 30 px x 0.8 mm and 30 px x 0.5 mm.
    assert m.area == pytest.approx(math.pi * 24.0 * 15.0)
    # A smaller, elongated ellipse inside: pixel count close to the analytic area in pixels.
    small = Annotation("ellipse", [(cx - 25, cy - 12), (cx + 25, cy + 12)], UID)
    ms = measure(small, img, SPACING, "HU")
    assert ms.mean == 40.0 and ms.n_pixels == pytest.approx(math.pi * 25 * 12, rel=0.02)
    mask = roi_mask("ellipse", small.points, img.shape)
    assert mask.sum() == ms.n_pixels and mask.dtype == bool
    # Straddling the disc and air: a mix of exactly the two values, in the proportion of the pixel counts.
    wide = measure(Annotation("ellipse", [(cx - 40, cy - 40), (cx + 40, cy + 40)], UID), img, SPACING, "HU")
    n40 = int(np.count_nonzero(img == 40))
    n_air = wide.n_pixels - n40
    assert wide.mean == pytest.approx((40 * n40 - 1000 * n_air) / wide.n_pixels)
    assert (wide.minimum, wide.maximum) == (-1000, 40)


def test_roi_outside_or_degenerate_and_float_images():
    img, _ = phantom()
    outside = measure(Annotation("rect", [(300, 300), (400, 400)], UID), img, SPACING, "HU")
    assert outside.n_pixels == 0 and outside.mean is None
    assert outside.area == pytest.approx(100 * 0.8 * 100 * 0.5)
    assert "no pixels inside" in outside.label()
    flat = measure(Annotation("ellipse", [(10, 10), (10, 50)], UID), img, SPACING, "HU")
    assert flat.n_pixels == 0 and flat.area == 0
    # Edge-clipped ROI: only the pixels in the image count.
    edge = measure(Annotation("rect", [(-10, -10), (10, 10)], UID), img, SPACING, "HU")
    assert edge.n_pixels == 100
    # Float images ignore NaN pixels.
    f = img.astype(np.float32)
    f[0, 0] = np.nan
    assert measure(Annotation("rect", [(0, 0), (10, 10)], UID), f, SPACING).n_pixels == 99
    # Geometry only (no image): area, no statistics.
    assert measure(Annotation("rect", [(0, 0), (10, 10)], UID), None, SPACING).mean is None


def test_length_in_mm_with_anisotropic_spacing():
    line = Annotation("length", [(10, 20), (40, 60)], UID)
    m = measure(line, pixel_spacing=SPACING)
    # 30 columns x 0.8 mm = 24 mm across, 40 rows x 0.5 mm = 20 mm down.
    assert m.length == pytest.approx(math.hypot(24, 20))
    assert m.label() == f"{math.hypot(24, 20):.1f} mm"
    # Along one axis only: that axis's spacing.
    assert measure(Annotation("length", [(0, 0), (100, 0)], UID), pixel_spacing=SPACING).length == pytest.approx(80)
    assert measure(Annotation("length", [(0, 0), (0, 100)], UID), pixel_spacing=SPACING).length == pytest.approx(50)


def test_angle_is_measured_in_mm_space():
    # Arms (8, 4) mm and (-4, 8) mm: perpendicular in the patient. In pixels (0.8 mm columns, 0.5 mm rows) the
    # arms are (10, 8) and (-5, 16), not perpendicular.
    v = (100.0, 100.0)
    ann = Annotation("angle", [(v[0] + 10, v[1] + 8), v, (v[0] - 5, v[1] + 16)], UID)
    assert measure(ann, pixel_spacing=SPACING).angle_deg == pytest.approx(90.0)
    in_pixels = math.degrees(math.acos((10 * -5 + 8 * 16) / math.hypot(10, 8) / math.hypot(-5, 16)))
    assert measure(ann).angle_deg == pytest.approx(in_pixels) and abs(in_pixels - 90) > 10
    # Order of the arms and the sign of the turn do not matter; straight and folded lines.
    rev = Annotation("angle", list(reversed(ann.points)), UID)
    assert measure(rev, pixel_spacing=SPACING).angle_deg == pytest.approx(90.0)
    assert measure(Annotation("angle", [(0, 0), (5, 0), (10, 0)], UID), pixel_spacing=SPACING).angle_deg == \
        pytest.approx(180.0)
    assert measure(Annotation("angle", [(10, 0), (0, 0), (10, 0)], UID), pixel_spacing=SPACING).angle_deg == \
        pytest.approx(0.0, abs=1e-6)
    assert measure(ann, pixel_spacing=SPACING).label() == "90.0\N{DEGREE SIGN}"
    # A zero-length arm has no angle.
    assert measure(Annotation("angle", [v, v, (0, 0)], UID)).angle_deg is None


def test_no_pixel_spacing_gives_pixels_with_a_visible_warning():
    img, _ = phantom()
    for spacing in (None, (0.0, 0.5), (float("nan"), 1.0), (-1.0, 1.0)):
        m = measure(Annotation("length", [(0, 0), (30, 40)], UID), pixel_spacing=spacing)
        assert m.length == pytest.approx(50.0) and not m.calibrated and m.warning == NO_SPACING_WARNING
        assert m.label() == f"50.0 px\n\N{WARNING SIGN} {NO_SPACING_WARNING}"
    r = measure(Annotation("rect", [(0, 0), (10, 20)], UID), img, None, "HU")
    assert r.area == 200 and "px\N{SUPERSCRIPT TWO}" in r.label() and NO_SPACING_WARNING in r.label()
    # Marks measure nothing and warn about nothing.
    assert measure(Annotation("arrow", [(0, 0), (1, 1)], UID)).label() == ""
    assert measure(Annotation("text", [(0, 0)], UID, text="x")).label() == ""


def test_invalid_annotations_raise():
    with pytest.raises(ValueError, match="unknown annotation kind"):
        Annotation("circle", [(0, 0), (1, 1)], UID)
    for kind, n in KINDS.items():
        with pytest.raises(ValueError, match=f"takes {n} points"):
            Annotation(kind, [(0, 0)] * (n + 1), UID)
    with pytest.raises(ValueError):
        Annotation("length", [(0, 0)], UID)
    with pytest.raises(ValueError, match="finite"):
        Annotation("length", [(0, 0), (float("nan"), 1)], UID)
    with pytest.raises(ValueError):
        roi_mask("length", [(0, 0), (1, 1)], (4, 4))
    with pytest.raises(ValueError, match="2-D"):
        measure(Annotation("rect", [(0, 0), (2, 2)], UID), np.zeros((2, 4, 4)))
    with pytest.raises((ValueError, KeyError)):
        Annotation.from_dict({"kind": "length", "points": [[0, 0]], "sop_instance_uid": UID})
    with pytest.raises(KeyError):
        Annotation.from_dict({"kind": "length", "points": [[0, 0], [1, 1]]})


def test_to_dict_from_dict_round_trip_through_json():
    anns = [Annotation("length", [(1.25, 2.5), (3, 4)], UID, frame=3, text="comment"),
            Annotation("angle", [(0, 0), (1, 1), (2, 0)], UID),
            Annotation("rect", [(5, 5), (1, 1)], UID),
            Annotation("ellipse", [(0, 0), (9, 4)], UID),
            Annotation("arrow", [(0, 0), (9, 4)], UID, text="here"),
            Annotation("text", [(7, 8)], UID, text="Läsion \N{GREEK SMALL LETTER ALPHA}")]
    for a in anns:
        d = json.loads(json.dumps(a.to_dict()))
        b = Annotation.from_dict(d)
        assert b == a and b.uid == a.uid and isinstance(b.points[0], tuple)
    assert len({a.uid for a in anns}) == len(anns)
    moved = anns[0].moved(1, -1)
    assert moved.uid == anns[0].uid and moved.points == [(2.25, 1.5), (4.0, 3.0)] and moved.frame == 3
    # A dict without uid gets a fresh one; frame defaults to 0.
    c = Annotation.from_dict({"kind": "text", "points": [[1, 2]], "sop_instance_uid": UID, "text": "t"})
    assert c.frame == 0 and len(c.uid) == 32
    m = measure(anns[0], pixel_spacing=SPACING)
    assert m.to_dict() == {"kind": "length", "calibrated": True, "length": m.length}
    assert Measurement("rect").label() == ""


# ------------------------------------------------------------------------------------------------- real CT
@pytest.mark.parametrize("which", ["ge", "philips"])
def test_roi_in_air_of_a_real_ct_is_near_minus_1000_hu(which, request, image_series):
    """An ellipse ROI in the air inside the scan field of view (outside the head / phantom, away from the
    -1500 padding outside the reconstruction circle): mean near -1000 HU, equal to pydicom's."""
    from medviewer.imaging import build_stacks
    from medviewer.imaging.volume import load_volume

    index = request.getfixturevalue(f"{which}_index")  # the folder scanned (its LICENSE file is skipped)
    (stack,) = build_stacks(image_series(index))
    vol = load_volume(stack)
    k = vol.array.shape[0] // 2
    ref = vol.stack.slices[k]
    ds = pydicom.dcmread(ref.instance.path)
    assert ds.SOPInstanceUID == ref.instance.sop_instance_uid
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # What is physically there (pydicom only): a 30x30 patch around row 100, column 100 is air (all pixels
    # between -1100 and -900 HU, so neither tissue nor the padding outside the field of view).
    patch = hu[85:115, 85:115]
    assert patch.min() > -1100 and patch.max() < -900, (patch.min(), patch.max())

    ann = Annotation("ellipse", [(88.0, 88.0), (112.0, 112.0)], ref.instance.sop_instance_uid, ref.frame.index)
    m = measure(ann, vol.array[k], stack.pixel_spacing, vol.units)
    mask = roi_mask("ellipse", ann.points, hu.shape)
    assert m.n_pixels == int(mask.sum()) == pytest.approx(math.pi * 12 * 12, rel=0.03)
    assert m.mean == pytest.approx(hu[mask].mean()) and m.sd == pytest.approx(hu[mask].std(ddof=1))
    assert m.mean == pytest.approx(-1000, abs=15) and m.sd < 30
    ps = [float(x) for x in ds.PixelSpacing]
    assert m.area == pytest.approx(math.pi * 12 * ps[1] * 12 * ps[0])
    assert m.units == "HU" and "HU" in m.label()


# ---------------------------------------------------------------------------------------------- projection spacing
@pytest.mark.parametrize("attrs, spacing, note", [
    ({"PixelSpacing": ["0.2", "0.2"]}, (0.2, 0.2), ""),
    ({"ImagerPixelSpacing": ["0.2", "0.2"]}, (0.2, 0.2), "at the detector"),
    ({"ImagerPixelSpacing": ["0.2", "0.2"], "EstimatedRadiographicMagnificationFactor": "1.25"}, (0.16, 0.16),
     "estimated at the patient (ERMF 1.25)"),
    ({"PixelSpacing": ["0.2", "0.2"], "ImagerPixelSpacing": ["0.2", "0.2"]}, (0.2, 0.2), "at the detector"),
    ({"PixelSpacing": ["0.15", "0.15"], "ImagerPixelSpacing": ["0.2", "0.2"],
      "PixelSpacingCalibrationType": "GEOMETRY"}, (0.15, 0.15), "calibrated (GEOMETRY)"),
])
def test_projection_radiograph_spacing_says_where_the_mm_are(tmp_path, attrs, spacing, note):
    """PS3.3 10.7.1.3 and C.8.11.7: measure in the calibrated plane when there is one, else at the detector, or
    at the patient through the estimated magnification factor, and label what the mm mean."""
    import pydicom
    from pydicom.data import get_testdata_file

    from medviewer.imaging import build_stacks
    from medviewer.imaging.annotations import Annotation, measure
    from medviewer.io.scan import scan

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelSpacing
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.Modality = "DX"
    ds.save_as(tmp_path / "dx.dcm")
    [(_, _, series)] = list(scan(str(tmp_path)).iter_series())
    stack = build_stacks(series)[0]
    assert stack.pixel_spacing == pytest.approx(spacing) and stack.spacing_note == note
    m = measure(Annotation("length", [(0.0, 0.0), (100.0, 0.0)], "1.2.3", 0), None, stack.pixel_spacing, "",
                stack.spacing_note)
    assert m.length == pytest.approx(100 * spacing[1])
    assert m.label() == f"{m.length:.1f} mm" + (f" ({note})" if note else "")


def test_ultrasound_region_calibration_measures_in_mm_inside_a_region(tmp_path):
    """SequenceOfUltrasoundRegions with PhysicalUnitsX/YDirection 3 (cm) and PhysicalDeltaX/Y (PS3.3 C.8.5.5.1):
    inside a region the mm come from its deltas; across regions or outside, pixels with a warning."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from medviewer.imaging.annotations import Annotation, measure
    from medviewer.io.scan import scan

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Modality = "US"
    for kw in ("PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient"):
        del ds[kw]
    regions = []
    for (x0, x1, delta) in ((0, 63, 0.01), (64, 127, 0.02)):  # 0.1 mm and 0.2 mm per pixel
        r = Dataset()
        r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x0, 0, x1, 127
        r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3
        r.PhysicalDeltaX = r.PhysicalDeltaY = delta
        regions.append(r)
    speed = Dataset()  # a Doppler region in cm/s: not a length calibration
    speed.RegionLocationMinX0, speed.RegionLocationMinY0, speed.RegionLocationMaxX1 = 0, 0, 127
    speed.RegionLocationMaxY1, speed.PhysicalUnitsXDirection, speed.PhysicalUnitsYDirection = 127, 4, 7
    speed.PhysicalDeltaX = speed.PhysicalDeltaY = 1.0
    ds.SequenceOfUltrasoundRegions = Sequence(regions + [speed])
    ds.save_as(tmp_path / "us.dcm")
    [inst] = [i for _, _, s in scan(str(tmp_path)).iter_series() for i in s.instances]
    assert inst.us_regions == ((0, 0, 63, 127, 0.1, 0.1), (64, 0, 127, 127, 0.2, 0.2))
    left = measure(Annotation("length", [(10.0, 10.0), (50.0, 10.0)], "1.2", 0), us_regions=inst.us_regions)
    right = measure(Annotation("length", [(70.0, 10.0), (110.0, 10.0)], "1.2", 0), us_regions=inst.us_regions)
    across = measure(Annotation("length", [(10.0, 10.0), (110.0, 10.0)], "1.2", 0), us_regions=inst.us_regions)
    assert left.calibrated and left.length == pytest.approx(4.0) and "ultrasound region" in left.label()
    assert right.length == pytest.approx(8.0)
    assert not across.calibrated and across.length == pytest.approx(100.0) and "regions" in across.warning
