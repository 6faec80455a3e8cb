"""A short fuzz run (issue #12): a few hundred mutants of real DICOM files through scan, stacks, loading and
drawing, in a worker process with time and memory limits. The long run (>= 20,000 mutants) is
``benchmarks/fuzz_dicom.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fuzz_dicom  # noqa: E402


@pytest.mark.slow
def test_short_fuzz_run_has_no_deaths_hangs_or_escaped_exceptions():
    report = fuzz_dicom.run(400, seed=12, timeout=10, memory_mb=3072, progress=False)
    assert report.n == 400
    assert report.bugs == [], report.bugs[:5]
    assert report.silent_failures == 0
    # the mutants exercise both outcomes: files that still open and files refused with a reason
    assert report.counts.get("ok", 0) > 50 and report.counts.get("refused", 0) > 20


def test_mutants_differ_from_their_seed(tmp_path):
    import random

    seeds = fuzz_dicom.seed_files()
    assert len(seeds) > 50
    rng = random.Random(0)
    for k in range(20):
        src = rng.choice(seeds)
        out = tmp_path / f"m{k}.dcm"
        what = fuzz_dicom.make_mutant(src, str(out), rng)
        assert what.startswith(("bytes:", "header:"))
        assert out.read_bytes() != Path(src).read_bytes() or what.startswith("header:")
