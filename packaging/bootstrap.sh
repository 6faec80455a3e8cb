#!/usr/bin/env bash
# Set up medviewer on a fresh machine, then run the app on the bundled sample or the test suite.
#
#   bash packaging/bootstrap.sh run     # set up, then open the viewer on the bundled sample study
#   bash packaging/bootstrap.sh test    # set up, then ruff, mypy and the whole test suite headless (what CI runs)
#
# Idempotent: a second run reuses .venv and only installs what is missing.
# MEDVIEWER_PYTHON picks the interpreter (default python3, 3.10+). torch is installed first and pinned
# (constraints.txt) so pip never pulls a multi-GB CUDA build; see README "GPU workstations" for CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"
py="${MEDVIEWER_PYTHON:-python3}"

# Qt needs a few system libraries even offscreen (EGL/GL, xkbcommon, fontconfig, a font), and on a real X display
# the xcb platform plugin's libraries (libxcb-cursor0 and friends).
need_apt=()
for lib in libEGL.so.1 libGL.so.1 libxkbcommon.so.0 libfontconfig.so.1 libdbus-1.so.3 libxcb-cursor.so.0 \
           libxkbcommon-x11.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 libxcb-shape.so.0 libxcb-xinerama.so.0 \
           libxcb-randr.so.0 libxcb-render-util.so.0 libxcb-image.so.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || need_apt+=("$lib")
done
if [ ${#need_apt[@]} -gt 0 ] || ! fc-list >/dev/null 2>&1 || [ -z "$(fc-list 2>/dev/null | head -1)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing system libraries for Qt (${need_apt[*]:-fonts})"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 fonts-dejavu-core \
      libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 \
      libxcb-render-util0 libxcb-image0 >/dev/null
  else
    echo "bootstrap: Qt may need these system libraries: ${need_apt[*]} (install libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 fonts-dejavu-core libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install -c constraints.txt "torch==2.13.0"
"${pip[@]}" install -c constraints.txt -e ".[test]"

case "$mode" in
  run)
    shift || true
    exec .venv/bin/medviewer --sample "$@"
    ;;
  test)
    shift || true
    export QT_QPA_PLATFORM=offscreen
    .venv/bin/ruff check medviewer   # lint first: E/F/W (pyproject [tool.ruff]); fails the run on any finding
    .venv/bin/python -m mypy medviewer   # then types (pyproject [tool.mypy]); fails the run on any error
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: bash packaging/bootstrap.sh run|test [args...]" >&2
    exit 2
    ;;
esac
