"""GUI responsiveness of the medviewer viewer (offscreen Qt). Figures, not tests: PASS/MISS is printed, nothing asserts.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui.py [--n 200] [--cold-repeats 5] [--profile]

(1) slice change -> frame painted, 512x512. The 140-slice Philips series is opened in a MainWindow (scan + load in
    the window's workers) and fully loaded. Then, N times, ``viewer.set_slice(k)`` followed by
    ``app.processEvents()``, timed together. There is no paint-completion signal (``ImageViewer.painted`` is
    emitted by ``render()`` before anything is painted), so the paint is forced: ``processEvents`` delivers the
    UpdateRequest Qt posted for the dirty region, and on its return the new frame (image + overlay labels) is
    painted into the window's backing store. An event filter counts the viewport's Paint events, which proves
    each step painted exactly once. The same is timed for a Key_Down QKeyEvent sent to the viewer (keyboard path)
    and a wheel event sent to the viewport (mouse path). The set_slice path is split into render() (VOI -> 8 bit,
    ImageItem.setImage, overlay text) and the paint. Median and p95.
    Target: median < 16 ms, inside one 60 Hz frame (16.7 ms).
(2) longest GUI-thread stall while the 560-slice series is scanned and loaded (workers) and the user scrolls. A
    5 ms PreciseTimer heartbeat on the GUI thread records its lateness (actual interval - 5 ms). A 20 ms timer
    steps the slice (bouncing between the ends) from the moment a volume is shown. Reports max and p99 lateness,
    the time to the first image painted and to the load complete, and the GUI time of each slot
    (browser.populate, set_volume, render, thumbnail icon, progress bar, the window repaints). The largest stalls
    are attributed to the slots that ran inside them; what the slots do not explain is time the GUI thread spent
    waiting for the GIL held by the worker threads (or in Qt outside the timed slots).
    Target: max lateness <= 50 ms. ``--profile`` adds a cProfile of the GUI thread over this phase.
(3) cold start to window shown: ``python -c`` runs the real entry point (``medviewer.__main__.main([])`` ->
    ``run_gui()``, no file); a ``QTimer.singleShot(0)`` queued right after ``MainWindow.show()`` prints a marker and
    quits. Timed here from just before ``Popen`` to the marker line. Median of ``--cold-repeats``. Floors:
    ``python -c "import PySide6.QtWidgets"`` and ``python -c pass``. Also whether ``torch`` / ``transformers`` are
    in ``sys.modules`` when the window is shown. Target: median < 2 s. (Warm OS page cache and .pyc files:
    "cold" means a fresh process, not a cold disk.)

QSettings (the recent-folder list) are redirected to a temporary folder, never the user's.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import _data  # noqa: E402

FRAME_MS = 1000.0 / 60.0  # one frame at 60 Hz
SLICE_TARGET_MS = 16.0
STALL_TARGET_MS = 50.0
COLD_TARGET_S = 2.0
BUSY_CORES = 0.25  # other processes using more than this many cores make the figures unreliable (a NOTE is printed)
HEARTBEAT_MS = 5
SCROLL_MS = 20


def pct(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * q // 100) - 1))
    return s[int(k)]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# ------------------------------------------------------------------------------------------------------ Qt helpers
_settings_dir = tempfile.TemporaryDirectory(prefix="medviewer-bench-settings-")


def _qt_app():
    from PySide6.QtCore import QSettings, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, _settings_dir.name)

    def handler(_mode, _ctx, msg):  # the offscreen plugin's "does not support propagateSizeHints()" noise
        if "propagateSizeHints" not in msg:
            print(msg, file=sys.stderr)

    qInstallMessageHandler(handler)
    return QApplication.instance() or QApplication([sys.argv[0]])


class _OtherLoad:
    """CPU time used by OTHER processes (and VM steal) while a part runs, in cores on average: /proc/stat busy time
    minus this process's own CPU time and its reaped children's. On a shared machine this says how much of a bad
    figure is the neighbours: a GUI thread that is not scheduled stalls whatever the code does."""

    def __init__(self):
        self.t0 = self._snap()

    @staticmethod
    def _snap():
        try:
            with open("/proc/stat") as fp:
                v = [int(x) for x in fp.readline().split()[1:9]]
            busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        except (OSError, ValueError, IndexError):
            busy = None
        t = os.times()
        return time.perf_counter(), busy, t.user + t.system + t.children_user + t.children_system

    def cores(self) -> float | None:
        (w0, b0, o0), (w1, b1, o1) = self.t0, self._snap()
        if b0 is None or b1 is None:
            return None
        return max(0.0, ((b1 - b0) - (o1 - o0)) / max(w1 - w0, 1e-9))


def _fmt_load(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _spin(app, cond, timeout_s: float, what: str) -> None:
    t_end = time.perf_counter() + timeout_s
    while not cond():
        if time.perf_counter() > t_end:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.002)


def _settle(app, seconds: float) -> None:
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.002)


FREEZE = {"on": True}  # --no-gc-freeze turns it off


def _new_window(app):
    """A MainWindow set up the way ``run_gui`` does it: shown, then the startup objects frozen out of the garbage
    collector (``medviewer.ui.app.freeze_startup_objects``, when it exists). The collect before it only drops what
    earlier rounds of this benchmark left behind, so that it is not frozen."""
    from medviewer.ui import app as app_module
    from medviewer.ui.main_window import MainWindow

    win = MainWindow()
    win.show()
    freeze = getattr(app_module, "freeze_startup_objects", None)
    if FREEZE["on"] and freeze is not None:
        gc.collect()
        freeze()
        FREEZE["applied"] = True
    _spin(app, lambda: win.windowHandle() is not None and win.isVisible(), 10, "window shown")
    _settle(app, 0.2)
    return win


def _close_window(app, win) -> None:
    """Close and really delete ``win`` now. Outside a running event loop, deleteLater() would wait for the next
    loop to start, and the next round's stall figures would include freeing this window and its volume."""
    from PySide6.QtCore import QEvent

    win.close()
    win.runner.shutdown()
    win.deleteLater()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del win
    gc.collect()
    _settle(app, 0.1)


