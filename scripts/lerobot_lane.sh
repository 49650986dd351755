#!/usr/bin/env bash
# The LeRobot test lane: LeRobot 0.4.4 pins torch<2.11, so it gets its own venv with its own torch and the
# light core deps, in the user cache (~/.cache/vla-async/venv-lerobot, or $LEROBOT_VENV), outside the
# checkout so fresh clones on the same machine (CI) reuse it. It runs tests/lerobot with this checkout first
# on PYTHONPATH (the project is not installed there, so the cached venv always tests the code at hand).
#
# Cost measured on the 2-core dev machine: building the venv takes ~493 s and leaves 8.6 GB on disk
# (`du -sh ~/.cache/vla-async/venv-lerobot`; torch 2.10 brings the CUDA wheels from PyPI); the tests ~90 s (16 tests:
# backends, export, and robot.kind=lerobot on the simulated arm as a LeRobot robot, which needs mujoco there too).
# pip's progress is shown as one line per package. By default the venv is built when missing and reused
# after that. VLA_ASYNC_LEROBOT_LANE=0 skips the lane; =reuse runs it only when the venv already exists.
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
        "(building it takes ~8 minutes and 8.6 GB: torch 2.10 + CUDA wheels). Run $0 without it to build and run it."
    exit 0
  fi
  start=$(date +%s)
  say "creating $VENV (lerobot==0.4.4 with its own torch: ~8 minutes, 8.6 GB on disk; progress below)"
  mkdir -p "$(dirname "$VENV")"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }  # this machine's pip config is noisy
  # progress: pip's own lines, one per package (Collecting / Downloading / Installing), prefixed
  progress() { "$@" 2> >(grep -v "is ignored: it is neither" >&2) \
    | grep --line-buffered -E "^(Collecting|Downloading|Installing collected|Successfully installed)" \
    | cut -c1-120 | sed -u "s/^/[lerobot-lane]   /"; }
  PIP=("$VENV/bin/python" -m pip install --progress-bar off --disable-pip-version-check)
  progress "${PIP[@]}" "lerobot[async]==0.4.4"  # async: grpcio, for LeRobot's own PolicyServer/RobotClient
  # The light core deps (the project itself is not installed: see PYTHONPATH below).
  # mujoco: the simulated arm as a LeRobot robot (lerobot_robot_vla_sim) in tests/lerobot
  quiet "${PIP[@]}" -q "mujoco>=3.1" "pyzmq>=25" "msgpack>=1.0" "scipy>=1.10" "pydantic>=2.5" "PyYAML>=6" "pytest>=8" "pytest-timeout>=2.2" "onnx>=1.15" "onnxruntime>=1.17"
  say "venv ready in $(( $(date +%s) - start )) s"
fi

if ! "$VENV/bin/python" -c "import mujoco" >/dev/null 2>&1; then  # a venv built before the sim follower tests
  say "adding mujoco to $VENV (tests/lerobot drive the simulated arm as a LeRobot robot)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "mujoco>=3.1" 2> >(grep -v "is ignored: it is neither" >&2)
fi

if ! "$VENV/bin/python" -c "import grpc" >/dev/null 2>&1; then  # a venv built before `vla-async bench lerobot`
  say "adding lerobot[async] (grpcio) to $VENV (LeRobot's own async client/server in vla-async bench lerobot)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "lerobot[async]==0.4.4" 2> >(grep -v "is ignored: it is neither" >&2)
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
