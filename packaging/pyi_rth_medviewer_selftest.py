# PyInstaller runtime hook of the frozen app (packaging/medviewer.spec): with MEDVIEWER_SELFTEST=1 in the environment
# the executable checks, inside the frozen runtime, what the import analysis cannot prove (package data found through
# importlib.resources, pixel codec plugins found through entry points, the packaged encoder, the sample images),
# prints one JSON document and exits (0: all checks passed, 1: some failed) before the app starts. Arguments are
# DICOM files to decode with every codec plugin available for their transfer syntax. Without the variable it does
# nothing. packaging/smoke_test.sh runs it.
import os
import sys


def _selftest(paths):  # noqa: C901 - a flat list of checks
    import importlib.metadata
    import importlib.util
    import json
    from pathlib import Path

    bundle = Path(getattr(sys, "_MEIPASS", "")).resolve()
    checks = []

    def check(name, fn):
        try:
            detail = fn()
            checks.append({"check": name, "ok": True, "detail": detail})
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            checks.append({"check": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"})

    def inside_bundle(path):
        path = Path(path).resolve()
        if bundle not in path.parents:
            raise AssertionError(f"{path} is not inside the bundle {bundle}")
        return str(path)

    def models():
        from medviewer.config import models_dir
        from medviewer.inference.scorer import available_models

        cards = [c.name for c in available_models()]
        if not cards:
            raise AssertionError(f"no model card in {models_dir()}")
        notes = models_dir() / "notes-minilm" / "card.json"
        if not notes.is_file():
            raise AssertionError(f"{notes} missing")
        return {"dir": inside_bundle(models_dir()), "image_models": cards}

    def resources():
        from medviewer.config import resources_dir

        qss = resources_dir() / "styles" / "dark.qss"
        if not qss.is_file():
            raise AssertionError(f"{qss} missing")
        return inside_bundle(resources_dir())

    def encoder():
        from medviewer.notes.model import encoder_dir

        return inside_bundle(encoder_dir())

    def sample():
        from medviewer.io.sample import SAMPLE_FILES, pydicom_data_file

        return [inside_bundle(pydicom_data_file(name)) for name, _ in SAMPLE_FILES]

    def gpl_codec_absent():
        if importlib.util.find_spec("libjpeg") is not None:
            raise AssertionError("the GPL-3 pylibjpeg-libjpeg is bundled")
        return "pylibjpeg-libjpeg not bundled"

    def entry_points():
        eps = importlib.metadata.entry_points()
        found = {g: sorted(e.name for e in eps.select(group=g))
                 for g in ("pylibjpeg.jpeg_2000_decoders", "pylibjpeg.pixel_data_decoders")}
        if "openjpeg" not in found["pylibjpeg.jpeg_2000_decoders"]:
            raise AssertionError(f"openjpeg entry point missing: {found}")
        return found

    def decoders():
        from pydicom import uid
        from pydicom.pixels.decoders.base import get_decoder

        expected = {
            uid.JPEG2000Lossless: {"pylibjpeg", "gdcm", "pillow"},
            uid.JPEG2000: {"pylibjpeg", "gdcm", "pillow"},
            uid.HTJ2KLossless: {"pylibjpeg"},
            uid.RLELossless: {"pylibjpeg", "pydicom"},
            uid.JPEGLSLossless: {"pyjpegls", "gdcm"},
            uid.JPEGLSNearLossless: {"pyjpegls", "gdcm"},
            uid.JPEGLosslessSV1: {"gdcm"},
            uid.JPEGBaseline8Bit: {"pillow", "gdcm"},
        }
        out, missing = {}, {}
        for ts, want in expected.items():
            have = set(get_decoder(ts).available_plugins)
            out[ts.name] = sorted(have)
            if want - have:
                missing[ts.name] = sorted(want - have)
        if missing:
            raise AssertionError(f"codec plugins missing: {missing}")
        return out

    def decode(path):
        import pydicom
        from pydicom.pixels import pixel_array
        from pydicom.pixels.decoders.base import get_decoder

        ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        plugins = sorted(get_decoder(ts).available_plugins) if ts.is_compressed else [""]
        shapes = {}
        for plugin in plugins:
            shapes[plugin or "native"] = list(pixel_array(path, decoding_plugin=plugin).shape)
        return {"transfer_syntax": ts.name, "decoded_by": shapes}

    check("frozen", lambda: {"frozen": bool(getattr(sys, "frozen", False)), "bundle": str(bundle)})
    check("models", models)
    check("resources", resources)
    check("encoder", encoder)
    check("sample images", sample)
    check("codec entry points", entry_points)
    check("codec plugins", decoders)
    check("no GPL codec", gpl_codec_absent)
    for path in paths:
        check(f"decode {Path(path).name}", lambda p=path: decode(p))
    ok = all(c["ok"] for c in checks)
    print(json.dumps({"ok": ok, "checks": checks}, indent=1))
    return 0 if ok else 1


if os.environ.get("MEDVIEWER_SELFTEST") == "1" and "--multiprocessing-fork" not in sys.argv:
    sys.exit(_selftest(sys.argv[1:]))