def _track_load(win) -> dict:
    """Record perf_counter times of: scan finished, first_image_painted signal, load finished."""
    t: dict = {}
    orig_loaded, orig_scanned = win._on_loaded, win._on_scanned

    def on_scanned(result):  # noqa: ANN001
        t.setdefault("scanned", time.perf_counter())
        return orig_scanned(result)

    def on_loaded(job, viewer, volume):  # noqa: ANN001
        orig_loaded(job, viewer, volume)
        if win._current(job):
            t.setdefault("loaded", time.perf_counter())

    win._on_scanned = on_scanned  # the window's signal lambdas look these up on the instance at call time
    win._on_loaded = on_loaded
    win.first_image_painted.connect(lambda: t.setdefault("first_signal", time.perf_counter()))
    return t


class _EventProbe:
    """Event filter: counts Paint events on ``paint_widgets``, records the first Paint while ``armed()``, and
    times the top-level window's UpdateRequest (the whole repaint of the dirty region) into ``slots``."""

    def __init__(self, window, paint_widgets, slots: list | None = None, armed=lambda: True):
        from PySide6.QtCore import QEvent, QObject
        from PySide6.QtWidgets import QMainWindow

        probe = self
        self.paints = 0
        self.first_paint: float | None = None
        self.slots = slots
        self._inside = False

        class _Filter(QObject):
            def eventFilter(self, obj, ev):  # noqa: N802, ANN001 - Qt override
                et = ev.type()
                if et == QEvent.Type.Paint and obj in paint_widgets:
                    probe.paints += 1
                    if probe.first_paint is None and armed():
                        probe.first_paint = time.perf_counter()
                elif (et == QEvent.Type.UpdateRequest and obj is window and probe.slots is not None
                      and not probe._inside):
                    probe._inside = True
                    t0 = time.perf_counter()
                    try:
                        QMainWindow.event(obj, ev)  # deliver it here so that its end can be timed
                    finally:
                        probe.slots.append(("window repaint (UpdateRequest)", t0, time.perf_counter()))
                        probe._inside = False
                    return True
                return False

        self._filter = _Filter()
        self.targets = [window, *paint_widgets]
        for w in self.targets:
            w.installEventFilter(self._filter)

    def remove(self) -> None:
        for w in self.targets:
            w.removeEventFilter(self._filter)


