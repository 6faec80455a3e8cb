#!/usr/bin/env bash
# Smoke test of the built one-folder app, as on a clean machine: empty environment (no PYTHONPATH, no venv on PATH),
# fresh HOME and data dir, run from a scratch folder, no network (where unshare is allowed), Qt offscreen.
#
#   bash packaging/smoke_test.sh [dist/medviewer]
#
# 1. self-test inside the frozen runtime (MEDVIEWER_SELFTEST=1, packaging/pyi_rth_medviewer_selftest.py): models,
#    resources, encoder and sample images found in the bundle, codec plugins present, and compressed files (JPEG 2000,
#    RLE, JPEG-LS, JPEG baseline, JPEG lossless SV1; taken from the build venv's pydicom/pydicom-data when present)
#    decoded by every plugin available for them;
# 2. `medviewer --sample --screenshot` (the GUI on the bundled sample study; first start, then a second one);
# 3. `medviewer scan` and `medviewer score` (torch, Grad-CAM) on the sample study, `medviewer classify-note`
#    (transformers + the packaged encoder);
# 4. `medviewer open CHEST --run-ai --screenshot` (the GUI's model process: a spawned child of the frozen app);
# 5. `medviewer export` of the sample study (PDF, JSON, DICOM SR, SEG and SC);
# 6. `medviewer pacs listen` on loopback, `pacs echo` and `pacs send` to it, then `medviewer rescore --workers 1`
#    (a dask LocalCluster: spawned worker processes talking over loopback TCP); these steps keep the network
#    namespace and use loopback only.
# Exits non-zero on the first failure. Prints the start times; screenshots are kept in $SMOKE_OUT (default: a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
app="$(cd "${1:-dist/medviewer}" && pwd)"
exe="$app/medviewer"
[ -x "$exe" ] || { echo "smoke_test: no executable at $exe (bash packaging/build_installer.sh)" >&2; exit 2; }
work="$(mktemp -d /tmp/medviewer-smoke.XXXXXX)"
out="${SMOKE_OUT:-$work/out}"
mkdir -p "$work/home" "$work/data" "$work/run" "$out"
chmod 700 "$work/run"

# Compressed test files from the build venv (data only: the app itself never sees the venv).
codec_files=()
if [ -x .venv/bin/python ]; then
  mapfile -t codec_files < <(.venv/bin/python - <<'EOF'
from pathlib import Path
import pydicom, data_store
t = Path(pydicom.__file__).parent / "data" / "test_files"
d = Path(data_store.__file__).parent / "data"
for p in (t / "MR_small_jp2klossless.dcm", t / "MR_small_RLE.dcm", t / "MR_small_jpeg_ls_lossless.dcm",
          t / "SC_rgb_jpeg_dcmtk.dcm", d / "JPGLosslessP14SV1_1s_1f_8b.dcm"):
    if p.is_file():
        print(p)
EOF
)
fi

# Offline: without a network namespace of its own where the kernel allows one (unshare), so anything the app
# tried to download would fail here.
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); elif unshare -rn true 2>/dev/null; then offline=(unshare -rn); fi
echo "smoke_test: $app, network: $([ ${#offline[@]} -gt 0 ] && echo "none (${offline[*]})" || echo "not cut (unshare not permitted)")"

