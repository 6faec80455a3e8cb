"""Notes classifier speed on CPU: model load time and median latency per 150-word note after warm-up
(target <= 50 ms), beside the rule labeler alone.

    .venv/bin/python benchmarks/bench_notes.py [--threads 1] [--repeats 30]

Figures, not tests: PASS/MISS is printed, nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def note_of_150_words() -> str:
    from medviewer.notes.data import load_reports

    train, _ = load_reports()
    words = " ".join(r.text for r in train[:40]).split()
    return " ".join(words[:150])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args(argv)
    text = note_of_150_words()
    t = time.perf_counter()
    from medviewer.notes.model import NoteClassifier

    clf = NoteClassifier.load(threads=args.threads)
    load_s = time.perf_counter() - t
    for _ in range(3):
        clf.classify([text])
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        clf.classify([text])
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    from medviewer.notes.rules import RuleLabeler

    rules = RuleLabeler()
    rt = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        rules.label(text)
        rt.append((time.perf_counter() - t) * 1000)
    med = statistics.median(times)
    print(f"notes classifier ({clf.card['name']} {clf.card['version']}), torch threads {args.threads}, "
          f"note of {len(text.split())} words, {len(clf.tokenizer(text)['input_ids'])} tokens")
    print(f"   model load (import + encoder + adapter merge)   {load_s:8.2f} s")
    print(f"   classify, median of {args.repeats} after warm-up     {med:8.1f} ms   p95 "
          f"{times[int(0.95 * (len(times) - 1))]:.1f} ms")
    print(f"   rule labeler alone, median                       {statistics.median(rt):8.2f} ms")
    print(f"TARGET median <= 50 ms per 150-word note: {med:.1f} ms -> {'PASS' if med <= 50 else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