# ------------------------------------------------------------------------------------------------------ (1)
def bench_slice_change(app, n: int) -> dict:
    from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
    from PySide6.QtGui import QKeyEvent, QWheelEvent

    folder = _data.series140_folder()
    _data.warm_page_cache(_data.source_files())
    win = _new_window(app)
    times = _track_load(win)
    t_open = time.perf_counter()
    win.open_path(str(folder))
    _spin(app, lambda: "loaded" in times, 120, "the 140-slice load")
    _spin(app, lambda: win.thumb_job is not None and win.thumb_job.done, 60, "the thumbnails")
    _settle(app, 0.2)
    viewer = win.viewer
    vol = viewer.volume
    n_slices = vol.array.shape[0]
    vp = viewer.graphics.viewport()
    probe = _EventProbe(win, [vp])

    state = {"dir": 1}

    def next_index() -> int:
        i = viewer.state.index
        if not 0 <= i + state["dir"] < n_slices:
            state["dir"] = -state["dir"]
        return i + state["dir"]

    def via_set_slice() -> tuple[float, float]:
        k = next_index()
        t0 = time.perf_counter()
        viewer.set_slice(k)
        t1 = time.perf_counter()
        app.processEvents()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    def via_key() -> tuple[float, float]:
        k = next_index()
        key = Qt.Key.Key_Down if k > viewer.state.index else Qt.Key.Key_Up
        ev = QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier)
        t0 = time.perf_counter()
        app.sendEvent(viewer, ev)
        app.processEvents()
        return time.perf_counter() - t0, 0.0

    centre = QPointF(vp.width() / 2, vp.height() / 2)

    def via_wheel() -> tuple[float, float]:
        k = next_index()
        dy = -120 if k > viewer.state.index else 120  # wheel down (negative) = next slice
        ev = QWheelEvent(centre, QPointF(vp.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, dy),
                         Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                         False)
        t0 = time.perf_counter()
        app.sendEvent(vp, ev)
        app.processEvents()
        return time.perf_counter() - t0, 0.0

    results = {"shape": list(vol.array.shape), "viewport": [vp.width(), vp.height()], "n": n,
               "load_s": times["loaded"] - t_open}
    meter = _OtherLoad()
    for name, fn in (("set_slice", via_set_slice), ("key", via_key), ("wheel", via_wheel)):
        for _ in range(20):  # warm-up
            fn()
        paints0, moved, parts = probe.paints, 0, []
        for _ in range(n):
            before = viewer.state.index
            parts.append(fn())
            moved += viewer.state.index != before
        ms = [1e3 * (a + b) for a, b in parts]
        r = {"median": statistics.median(ms), "p95": pct(ms, 95), "max": max(ms),
             "paints": probe.paints - paints0, "moved": moved}
        if name == "set_slice":
            r["render_median"] = statistics.median(1e3 * a for a, _ in parts)
            r["paint_median"] = statistics.median(1e3 * b for _, b in parts)
            r["render_p95"] = pct([1e3 * a for a, _ in parts], 95)
            r["paint_p95"] = pct([1e3 * b for _, b in parts], 95)
        results[name] = r
    results["other_load"] = meter.cores()
    probe.remove()
    _close_window(app, win)
    results["verdict"] = verdict(results["set_slice"]["median"] < SLICE_TARGET_MS)
    return results


