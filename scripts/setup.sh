#!/usr/bin/env bash
# Set up a machine for the README's commands: headless GL libraries (apt), then a virtualenv (.venv).
#
#   scripts/setup.sh demo   what `make demo` needs: vla-async[demo] (sim: MuJoCo, plots, video; onnxruntime
#                           for the learned policy; no torch)
#   scripts/setup.sh test   what `make test` needs: vla-async[all] (sim + jpeg + server: torch, ONNX + dev)
#
# torch (test profile only), first match wins:
#   1. VLA_ASYNC_TORCH="<pip requirement>", e.g. "torch==2.13.0" or "torch --index-url <url>";
#   2. a torch wheel already on this machine (the find-links of its pip config), pinned to its version; CI
#      machines keep their CPU build there, so CI never downloads CUDA;
#   3. an NVIDIA GPU (nvidia-smi works): plain `torch` from PyPI, the CUDA build;
#   4. otherwise the CPU build from https://download.pytorch.org/whl/cpu.
# VLA_ASYNC_SETUP_DRY_RUN=1 prints the pip commands instead of running them. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${1:-test}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DRY=${VLA_ASYNC_SETUP_DRY_RUN:-0}
say() { echo "[setup] $*"; }
case "$PROFILE" in
  demo) EXTRAS="demo" ;;
  test) EXTRAS="all" ;;
  torch-plan) ;;  # print the torch pip arguments this machine would get, one per line, and stop
  *) echo "[setup] error: unknown profile '$PROFILE'; use: demo | test" >&2; exit 2 ;;
esac

# Headless OpenGL for MuJoCo cameras: EGL (Mesa llvmpipe) first, OSMesa as the fallback.
need_apt=()
for pkg in libegl1 libgl1-mesa-dri libosmesa6; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ] && [ "$PROFILE" != torch-plan ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if [ "$DRY" = 1 ]; then say "would run: scripts/apt_install.sh ${need_apt[*]}"; else bash scripts/apt_install.sh "${need_apt[@]}"; fi
  else
    say "warning: missing ${need_apt[*]} (need root + apt); camera rendering may fail" >&2
  fi
fi

run() { if [ "$DRY" = 1 ]; then echo "[setup] would run: $*"; else "$@"; fi; }
quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2); }  # some machines' pip configs are noisy

if [ ! -x "$VENV/bin/python" ] && [ "$PROFILE" != torch-plan ]; then
  say "creating $VENV"
  run "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

# The version of a torch wheel pip finds without an index (this machine's find-links), or nothing.
local_torch_version() {
  "$VENV/bin/python" -m pip install -q --dry-run --ignore-installed --no-deps --no-index --report - "torch>=2.2" \
      2>/dev/null | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["install"][0]["metadata"]["version"])' \
      2>/dev/null
}

# The torch requirement for this machine (see the header); prints pip arguments, one per line.
torch_args() {
  if [ -n "${VLA_ASYNC_TORCH:-}" ]; then
    say "torch: VLA_ASYNC_TORCH=$VLA_ASYNC_TORCH" >&2
    # shellcheck disable=SC2086  # deliberately split: it may carry pip options
    printf '%s\n' $VLA_ASYNC_TORCH
  elif local=$(local_torch_version) && [ -n "$local" ]; then
    # pinned to that version so pip takes the local wheel, while its dependencies come from the index
    say "torch: the build already on this machine (torch==$local)" >&2
    printf '%s\n' "torch==$local"
  elif command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
    say "torch: NVIDIA GPU found, the CUDA build from PyPI" >&2
    printf '%s\n' "torch>=2.2"
  else
    say "torch: no GPU, the CPU build" >&2
    printf '%s\n' "torch>=2.2" --index-url https://download.pytorch.org/whl/cpu
  fi
}

if [ "$PROFILE" = torch-plan ]; then
  torch_args
  exit 0
fi
if [ "$PROFILE" = test ] && ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  mapfile -t TORCH < <(torch_args)
  say "installing torch (policy-server backends and their tests)"
  run quiet "${PIP[@]}" "${TORCH[@]}"
fi
say "installing vla-async[$EXTRAS] (editable)"
run quiet "${PIP[@]}" -e ".[$EXTRAS]"
say "done: $VENV/bin/vla-async"
