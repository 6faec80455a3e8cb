#!/usr/bin/env bash
# Build the one-folder installer (dist/medviewer/) with PyInstaller, then smoke-test it.
#
#   bash packaging/build_installer.sh            # build + smoke test (the pre-release check)
#   bash packaging/build_installer.sh --no-test  # build only
#
# Needs the project venv (bash packaging/bootstrap.sh) with pyinstaller in it (.venv/bin/pip install pyinstaller).
# Takes several minutes (torch alone is ~1 GB to collect); not part of .ci/run (see README "Installer").
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
if ! "$py" -c "import PyInstaller" 2>/dev/null; then
  echo "build_installer: PyInstaller is not installed in .venv (.venv/bin/pip install 'pyinstaller>=6.10')" >&2
  exit 2
fi
start=$(date +%s)
"$py" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/medviewer.spec
echo "build_installer: built dist/medviewer in $(( $(date +%s) - start )) s, $(du -sh dist/medviewer | cut -f1)"
if [ "${1:-}" != "--no-test" ]; then
  bash packaging/smoke_test.sh dist/medviewer
fi