def print_slice_change(r: dict) -> None:
    print(f"\n== (1) slice change -> frame painted: {r['shape'][0]} slices of {r['shape'][1]}x{r['shape'][2]}, "
          f"viewport {r['viewport'][0]}x{r['viewport'][1]} px, offscreen, N={r['n']} changes per path "
          f"(series loaded in {r['load_s']:.2f} s first)")
    print(f"   reference: one 60 Hz frame = {FRAME_MS:.1f} ms; target median < {SLICE_TARGET_MS:.0f} ms")
    print(f"   {'path':<48} {'median ms':>9} {'p95 ms':>8} {'max ms':>8} {'paints':>7} {'moved':>6}  result")
    rows = [("set_slice(k) + processEvents()  [target]", r["set_slice"], r["verdict"]),
            ("Key_Down QKeyEvent + processEvents()", r["key"], verdict(r["key"]["median"] < SLICE_TARGET_MS)),
            ("wheel QWheelEvent on viewport + processEvents()", r["wheel"],
             verdict(r["wheel"]["median"] < SLICE_TARGET_MS))]
    for label, x, v in rows:
        print(f"   {label:<48} {x['median']:9.2f} {x['p95']:8.2f} {x['max']:8.2f} {x['paints']:7d} "
              f"{x['moved']:6d}  {v}")
    s = r["set_slice"]
    print(f"     split of set_slice: render() {s['render_median']:.2f} ms median (p95 {s['render_p95']:.2f}): VOI to "
          f"8 bit, setImage, overlay text; paint {s['paint_median']:.2f} ms median (p95 {s['paint_p95']:.2f}): "
          f"UpdateRequest -> image + labels painted")
    print("     (paints = viewport Paint events during the N timed changes, expected N; moved = changes that moved "
          "the slice)")
    print(f"     other processes used {_fmt_load(r['other_load'])} cores on average meanwhile (of "
          f"{os.cpu_count()})")


# ------------------------------------------------------------------------------------------------------ (2)
def bench_stall(app, profile: bool, rounds: int) -> dict:
    """Runs :func:`_stall_round` ``rounds`` times (fresh window each); the verdict uses the worst round."""
    folder = _data.load560_dataset()
    _data.warm_page_cache(_data.list_files(folder))
    runs = [_stall_round(app, folder, profile and n == 0) for n in range(rounds)]
    for r in runs:
        r.pop("_trace", None)
    worst = max(runs, key=lambda r: r["max"])
    res = dict(worst)
    res["rounds"] = [{k: r[k] for k in ("max", "p99", "median", "first_paint_s", "loaded_s", "scanned_s",
                                        "n_beats", "scroll_steps", "other_load")} for r in runs]
    res["verdict"] = verdict(worst["max"] <= STALL_TARGET_MS)
    res["gc_freeze"] = bool(FREEZE.get("applied"))
    return res


