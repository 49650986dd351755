#!/usr/bin/env bash
# Set up a fresh machine: system libraries for headless MuJoCo rendering, then a virtualenv (.venv)
# with vla-async and its extras. Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# Headless OpenGL for MuJoCo cameras: EGL (Mesa llvmpipe) first, OSMesa as the fallback.
need_apt=()
for pkg in libegl1 libgl1-mesa-dri libosmesa6; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "[setup] warning: missing ${need_apt[*]} (need root + apt); camera rendering may fail" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }  # this machine's pip config is noisy
# torch: the CPU wheel (2.13.0) is what this project tests with; pin it before the extras so pip does
# not resolve a multi-GB CUDA build. Robot computers never need it (the client core has no torch).
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==2.13.0 (policy-server backends)"
  quiet "${PIP[@]}" "torch==2.13.0"
fi
echo "[setup] installing vla-async[all] (editable)"
quiet "${PIP[@]}" -e ".[all]"
echo "[setup] done: $VENV/bin/vla-async"
