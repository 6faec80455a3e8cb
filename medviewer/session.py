"""The reading session, Qt-free: what each viewport shows and how, the focused viewport, and change events.

One :class:`Session` holds the state every dock and overlay of the window follows: the layout, the active
(focused) viewport, and per viewport the image it shows (:class:`ImageRef`: case = StudyInstanceUID, series,
stack, SOPInstanceUID, frame, stack position) and its view (:class:`ViewState`: window/level and where it came
from, VOI LUT, invert, zoom/pan, tool). Widgets never keep a copy: a viewport renders its :class:`ViewState` (the
very object held here) and reports edits with :meth:`Session.view_changed`; docks subscribe and are rebuilt or
cleared when the context they show changes. The split follows 3D Slicer's widget/logic separation and napari's
``ViewerModel``.

Results computed in the background carry a :class:`Context` (the case, series or image they were computed for)
and are applied only while :meth:`Session.is_shown` (or :meth:`Session.is_focused`) says that context is still on
screen (patient safety: no widget shows a value computed for another image, series or case).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from medviewer.imaging.voi import Window

log = logging.getLogger(__name__)

LAYOUTS: dict[str, tuple[int, int]] = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}
"""Layout name -> (rows, columns) of viewports."""

Level = Literal["case", "series", "image", ""]


@dataclass(frozen=True)
class ImageRef:
    """The image a viewport shows.

    ``study_uid`` (StudyInstanceUID) identifies the case; ``series_uid`` the series (SeriesInstanceUID);
    ``stack_key`` the browser's stack (a series may split into several stacks); ``sop_instance_uid`` and
    ``frame`` (0-based frame of a multi-frame instance) the image; ``index`` its 0-based position in the stack.
    ``patient_name``/``patient_id`` are kept for titles and checks, not for identity.
    """

    study_uid: str
    series_uid: str
    stack_key: str
    sop_instance_uid: str = ""
    frame: int = 0
    index: int = 0
    patient_name: str = ""
    patient_id: str = ""

    def level_changed(self, other: ImageRef | None) -> Level:
        """The coarsest level at which ``other`` differs from this image: "case", "series", "image" or ""."""
        return level_between(self, other)


def level_between(a: ImageRef | None, b: ImageRef | None) -> Level:
    """The coarsest level at which two shown images differ (None = nothing shown): "case" when the case (study)
    or the patient (PatientID, PatientName) differs or one side is empty, "series" for another series or stack,
    "image" for another instance, frame or stack position, "" when equal."""
    if a is None and b is None:
        return ""
    if a is None or b is None or a.study_uid != b.study_uid or (a.patient_id, a.patient_name) != (
            b.patient_id, b.patient_name):
        return "case"  # another patient is another case, even under one StudyInstanceUID (damaged/merged data)
    if a.series_uid != b.series_uid or a.stack_key != b.stack_key:
        return "series"
    if (a.sop_instance_uid, a.frame, a.index) != (b.sop_instance_uid, b.frame, b.index):
        return "image"
    return ""


@dataclass(frozen=True)
class Context:
    """What a background result was computed for. Fields left None match anything, so ``Context(study_uid=u)``
    is a case, ``Context(u, series_uid=s)`` a series and a full one an image (SOPInstanceUID + frame)."""

    study_uid: str | None = None
    series_uid: str | None = None
    sop_instance_uid: str | None = None
    frame: int | None = None

    @classmethod
    def of_case(cls, ref: ImageRef | str) -> Context:
        return cls(study_uid=ref if isinstance(ref, str) else ref.study_uid)

    @classmethod
    def of_series(cls, ref: ImageRef) -> Context:
        return cls(study_uid=ref.study_uid, series_uid=ref.series_uid)

    @classmethod
    def of_image(cls, ref: ImageRef) -> Context:
        return cls(ref.study_uid, ref.series_uid, ref.sop_instance_uid, ref.frame)

    def matches(self, ref: ImageRef | None) -> bool:
        """True when ``ref`` is (part of) this context."""
        if ref is None:
            return False
        return ((self.study_uid is None or self.study_uid == ref.study_uid)
                and (self.series_uid is None or self.series_uid == ref.series_uid)
                and (self.sop_instance_uid is None or self.sop_instance_uid == ref.sop_instance_uid)
                and (self.frame is None or self.frame == ref.frame))


@dataclass
class ViewState:
    """How a viewport shows its image. The viewport widget renders this object and edits it in place (it holds
    the same object, not a copy) then calls :meth:`Session.view_changed`.

    ``index``: 0-based stack position on screen. ``window``: the VOI window in modality units (HU for CT; None
    while a VOI LUT table or the automatic first window is used) and ``window_source`` where it came from
    ("dicom", "preset", "auto", "manual" or ""); ``lut``: (LUTDescriptor, LUTData, explanation) of a VOI LUT
    Sequence item in use (PS3.3 C.11.2); ``invert``: the reader's invert toggle (on top of MONOCHROME1);
    ``zoom``/``pan``: screen pixels per image pixel and the image point at the viewport centre (mm), as the
    renderer (pyqtgraph's ViewBox, which owns the range) last reported them; ``tool``: the active mouse tool
    ("navigate" or an annotation kind).
    """

    index: int = 0
    window: Window | None = None
    window_source: str = ""
    lut: tuple | None = None
    invert: bool = False
    zoom: float | None = None
    pan: tuple[float, float] | None = None
    tool: str = "navigate"

    def reset(self) -> None:
        """Back to defaults (a new series is shown)."""
        self.index, self.window, self.window_source, self.lut = 0, None, "", None
        self.invert, self.zoom, self.pan = False, None, None


@dataclass
class Viewport:
    """One viewport: its position in the grid, what it shows and how."""

    slot: int
    image: ImageRef | None = None
    view: ViewState = field(default_factory=ViewState)


@dataclass(frozen=True)
class Change:
    """One change of the session.

    ``what``: "case", "series", "image" (the image of viewport ``slot`` changed at that level), "view" (its view
    state), "layout" or "active" (another viewport got the focus). ``focus_level`` is the level at which the
    *focused* image changed with it ("" when the focused image is the same): docks that follow the focused image
    (AI, call form, notes, case, W/L label, browser selection) rebuild on it. ``before``/``after`` are the focused
    image before and after.
    """

    what: str
    slot: int | None
    focus_level: Level
    before: ImageRef | None
    after: ImageRef | None


Listener = Callable[[Change], None]


class Session:
    """The session model. Not thread-safe: use it from one thread (the GUI thread in the app)."""

    def __init__(self, n_viewports: int = 4, layout: str = "1x1"):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")
        self.viewports = [Viewport(slot) for slot in range(n_viewports)]
        self.layout = layout
        self.active_slot = 0
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------------------------------------ queries
    @property
    def active(self) -> Viewport:
        """The focused viewport (keyboard, tools, AI and the docks act on it)."""
        return self.viewports[self.active_slot]

    @property
    def image(self) -> ImageRef | None:
        """The focused viewport's image (None when it is empty)."""
        return self.active.image

    @property
    def case_uid(self) -> str | None:
        """StudyInstanceUID of the focused image: the case the Case dock, notes, calls and sign-off act on."""
        return self.image.study_uid if self.image is not None else None

    def visible_slots(self) -> list[int]:
        rows, cols = LAYOUTS[self.layout]
        return list(range(min(rows * cols, len(self.viewports))))

    def is_shown(self, context: Context, slot: int | None = None) -> bool:
        """True while a visible viewport (or viewport ``slot``) shows an image within ``context``."""
        slots = [slot] if slot is not None else self.visible_slots()
        return any(context.matches(self.viewports[s].image) for s in slots if s in self.visible_slots())

    def is_focused(self, context: Context) -> bool:
        """True while the focused viewport shows an image within ``context``."""
        return context.matches(self.image)

    def slots_showing(self, context: Context) -> list[int]:
        return [s for s in self.visible_slots() if context.matches(self.viewports[s].image)]

    # ------------------------------------------------------------------------------------------------ changes
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(change)`` after every change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def show(self, slot: int, image: ImageRef | None, reset_view: bool | None = None) -> None:
        """Viewport ``slot`` now shows ``image`` (None: empty). Its view state is reset when the series changes
        (or ``reset_view`` says so)."""
        vp = self.viewports[slot]
        level = level_between(vp.image, image)
        if not level:
            return
        before = self.image
        if reset_view or (reset_view is None and level in ("case", "series")):
            vp.view.reset()
            if image is not None:
                vp.view.index = image.index
        vp.image = image
        self._emit(level, slot, before)

    def set_index(self, slot: int, index: int, sop_instance_uid: str, frame: int) -> None:
        """Viewport ``slot`` moved to stack position ``index`` (image ``sop_instance_uid``, ``frame``)."""
        vp = self.viewports[slot]
        vp.view.index = index
        if vp.image is not None:
            self.show(slot, replace(vp.image, index=index, sop_instance_uid=sop_instance_uid, frame=frame),
                      reset_view=False)

    def view_changed(self, slot: int) -> None:
        """Viewport ``slot``'s :class:`ViewState` was edited in place (window, invert, zoom, tool...)."""
        self._emit("view", slot, self.image)

    def set_active(self, slot: int) -> None:
        if not 0 <= slot < len(self.viewports):
            raise ValueError(f"no viewport {slot}")
        if slot == self.active_slot:
            return
        before = self.image
        self.active_slot = slot
        self._emit("active", slot, before)

    def set_layout(self, name: str) -> None:
        """Switch layout; a focused viewport that becomes hidden hands the focus to the first one."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; expected one of {list(LAYOUTS)}")
        if name == self.layout:
            return
        before = self.image
        self.layout = name
        if self.active_slot not in self.visible_slots():
            self.active_slot = 0
        self._emit("layout", None, before)

    def _emit(self, what: str, slot: int | None, before: ImageRef | None) -> None:
        change = Change(what, slot, level_between(before, self.image), before, self.image)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # one broken dock must not stop the others from clearing stale facts
                log.exception("session listener %r failed on %s", listener, change)