def _stall_round(app, folder: Path, profile: bool) -> dict:
    from PySide6.QtCore import Qt, QTimer

    win = _new_window(app)
    times = _track_load(win)
    slots: list[tuple[str, float, float]] = []

    def wrap(obj, name: str, label: str) -> None:
        orig = getattr(obj, name)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                slots.append((label, t0, time.perf_counter()))

        setattr(obj, name, timed)

    wrap(win, "open_path", "open_path (start scan)")
    wrap(win, "_on_scanned", "_on_scanned (all of it)")
    wrap(win.browser, "populate", "browser.populate")
    wrap(win, "_start_thumbnails", "_start_thumbnails")
    wrap(win, "load_stack", "load_stack (start job)")
    wrap(win.browser, "set_thumbnail", "browser.set_thumbnail (icon)")
    wrap(win.browser, "set_progress", "browser.set_progress")
    wrap(win, "_on_loaded", "_on_loaded (all of it)")
    for v in win.grid.viewers:
        wrap(v, "set_volume", "viewer.set_volume")
        wrap(v, "render", "viewer.render")
    viewer = win.grid.viewers[0]
    probe = _EventProbe(win, [viewer.graphics.viewport()], slots,
                        armed=lambda: viewer.volume is not None and viewer.image.image is not None)

    beats: list[tuple[float, float]] = []  # (start, end) of each heartbeat interval
    last = [None]

    def beat() -> None:
        now = time.perf_counter()
        if last[0] is not None:
            beats.append((last[0], now))
        last[0] = now

    hb = QTimer()
    hb.setTimerType(Qt.TimerType.PreciseTimer)
    hb.setInterval(HEARTBEAT_MS)
    hb.timeout.connect(beat)

    direction = [1]
    scroll_steps = [0]

    def scroll() -> None:
        v = win.viewer
        if v.volume is None:
            return
        t0 = time.perf_counter()
        i, n = v.state.index, v.volume.array.shape[0]
        if not 0 <= i + direction[0] < n:
            direction[0] = -direction[0]
        v.set_slice(i + direction[0])
        scroll_steps[0] += 1
        slots.append(("scroll step (set_slice)", t0, time.perf_counter()))

    sc = QTimer()
    sc.setTimerType(Qt.TimerType.PreciseTimer)
    sc.setInterval(SCROLL_MS)
    sc.timeout.connect(scroll)

    # Baseline: heartbeat alone on an idle window for 0.5 s.
    hb.start()
    _settle(app, 0.5)
    baseline = [1e3 * (b - a) - HEARTBEAT_MS for a, b in beats]
    beats.clear()
    slots.clear()

    prof = cProfile.Profile() if profile else None
    # Garbage collections hold the GIL in whichever thread triggers them: record those over 2 ms as pseudo-slots.
    gc_start: dict = {}

    def on_gc(phase: str, info: dict) -> None:
        tid = threading.get_ident()
        if phase == "start":
            gc_start[tid] = time.perf_counter()
        elif tid in gc_start:
            t0 = gc_start.pop(tid)
            if time.perf_counter() - t0 > 0.002:
                who = "GUI thread" if tid == gui_tid else "worker thread"
                slots.append((f"gc gen{info['generation']} ({who})", t0, time.perf_counter()))

    gui_tid = threading.get_ident()
    gc.callbacks.append(on_gc)
    meter = _OtherLoad()
    t_open = time.perf_counter()
    if prof:
        prof.enable()
    win.open_path(str(folder))
    sc.start()

    def finished() -> bool:
        return ("loaded" in times and win.thumb_job is not None and win.thumb_job.done
                and time.perf_counter() - times["loaded"] > 0.3)

    # Run the real event loop (app.exec would do the same; a local QEventLoop keeps the app alive for (3)).
    from PySide6.QtCore import QEventLoop

    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(50)
    poll.timeout.connect(lambda: (finished() or time.perf_counter() - t_open > 120) and loop.quit())
    poll.start()
    loop.exec()
    if prof:
        prof.disable()
    gc.callbacks.remove(on_gc)
    hb.stop()
    sc.stop()
    poll.stop()
    t_end = time.perf_counter()
    other_load = meter.cores()
    probe.remove()
    if "loaded" not in times:
        raise RuntimeError("the 560-slice load did not finish within 120 s")

    late = [1e3 * (b - a) - HEARTBEAT_MS for a, b in beats]
    by_slot: dict[str, list[float]] = {}
    for name, a, b in slots:
        by_slot.setdefault(name, []).append(1e3 * (b - a))
    # The largest stalls, with the slots that ran inside them (time clipped to the interval).
    worst = sorted(range(len(beats)), key=lambda i: late[i], reverse=True)[:5]
    stalls = []
    for i in sorted(worst, key=lambda i: beats[i][0]):
        a, b = beats[i]
        inside: dict[str, float] = {}
        top_level = 0.0
        for name, s, e in slots:
            ov = min(b, e) - max(a, s)
            if ov > 0:
                inside[name] = inside.get(name, 0.0) + 1e3 * ov
        # Slots that nest (set_volume -> render, _on_scanned -> populate) are not summed twice: the explained time
        # is the union of the slot intervals.
        ivs = sorted((max(a, s), min(b, e)) for _, s, e in slots if min(b, e) > max(a, s))
        cur_s = cur_e = None
        for s, e in ivs:
            if cur_e is None or s > cur_e:
                if cur_e is not None:
                    top_level += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        if cur_e is not None:
            top_level += cur_e - cur_s
        stalls.append({"at_ms": 1e3 * (a - t_open), "late_ms": late[i], "interval_ms": 1e3 * (b - a),
                       "slots": sorted(inside.items(), key=lambda kv: -kv[1]), "explained_ms": 1e3 * top_level})
    res = {
        "other_load": other_load, "n_beats": len(beats), "baseline_max": max(baseline) if baseline else 0.0,
        "baseline_p99": pct(baseline, 99) if baseline else 0.0,
        "max": max(late), "p99": pct(late, 99), "median": statistics.median(late),
        "over_50": sum(x > STALL_TARGET_MS for x in late), "over_16": sum(x > FRAME_MS for x in late),
        "scanned_s": times["scanned"] - t_open if "scanned" in times else None,
        "first_paint_s": probe.first_paint - t_open if probe.first_paint else None,
        "first_signal_s": times["first_signal"] - t_open if "first_signal" in times else None,
        "loaded_s": times["loaded"] - t_open, "run_s": t_end - t_open, "scroll_steps": scroll_steps[0],
        "slices": viewer.volume.array.shape[0] if viewer.volume is not None else None,
        "slots": {k: {"count": len(v), "total_ms": sum(v), "max_ms": max(v), "median_ms": statistics.median(v)}
                  for k, v in by_slot.items()},
        "stalls": stalls,
        "_trace": (t_open, beats, slots),  # for ad-hoc diagnosis; dropped by bench_stall
    }
    res["verdict"] = verdict(res["max"] <= STALL_TARGET_MS)
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        res["profile"] = out.getvalue()
    _close_window(app, win)
    return res


