"""Fuzz the DICOM path with mutants of real files (issue #12): scan, stack building, volume loading and drawing
must survive every mutant.

Seeds are real files: every image object of pydicom's test files and of pydicom-data (the compressed ones
included) and a few slices of each CT series in ``../shared/data``. Each mutant is one seed with a few mutations
(bytes flipped, inserted or deleted, a truncation, or header values set to extremes: NumberOfFrames, Rows, Columns,
bits, geometry, windows, VOI functions, LUT descriptors). A long-lived worker process opens each mutant the way the
viewer does (``scan`` -> ``build_stacks`` -> ``load_volume`` -> ``display_safe`` of every slice) under an address
space limit; the parent restarts it when it dies or hangs. Outcomes per mutant:

* ``ok``: read and drawn (possibly with per-slice errors or skipped files, each with a message in words);
* ``refused``: ``load_volume`` raised its documented per-file error (``PixelDecodeError``) with a message;
* ``escaped``: any other exception reached the caller (a bug);
* ``died``: the worker process was killed (segfault, abort, out of memory) (a bug);
* ``hung``: no answer within ``--timeout`` seconds (a bug).

    .venv/bin/python benchmarks/fuzz_dicom.py [--mutants 20000] [--seed 0] [--timeout 10] [--memory-mb 3072]

Target of the long run, printed: >= 20,000 mutants, 0 deaths, 0 hangs over 10 s, 0 escaped exceptions, every
failure a message in words. The test suite runs a short run (``tests/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

#: Header attributes set to extreme or broken values by the header mutator (keyword -> candidate values).
EXTREMES: dict[str, list] = {
    "NumberOfFrames": ["0", "-1", "2147483647", "65536", "3", "NaN"],
    "Rows": [0, 1, 65535, 3],
    "Columns": [0, 1, 65535, 7],
    "BitsAllocated": [0, 1, 12, 64, 8, 32],
    "BitsStored": [0, 1, 17, 33, 64],
    "HighBit": [0, 63, 200],
    "PixelRepresentation": [0, 1, 2],
    "SamplesPerPixel": [0, 2, 3, 9],
    "PhotometricInterpretation": ["MONOCHROME1", "RGB", "YBR_FULL_422", "PALETTE COLOR", "XYZ", ""],
    "ImageOrientationPatient": [["0", "0", "0", "0", "0", "0"], ["1", "0", "0", "1", "0", "0"],
                                ["NaN", "0", "0", "0", "1", "0"], ["1e308", "0", "0", "0", "1", "0"]],
    "ImagePositionPatient": [["inf", "0", "0"], ["1e308", "-1e308", "0"], ["NaN", "NaN", "NaN"]],
    "PixelSpacing": [["0", "0"], ["-1", "1"], ["inf", "1"], ["1e-300", "1e-300"]],
    "WindowCenter": ["NaN", "1e308", "-inf", "0"],
    "WindowWidth": ["0", "-5", "NaN", "1e308", "0.5"],
    "VOILUTFunction": ["SIGMOID", "CUBIC", "LINEAR_EXACT", ""],
    "RescaleSlope": ["0", "NaN", "1e308", "-1"],
    "RescaleIntercept": ["inf", "-1e308", "32768"],
}


# ------------------------------------------------------------------------------------------------ seeds
def seed_files() -> list[str]:
    """Real DICOM image files to mutate."""
    import pydicom
    from pydicom.data import get_testdata_file

    from medviewer.io.sample import pydicom_data_file

    folders = [Path(get_testdata_file("CT_small.dcm")).parent, pydicom_data_file("RG1_UNCI.dcm").parent]
    out = []
    for folder in folders:
        for f in sorted(folder.iterdir()):
            if not f.is_file() or f.stat().st_size > 4_000_000:
                continue
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - not DICOM
                continue
            if "Rows" in ds:
                out.append(str(f))
    for name in ("ct-head-ge", "ct-phantom-philips"):
        folder = SHARED / name
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(("LICENSE", "DIR")))
            out += [str(p) for p in files[:: max(1, len(files) // 4)][:4]]
    return out


# ------------------------------------------------------------------------------------------------ mutators
def _mutate_bytes(data: bytearray, rng: random.Random) -> str:
    kind = rng.choice(["flip", "flip", "insert", "delete", "truncate", "zero-run"])
    start = rng.randrange(0, max(1, len(data)))
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "insert":
        data[start:start] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == "delete":
        del data[start:start + rng.randint(1, 256)]
    elif kind == "truncate":
        del data[max(132, start):]
    else:
        n = rng.randint(4, 512)
        data[start:start + n] = bytes(min(n, len(data) - start))
    return kind


def _mutate_header(path: str, out: str, rng: random.Random) -> str:
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        names = rng.sample(sorted(EXTREMES), k=rng.randint(1, 3))
        for kw in names:
            try:
                setattr(ds, kw, rng.choice(EXTREMES[kw]))
            except Exception:  # noqa: BLE001 - a value pydicom will not even hold: skip it
                pass
        if rng.random() < 0.2 and "PixelData" in ds and not ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.PixelData = ds.PixelData[: rng.randrange(0, len(ds.PixelData) + 1)]
        try:
            ds.save_as(out)
        except Exception:  # noqa: BLE001 - pydicom refuses to write it: fall back to the bytes
            Path(out).write_bytes(Path(path).read_bytes())
    return "header:" + ",".join(names)


def make_mutant(path: str, out: str, rng: random.Random) -> str:
    """Write a mutant of ``path`` to ``out``; returns what was done."""
    if rng.random() < 0.4:
        return _mutate_header(path, out, rng)
    data = bytearray(Path(path).read_bytes())
    kinds = [_mutate_bytes(data, rng) for _ in range(rng.randint(1, 3))]
    Path(out).write_bytes(bytes(data))
    return "bytes:" + ",".join(kinds)


# ------------------------------------------------------------------------------------------------ worker
def open_like_the_viewer(path: str) -> tuple[str, str]:
    """What the viewer does with a folder holding ``path``; returns (outcome, message)."""
    import numpy as np

    from medviewer.imaging.stacks import build_stacks
    from medviewer.imaging.voi import display_safe
    from medviewer.imaging.volume import load_volume
    from medviewer.io.pixels import PixelDecodeError
    from medviewer.io.scan import scan

    index = scan([path])
    messages = [s.reason for s in index.skipped]
    for _, _, series in index.iter_series():
        for stack in build_stacks(series):
            try:
                vol = load_volume(stack, workers=1)
            except PixelDecodeError as exc:
                return "refused", exc.reason
            messages += [e.reason for e in vol.slice_errors]
            if vol.array.ndim == 3:
                for k in range(vol.array.shape[0]):
                    shown, note = display_safe(vol.array[k])
                    assert shown.dtype == np.uint8
                    if note:
                        messages.append(note)
    return "ok", "; ".join(m for m in messages if m)[:300]


def _worker(conn, memory_mb: int) -> None:  # noqa: ANN001 - a multiprocessing Connection
    import resource
    import warnings

    warnings.simplefilter("ignore")
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ["MEDVIEWER_DECODE_IN_PROCESS"] = os.environ.get("FUZZ_DECODE_IN_PROCESS", "0")
    while True:
        path = conn.recv()
        if path is None:
            return
        try:
            conn.send(open_like_the_viewer(path))
        except MemoryError:
            conn.send(("escaped", "MemoryError (the address-space limit was reached)"))
        except Exception as exc:  # noqa: BLE001 - that is what we are looking for
            conn.send(("escaped", f"{type(exc).__name__}: {exc} | " + traceback.format_exc(limit=-3)[-600:]))


@dataclass
class Report:
    counts: dict[str, int] = field(default_factory=dict)
    bugs: list[tuple[str, str, str, str]] = field(default_factory=list)  # (outcome, seed, mutation, message)
    silent_failures: int = 0  # refused with an empty message
    contained_crashes: int = 0  # a native codec crashed or hung in a decoder process: reported, the app lived
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return sum(self.counts.values())


def run(n_mutants: int, seed: int = 0, timeout: float = 10.0, memory_mb: int = 3072,
        keep: str | None = None, progress: bool = True) -> Report:
    """Run ``n_mutants`` mutants; ``keep`` copies the mutants that found a bug into that folder."""
    rng = random.Random(seed)
    seeds = seed_files()
    ctx = mp.get_context("spawn")
    report = Report()
    t0 = time.time()

    def start():  # noqa: ANN202
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, memory_mb), daemon=True)
        proc.start()
        return proc, parent

    proc, conn = start()
    with tempfile.TemporaryDirectory(prefix="medviewer-fuzz-") as tmp:
        for i in range(n_mutants):
            src = rng.choice(seeds)
            mutant = os.path.join(tmp, f"m{i % 4}.dcm")
            what = make_mutant(src, mutant, rng)
            conn.send(mutant)
            if conn.poll(timeout):
                try:
                    outcome, message = conn.recv()
                except EOFError:
                    outcome, message = "died", f"worker exit code {proc.exitcode}"
            else:
                outcome, message = ("died", f"worker exit code {proc.exitcode}") if not proc.is_alive() else \
                    ("hung", f"no answer within {timeout:.0f} s")
            if outcome in ("died", "hung"):
                proc.kill()
                proc.join()
                proc, conn = start()
            report.counts[outcome] = report.counts.get(outcome, 0) + 1
            if outcome == "refused" and not message.strip():
                report.silent_failures += 1
            if "decoder crashed" in message or "decoder did not finish" in message:
                report.contained_crashes += 1
            if outcome in ("escaped", "died", "hung"):
                report.bugs.append((outcome, os.path.basename(src), what, message))
                if keep:
                    os.makedirs(keep, exist_ok=True)
                    Path(keep, f"{outcome}-{i}-{os.path.basename(src)}").write_bytes(Path(mutant).read_bytes())
            if progress and (i + 1) % 500 == 0:
                print(f"  {i + 1} mutants, {time.time() - t0:.0f} s, {report.counts}", flush=True)
    conn.send(None)
    proc.join(5)
    if proc.is_alive():
        proc.kill()
    report.seconds = time.time() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--memory-mb", type=int, default=3072)
    ap.add_argument("--keep", help="copy the mutants that found a bug into this folder")
    args = ap.parse_args(argv)
    print(f"fuzzing {args.mutants} mutants of {len(seed_files())} real files (seed {args.seed}, timeout "
          f"{args.timeout:.0f} s, address space {args.memory_mb} MiB)")
    r = run(args.mutants, args.seed, args.timeout, args.memory_mb, args.keep)
    print(f"\n{r.n} mutants in {r.seconds:.0f} s: {r.counts}; native codec crashes or hangs contained in a decoder "
          f"process (the file reported, the app alive): {r.contained_crashes}")
    for outcome, src, what, message in r.bugs[:30]:
        print(f"  {outcome:8s} {src:32s} {what:40s} {message[:200]}")
    deaths, hangs, escaped = (r.counts.get(k, 0) for k in ("died", "hung", "escaped"))
    ok = r.n >= 20000 and deaths == 0 and hangs == 0 and escaped == 0 and r.silent_failures == 0
    print(f"TARGET >= 20,000 mutants, 0 process deaths, 0 hangs over {args.timeout:.0f} s, 0 exceptions escaping, "
          f"every failure a message in words: {r.n} mutants, {deaths} deaths, {hangs} hangs, {escaped} escaped, "
          f"{r.silent_failures} silent -> {'PASS' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
