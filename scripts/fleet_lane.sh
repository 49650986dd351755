#!/usr/bin/env bash
# The fleet lane: `vla-async fleet` on a real, private Ray head (127.0.0.1, its own temp dir and free ports;
# stopped at the end without touching any other Ray instance). Ray is the extra vla-async[ray]
# (ray[serve]==2.60.*, keep in sync with pyproject.toml): installed into the project's venv when missing
# (~376 MB, ~45 s; it changes none of the main dependencies, `pip check` must stay clean), so the main lane
# never needs it. The tests run with VLA_ASYNC_FLEET_LANE=run (tests/fleet/conftest.py collects nothing
# without it). VLA_ASYNC_FLEET_LANE=0 skips the lane. Cost on the 2-core dev machine: see tests/fleet.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
WANT=${VLA_ASYNC_FLEET_LANE:-1}
RAY_REQ='ray[serve]==2.60.*'
say() { echo "[fleet-lane] $*"; }

if [ "$WANT" = 0 ]; then
  say "skipped: VLA_ASYNC_FLEET_LANE=0"
  exit 0
fi
if ! "$PY" -c "import ray, ray.serve; assert ray.__version__.startswith('2.60.')" >/dev/null 2>&1; then
  say "installing $RAY_REQ into $VENV (the extra vla-async[ray])"
  start=$(date +%s)
  "$PY" -m pip install -q --disable-pip-version-check "$RAY_REQ" 2> >(grep -v "is ignored: it is neither" >&2)
  say "installed in $(( $(date +%s) - start )) s"
fi
"$PY" -m pip check
say "running tests/fleet with ray $("$PY" -c 'import ray; print(ray.__version__)')"
export VLA_ASYNC_FLEET_LANE=run PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec nice -n 5 "$PY" -m pytest -q -p no:cacheprovider tests/fleet