def print_stall(r: dict) -> None:
    rounds = r["rounds"]
    print(f"\n== (2) GUI-thread stalls: open the {r['slices']}-slice series (scan + load in workers) while scrolling "
          f"every {SCROLL_MS} ms; heartbeat every {HEARTBEAT_MS} ms; {len(rounds)} rounds, fresh window each")
    print(f"   lateness = actual heartbeat interval - {HEARTBEAT_MS} ms; times from open_path(); startup objects "
          f"frozen out of the GC after show() as run_gui does: {'yes' if r['gc_freeze'] else 'NO'}")
    print(f"   {'round':<6} {'max ms':>7} {'p99 ms':>7} {'median':>7} {'beats':>6} {'scrolls':>7} "
          f"{'scanned s':>9} {'1st image s':>11} {'loaded s':>8} {'other procs, cores':>18}")
    for n, x in enumerate(rounds, 1):
        fp = f"{x['first_paint_s']:.2f}" if x["first_paint_s"] is not None else "-"
        sc = f"{x['scanned_s']:.2f}" if x["scanned_s"] is not None else "-"
        print(f"   {n:<6} {x['max']:7.1f} {x['p99']:7.1f} {x['median']:7.2f} {x['n_beats']:6d} {x['scroll_steps']:7d} "
              f"{sc:>9} {fp:>11} {x['loaded_s']:8.2f} {_fmt_load(x['other_load']):>18}")
    print(f"   worst max {r['max']:.1f} ms (p99 {max(x['p99'] for x in rounds):.1f} ms worst round), "
          f"target max <= {STALL_TARGET_MS:.0f} ms: {r['verdict']}; median first image "
          f"{statistics.median(x['first_paint_s'] or float('nan') for x in rounds):.2f} s, median load complete "
          f"{statistics.median(x['loaded_s'] for x in rounds):.2f} s")
    busy = [x["other_load"] for x in rounds if x["other_load"] is not None and x["other_load"] > BUSY_CORES]
    if busy:
        print(f"   NOTE: the machine was busy (other processes used up to {max(busy):.2f} of {os.cpu_count()} cores "
              f"during a round): stalls are inflated by CPU starvation; rerun on a quiet machine")
    print(f"   details of the worst round: idle baseline before open_path (0.5 s) max {r['baseline_max']:.1f} ms; "
          f"beats late > {FRAME_MS:.1f} ms: {r['over_16']}, > {STALL_TARGET_MS:.0f} ms: {r['over_50']}; "
          f"first_image_painted signal {r['first_signal_s']:.2f} s")
    print("   GUI time per slot in the worst round (nested: _on_scanned contains populate/set_volume/render, "
          "set_volume contains render; 'gc genN' = a garbage collection over 2 ms, which holds the GIL):")
    print(f"     {'slot':<34} {'calls':>6} {'total ms':>9} {'median ms':>9} {'max ms':>8}")
    for name, s in sorted(r["slots"].items(), key=lambda kv: -kv[1]["max_ms"]):
        print(f"     {name:<34} {s['count']:6d} {s['total_ms']:9.1f} {s['median_ms']:9.2f} {s['max_ms']:8.1f}")
    print("   largest stalls (slots running inside each late interval; 'unexplained' = interval - union of slots, "
          "i.e. GIL waits / Qt work outside them):")
    for s in r["stalls"]:
        parts = ", ".join(f"{n} {ms:.1f}" for n, ms in s["slots"][:4]) or "no timed slot"
        print(f"     t={s['at_ms'] / 1e3:6.2f} s  late {s['late_ms']:6.1f} ms: {parts}; "
              f"unexplained {s['interval_ms'] - s['explained_ms']:.1f} ms")
    if r.get("profile"):
        print("   cProfile of the GUI thread (tottime):")
        for line in r["profile"].splitlines():
            if line.strip():
                print("     " + line)


