"""Notes classifier speed on CPU: model load time and median latency per 150-word note after warm-up
(target <= 50 ms at the app's thread count, 1), beside the rule labeler alone.

    .venv/bin/python benchmarks/bench_notes.py [--threads 1] [--repeats 30] [--also-float32] [--write-card]

The classifier is timed as it ships (``NoteClassifier.classify``: language gate, abbreviation / spelling
normaliser, rule features, windows, the encoder int8-quantised when the card says so). ``--also-float32`` times
the same model without quantisation for comparison; ``--write-card`` records the figures in the card's
``latency`` section. Figures, not tests: PASS/MISS is printed, nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def _median_ms(fn, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the app classifies with 1)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    ap.add_argument("--also-float32", action="store_true")
    ap.add_argument("--write-card", action="store_true")
    args = ap.parse_args(argv)
    text = note_of_150_words()
    t = time.perf_counter()
    from medviewer.notes.model import NoteClassifier

    clf = NoteClassifier.load(args.model, threads=args.threads)
    load_s = time.perf_counter() - t
    med, p95 = _median_ms(lambda: clf.classify([text]), args.repeats)
    from medviewer.notes.rules import RuleLabeler

    rules = RuleLabeler()
    rmed, _ = _median_ms(lambda: rules.label(text), args.repeats)
    arch = clf.card["architecture"]
    quant = arch.get("quantization", "none")
    res = clf.classify([text])[0]
    print(f"notes classifier ({clf.card['name']} {clf.card['version']}, encoder {quant}), torch threads "
          f"{args.threads}, note of {len(text.split())} words, {res.tokens} word pieces, {res.windows} window(s)")
    print(f"   model load (import + encoder + adapter merge)   {load_s:8.2f} s")
    print(f"   classify, median of {args.repeats} after warm-up     {med:8.1f} ms   p95 {p95:.1f} ms")
    print(f"   rule labeler alone, median                       {rmed:8.2f} ms")
    figures = {"median_ms_150_words": round(med, 1), "p95_ms": round(p95, 1), "threads": args.threads,
               "rule_labeler_median_ms": round(rmed, 2), "encoder": quant, "load_s": round(load_s, 2)}
    if args.also_float32:
        f32 = NoteClassifier.load(args.model, threads=args.threads, quantize=False)
        fmed, _ = _median_ms(lambda: f32.classify([text]), args.repeats)
        print(f"   same model, float32 encoder, median             {fmed:8.1f} ms")
        figures["float32_median_ms"] = round(fmed, 1)
    print(f"TARGET median <= 50 ms per 150-word note: {med:.1f} ms -> {'PASS' if med <= 50 else 'MISS'}")
    if args.write_card:
        card_dir = Path(args.model) if args.model else ROOT / "models" / "notes-minilm"
        card_path = card_dir / "card.json"
        card = json.loads(card_path.read_text(encoding="utf-8"))
        figures["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other work when measured)"
        figures["script"] = "benchmarks/bench_notes.py"
        card["latency"] = figures
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"written to {card_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