run() {  # run the app with a clean environment, from the scratch folder, offline
  (cd "$work" && env -i HOME="$work/home" PATH=/usr/bin:/bin LANG=C.UTF-8 XDG_RUNTIME_DIR="$work/run" \
     QT_QPA_PLATFORM=offscreen MEDVIEWER_DATA_DIR="$work/data" "${offline[@]}" "$@")
}
run_lo() {  # the same, with the loopback interface (the PACS step): in the background, $! is the app itself
  cd "$work" && exec env -i HOME="$work/home" PATH=/usr/bin:/bin LANG=C.UTF-8 XDG_RUNTIME_DIR="$work/run" \
    QT_QPA_PLATFORM=offscreen MEDVIEWER_DATA_DIR="$work/data" "$@"
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
fail() { echo "smoke_test: FAIL: $*" >&2; exit 1; }

echo "== self-test (frozen runtime) =="
run env MEDVIEWER_SELFTEST=1 "$exe" "${codec_files[@]}" > "$out/selftest.json" || { cat "$out/selftest.json"; fail "self-test"; }
python3 - "$out/selftest.json" <<'EOF'
import json, sys
for c in json.load(open(sys.argv[1]))["checks"]:
    detail = c["detail"] if isinstance(c["detail"], str) else json.dumps(c["detail"])
    print(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {detail[:150]}")
EOF

echo "== --version =="
run "$exe" --version

echo "== --sample --screenshot (first start: builds the sample study) =="
t0=$(now)
run "$exe" --sample --screenshot "$out/sample.png" || fail "--sample --screenshot exited $?"
t1=$(now)
is_png "$out/sample.png" || fail "no PNG at $out/sample.png"
echo "first start to screenshot: $(secs "$t0" "$t1") s, $(stat -c %s "$out/sample.png") bytes"
t0=$(now)
run "$exe" --sample --screenshot "$out/sample2.png" || fail "second --sample --screenshot"
t1=$(now)
is_png "$out/sample2.png" || fail "no PNG at $out/sample2.png"
echo "second start to screenshot: $(secs "$t0" "$t1") s"

study="$work/data/sample-study"
chest="$study/01_RG1_UNCI.dcm"
echo "== scan =="
run "$exe" scan "$study" | tee "$out/scan.txt"
grep -q "SAMPLE^MEDVIEWER" "$out/scan.txt" || fail "scan did not list the sample patient"

echo "== score (torch + Grad-CAM) =="
run "$exe" score --cam-dir "$out/cam" "$chest" | tee "$out/score.txt"
grep -q "pneumonia [0-9.]*" "$out/score.txt" || fail "score printed no probability"
ls "$out/cam"/*.png >/dev/null 2>&1 || fail "no Grad-CAM PNG"

echo "== classify-note (transformers, packaged encoder) =="
run "$exe" classify-note "Small left pleural effusion. No pneumothorax." | tee "$out/note.txt"
grep -q "Effusion" "$out/note.txt" || fail "classify-note found no effusion"

echo "== open CHEST --run-ai --screenshot (model in the spawned model process) =="
t0=$(now)
run "$exe" open "$chest" --run-ai --screenshot "$out/ai.png" || fail "open --run-ai exited $?"
t1=$(now)
is_png "$out/ai.png" || fail "no PNG at $out/ai.png"
echo "start, score and heat map to screenshot: $(secs "$t0" "$t1") s"

echo "== export: PDF, JSON, SR, SEG, SC (reportlab, highdicom) =="
run "$exe" export "$study" --pdf "$out/export/report.pdf" --json "$out/export/report.json" \
  --sr "$out/export/sr.dcm" --seg "$out/export/seg.dcm" --sc "$out/export/sc.dcm" || fail "export exited $?"
[ "$(head -c 4 "$out/export/report.pdf")" = "%PDF" ] || fail "no PDF report"
grep -q '"schema"' "$out/export/report.json" || fail "no JSON report"
for f in sr seg sc; do
  [ "$(tail -c +129 "$out/export/$f.dcm" | head -c 4)" = "DICM" ] || fail "$f.dcm is not a DICOM file"
done
ls -la "$out/export" | tail -n +2

echo "== PACS on loopback: Storage SCP (pacs listen), C-ECHO and C-STORE to it (pynetdicom) =="
port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
(run_lo "$exe" pacs listen --host 127.0.0.1 --port "$port" --dest "$work/received" > "$out/listen.txt" 2>&1) &
scp=$!
for _ in $(seq 60); do grep -q "listening" "$out/listen.txt" 2>/dev/null && break; sleep 0.5; done
(run_lo "$exe" pacs echo "ANY@127.0.0.1:$port") || { kill "$scp"; fail "C-ECHO"; }
(run_lo "$exe" pacs send "ANY@127.0.0.1:$port" "$chest") || { kill "$scp"; fail "C-STORE"; }
sleep 1
kill -INT "$scp" 2>/dev/null || true
wait "$scp" 2>/dev/null || true
cat "$out/listen.txt"
find "$work/received" -name "*.dcm" | grep -q . || fail "the Storage SCP received nothing"

echo "== rescore on a dask LocalCluster of 1 worker process (dask.distributed, spawned workers) =="
(run_lo "$exe" rescore --all --workers 1 --model pneumonia-cnn --no-notes) > "$out/rescore.txt" 2>&1 \
  || { cat "$out/rescore.txt"; fail "rescore --workers 1 exited non-zero"; }
cat "$out/rescore.txt"
grep -q "[1-9][0-9]* re-scored, .* 0 failed" "$out/rescore.txt" || fail "rescore on dask"

if [ -s "$work/data/medviewer.log" ]; then
  echo "== warnings in medviewer.log =="
  grep -E "WARNING|ERROR" "$work/data/medviewer.log" | tail -20 || true
fi
rm -rf "$work/home" "$work/data" "$work/run" "$work/received"  # keep only what is under $out
echo "smoke_test: OK ($app, $(du -sh "$app" | cut -f1)); screenshots in $out"