# ------------------------------------------------------------------------------------------------------ (3)
_COLD_CHILD = r"""
import sys, time
t_child = time.perf_counter()
from medviewer.ui import main_window as _mw
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
_show = _mw.MainWindow.show
def _done():
    heavy = [m for m in ("torch", "transformers") if m in sys.modules]
    print("MEDVIEWER_SHOWN", time.perf_counter() - t_child, ",".join(heavy) or "-", len(sys.modules), flush=True)
    QApplication.instance().quit()
def _show_then_quit(self):
    _show(self)
    QTimer.singleShot(0, _done)
_mw.MainWindow.show = _show_then_quit
from medviewer.__main__ import main
sys.exit(main([]))
"""
_FLOOR_CHILDREN = {
    "import PySide6.QtWidgets": "import PySide6.QtWidgets\nprint('MEDVIEWER_SHOWN', flush=True)",
    "python -c pass": "print('MEDVIEWER_SHOWN', flush=True)",
}


def _time_child(code: str, env: dict) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=str(ROOT))
    fields: list[str] = []
    for line in proc.stdout:
        if line.startswith("MEDVIEWER_SHOWN"):
            elapsed = time.perf_counter() - t0
            fields = line.split()[1:]
            break
    else:
        elapsed = float("nan")
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 0 or elapsed != elapsed:
        raise RuntimeError(f"child failed (rc {proc.returncode}): {err.strip()[-2000:]}")
    return elapsed, fields


def bench_cold_start(repeats: int) -> dict:
    meter = _OtherLoad()
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-cold-") as tmp:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=tmp)
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        _time_child(_COLD_CHILD, env)  # untimed warm-up (.pyc, page cache)
        runs: dict[str, list[float]] = {"medviewer": [], **{k: [] for k in _FLOOR_CHILDREN}}
        inner, heavy, n_mods = [], set(), 0
        for _ in range(repeats):  # round-robin: slow phases of a shared machine hit every command alike
            t, fields = _time_child(_COLD_CHILD, env)
            runs["medviewer"].append(t)
            inner.append(float(fields[0]))
            heavy.update(x for x in fields[1].split(",") if x != "-")
            n_mods = int(fields[2])
            for name, code in _FLOOR_CHILDREN.items():
                runs[name].append(_time_child(code, env)[0])
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"repeats": repeats, "median": med, "other_load": meter.cores(), "min": {k: min(v) for k, v in runs.items()},
            "max": {k: max(v) for k, v in runs.items()}, "inner_median": statistics.median(inner),
            "heavy_modules": sorted(heavy), "modules": n_mods,
            "verdict": verdict(med["medviewer"] < COLD_TARGET_S)}


