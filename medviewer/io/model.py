"""The DICOM index: Patient -> Study -> Series -> Instance (-> frames), built from headers only.

All geometry is in the DICOM patient coordinate system (LPS, millimetres): ImagePositionPatient is the centre of
the first transmitted pixel (PS3.3 C.7.6.2.1.1), ImageOrientationPatient the row and column direction cosines,
PixelSpacing the (row spacing, column spacing) = (distance between rows, distance between columns) in mm
(PS3.3 10.7.1.3).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

Vec3 = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """Geometry and value transform of one frame (one 2D image) of an instance.

    A single-frame instance has one ``FrameInfo`` built from its top-level attributes; an enhanced multi-frame
    instance has one per frame, built from the Shared and Per-frame Functional Groups (PS3.3 C.7.6.16).

    Attributes
    ----------
    index: 0-based frame number inside the instance.
    image_position_patient: (x, y, z) mm, LPS; None when the object has no spatial position (e.g. ultrasound).
    image_orientation_patient: row cosines (3) then column cosines (3); None when absent.
    pixel_spacing: (row spacing, column spacing) in mm; None when absent (then only pixel units are known).
    slice_thickness: mm, or None.
    rescale_slope, rescale_intercept: the linear Modality LUT (PS3.3 C.11.1.1.2): value = stored * slope +
        intercept; 1 and 0 when absent.
    window_center, window_width: VOI windows offered by the object (PS3.3 C.11.2.1.2), possibly several.
    window_explanation: WindowCenterWidthExplanation (0028,1055), one per window when present ("" otherwise).
    spacing_note: what ``pixel_spacing`` measures for a projection radiograph, for labels: "" (PixelSpacing as
        written), "at the detector" (ImagerPixelSpacing only), "estimated at the patient (ERMF 1.10)" or
        "calibrated (GEOMETRY)"; see :func:`medviewer.io.scan.projection_spacing`.
    stack_id, in_stack_position, temporal_position: from the Frame Content Sequence (enhanced objects).
    """

    index: int = 0
    image_position_patient: Vec3 | None = None
    image_orientation_patient: Orientation | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    window_center: tuple[float, ...] = ()
    window_width: tuple[float, ...] = ()
    window_explanation: tuple[str, ...] = ()
    spacing_note: str = ""
    stack_id: str | None = None
    in_stack_position: int | None = None
    temporal_position: int | None = None


@dataclass(slots=True)
class Instance:
    """One DICOM object (one file) as indexed from its header.

    ``frames`` holds one :class:`FrameInfo` per frame for image objects and is empty for non-image objects.
    Text attributes are already decoded with the file's SpecificCharacterSet (PS3.5 6.1).
    """

    path: str
    sop_instance_uid: str
    sop_class_uid: str
    kind: str  # "image" or a non-image tag from medviewer.io.sopclass.kind_of
    transfer_syntax_uid: str = ""
    modality: str = ""
    instance_number: int | None = None
    rows: int = 0
    columns: int = 0
    number_of_frames: int = 1
    samples_per_pixel: int = 1
    photometric_interpretation: str = ""
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    acquisition_number: int | None = None
    echo_numbers: str | None = None
    temporal_position_identifier: int | None = None
    trigger_time: float | None = None
    gantry_detector_tilt: float | None = None
    image_type: tuple[str, ...] = ()
    frame_of_reference_uid: str = ""
    voi_lut_function: str = ""
    has_voi_lut_sequence: bool = False
    has_modality_lut_sequence: bool = False
    is_enhanced: bool = False
    frames: list[FrameInfo] = field(default_factory=list)
    float_pixel_data: bool = False  # Float Pixel Data / Double Float Pixel Data instead of Pixel Data
    patient_orientation: tuple[str, ...] = ()  # PatientOrientation (0020,0020): row and column directions
    read_warnings: tuple[str, ...] = ()  # what pydicom warned about while reading the header
    pixel_data_length: int | None = None  # declared byte length; None when encapsulated (undefined length)
    pixel_data_offset: int | None = None  # file offset of the Pixel Data value, from the header scan
    pixel_padding: tuple[float, float] | None = None  # PixelPaddingValue..PixelPaddingRangeLimit, stored values
    # Ultrasound regions with a physical calibration in cm (PS3.3 C.8.5.5.1), as (x0, y0, x1, y1, mm per pixel
    # along x (columns), mm per pixel along y (rows)); pixel coordinates inclusive.
    us_regions: tuple[tuple[int, int, int, int, float, float], ...] = ()

    @property
    def is_image(self) -> bool:
        """True for objects offered as image stacks."""
        return self.kind == "image"


@dataclass(slots=True)
class Series:
    """All instances sharing a SeriesInstanceUID (0020,000E)."""

    series_instance_uid: str
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    series_date: str = ""
    body_part_examined: str = ""
    manufacturer: str = ""
    instances: list[Instance] = field(default_factory=list)

    @property
    def image_instances(self) -> list[Instance]:
        """The instances offered as image stacks, in index order."""
        return [i for i in self.instances if i.is_image]

    @property
    def non_image_instances(self) -> list[Instance]:
        """SR, PR, KO, encapsulated documents, DICOMDIR, RT, SEG and other objects without a viewable image."""
        return [i for i in self.instances if not i.is_image]


@dataclass(slots=True)
class Study:
    """All series sharing a StudyInstanceUID (0020,000D)."""

    study_instance_uid: str
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    study_id: str = ""
    series: dict[str, Series] = field(default_factory=dict)


@dataclass(slots=True)
class Patient:
    """A patient, keyed by PatientID (0010,0020), or by PatientName when the ID is empty."""

    patient_id: str
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    studies: dict[str, Study] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file the scan could not index, and why (it never raises out of the scan)."""

    path: str
    reason: str


@dataclass(slots=True)
class DicomIndex:
    """Result of a scan: the Patient -> Study -> Series -> Instance tree and the skipped files.

    ``cancelled`` is True when the scan stopped early on request; the tree then holds what was read until then.
    ``directory_files`` holds DICOMDIRs and vendor directory files (Media Storage Directory Storage objects such
    as Philips' ``DIRFILE``): non-image objects that belong to no patient.
    """

    patients: dict[str, Patient] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)
    directory_files: list[Instance] = field(default_factory=list)  # DICOMDIRs / vendor directory files
    files_seen: int = 0
    cancelled: bool = False

    def iter_series(self) -> Iterator[tuple[Patient, Study, Series]]:
        """Yield every (patient, study, series), in the order they were first seen."""
        for patient in self.patients.values():
            for study in patient.studies.values():
                for series in study.series.values():
                    yield patient, study, series

    def iter_instances(self) -> Iterator[Instance]:
        """Yield every indexed instance, directory files included."""
        for _, _, series in self.iter_series():
            yield from series.instances
        yield from self.directory_files

    def non_image_instances(self) -> list[Instance]:
        """Every indexed object that is not offered as an image stack (SR, PR, KO, PDF, RT, SEG, DICOMDIR...)."""
        return [i for i in self.iter_instances() if not i.is_image]

    def find_series(self, series_instance_uid: str) -> Series:
        """Return the series with this SeriesInstanceUID.

        Raises
        ------
        KeyError: if no such series was indexed.
        """
        for _, _, series in self.iter_series():
            if series.series_instance_uid == series_instance_uid:
                return series
        raise KeyError(series_instance_uid)

    @property
    def instance_count(self) -> int:
        """Number of indexed instances (image and non-image, directory files included)."""
        return sum(len(s.instances) for _, _, s in self.iter_series()) + len(self.directory_files)
