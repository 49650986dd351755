#!/usr/bin/env bash
# The LeRobot test lane: LeRobot 0.4.4 pins torch<2.11, so it gets its own venv (.venv-lerobot) with its
# own torch and the light core deps, then runs tests/lerobot with this checkout first on PYTHONPATH (the
# project is not installed there, so a venv cached outside the clone always tests the code at hand).
#
# Cost measured on the 2-core dev machine: `pip download lerobot==0.4.4` + deps = 4.3 GB (torch 2.10 pulls
# the CUDA wheels from PyPI) in ~103 s; installing them into the venv ~222 s; the tests ~25 s. That fits the
# CI budget, so by default the venv is built when missing and reused after that: it lives outside the
# checkout (~/.cache/vla-async/venv-lerobot) so fresh clones on the same machine (CI) reuse it.
# VLA_ASYNC_LEROBOT_LANE=0 skips the lane; =reuse runs it only when the venv already exists.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LEROBOT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vla-async/venv-lerobot}
PYTHON=${PYTHON:-python3}
WANT=${VLA_ASYNC_LEROBOT_LANE:-1}
say() { echo "[lerobot-lane] $*"; }

if [ "$WANT" = 0 ]; then
  say "skipped: VLA_ASYNC_LEROBOT_LANE=0"
  exit 0
fi

have_venv() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import lerobot, torch" >/dev/null 2>&1; }

if ! have_venv; then
  if [ "$WANT" = reuse ]; then
    say "skipped: no $VENV with lerobot yet and VLA_ASYNC_LEROBOT_LANE=reuse" \
        "(building it downloads ~4.3 GB: torch 2.10 + CUDA wheels). Run $0 without it to build and run it."
    exit 0
  fi
  start=$(date +%s)
  say "creating $VENV (lerobot==0.4.4 with its own torch; this takes minutes)"
  mkdir -p "$(dirname "$VENV")"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }  # this machine's pip config is noisy
  PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  quiet "${PIP[@]}" "lerobot==0.4.4"
  # The light core deps (the project itself is not installed: see PYTHONPATH below).
  quiet "${PIP[@]}" "pyzmq>=25" "msgpack>=1.0" "scipy>=1.10" "pydantic>=2.5" "PyYAML>=6" "pytest>=8" "pytest-timeout>=2.2" "onnx>=1.15" "onnxruntime>=1.17"
  say "venv ready in $(( $(date +%s) - start )) s"
fi

say "running tests/lerobot with $("$VENV/bin/python" -c 'import lerobot, torch; print("lerobot", lerobot.__version__, "torch", torch.__version__)')"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/lerobot
rc=$?
set -e
if [ $rc = 5 ]; then
  say "no tests collected"
  exit 0
fi
exit $rc