def print_cold_start(r: dict) -> None:
    print(f"\n== (3) cold start to MainWindow shown (fresh `python -c`, Popen -> marker printed from a "
          f"singleShot(0) after show(); {r['repeats']} runs, round-robin)")
    print(f"   {'command':<44} {'median s':>9} {'min s':>7} {'max s':>7}")
    labels = {"medviewer": "medviewer main([]) -> run_gui() -> shown", "import PySide6.QtWidgets":
              "floor: python -c 'import PySide6.QtWidgets'", "python -c pass": "floor: python -c pass"}
    for k, label in labels.items():
        print(f"   {label:<44} {r['median'][k]:9.3f} {r['min'][k]:7.3f} {r['max'][k]:7.3f}")
    print(f"   medviewer median {r['median']['medviewer']:.3f} s, target < {COLD_TARGET_S:.0f} s: {r['verdict']}; "
          f"{r['median']['medviewer'] / r['median']['import PySide6.QtWidgets']:.2f}x the PySide6.QtWidgets floor; "
          f"inside the child (first line of -c -> shown) {r['inner_median']:.3f} s")
    print(f"   other processes used {_fmt_load(r['other_load'])} cores on average meanwhile (of {os.cpu_count()})")
    heavy = ", ".join(r["heavy_modules"]) if r["heavy_modules"] else "neither"
    print(f"   torch / transformers in sys.modules when shown: {heavy} "
          f"({r['modules']} modules loaded)  {'OK' if not r['heavy_modules'] else 'MISS'}")


# ------------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="slice changes per path in (1) (default 200)")
    ap.add_argument("--cold-repeats", type=int, default=5, help="runs of each command in (3) (default 5)")
    ap.add_argument("--stall-rounds", type=int, default=3, help="rounds of (2), fresh window each (default 3)")
    ap.add_argument("--profile", action="store_true", help="cProfile the GUI thread during round 1 of (2)")
    ap.add_argument("--only", default="123", help="which parts to run, e.g. --only 2 (default 123)")
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="do not call medviewer.ui.app.freeze_startup_objects() after show() (as before that fix)")
    ap.add_argument("--no-machine", action="store_true", help="do not print the machine lines")
    ap.add_argument("--json-out", help="also write the figures as JSON to this file")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    if not args.no_machine:
        print("medviewer GUI benchmark (QT_QPA_PLATFORM=%s)" % os.environ.get("QT_QPA_PLATFORM"))
        for line in _data.machine_lines():
            print(line)
    import PySide6
    import pyqtgraph

    print(f"qt        : PySide6 {PySide6.__version__}, pyqtgraph {pyqtgraph.__version__}, "
          f"platform {os.environ.get('QT_QPA_PLATFORM')}")
    FREEZE["on"] = not args.no_gc_freeze
    results: dict = {}
    if "3" in args.only:  # first, while this process is small and no worker thread exists
        results["cold"] = bench_cold_start(args.cold_repeats)
    if "1" in args.only or "2" in args.only:
        app = _qt_app()
        if "1" in args.only:
            results["slice"] = bench_slice_change(app, args.n)
            print_slice_change(results["slice"])
        if "2" in args.only:
            results["stall"] = bench_stall(app, args.profile, args.stall_rounds)
            print_stall(results["stall"])
    if "cold" in results:
        print_cold_start(results["cold"])
    print(f"\n   bench_gui wall time {time.perf_counter() - t_start:.0f} s")
    if args.json_out:
        with open(args.json_out, "w") as fp:
            json.dump(results, fp, indent=1, default=str)
    return results


if __name__ == "__main__":
    main()
