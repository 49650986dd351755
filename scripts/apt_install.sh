#!/usr/bin/env bash
# apt-get install the given packages; if another apt/dpkg holds the lock, say so and wait for it
# (up to APT_LOCK_TIMEOUT_S, default 300 s), then fail with one clear line instead of apt's own error.
set -uo pipefail
TIMEOUT=${APT_LOCK_TIMEOUT_S:-300}
POLL=${APT_LOCK_POLL_S:-5}
say() { echo "[setup] $*"; }
locked() { grep -qE "Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock directory" <<<"$1"; }

attempt() {  # apt-get update + install; stderr captured, stdout dropped
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } 2>&1 >/dev/null
}

say "apt-get install $*"
start=$SECONDS
announced=0
while :; do
  if err=$(attempt "$@"); then
    exit 0
  fi
  if ! locked "$err"; then
    echo "[setup] error: apt-get install $* failed: $(grep -E '^E:' <<<"$err" | head -1 || echo "$err" | tail -1)" >&2
    exit 1
  fi
  waited=$((SECONDS - start))
  if [ "$waited" -ge "$TIMEOUT" ]; then
    echo "[setup] error: another package manager (apt/dpkg, e.g. unattended-upgrades) has held the apt lock for" \
         "${waited} s; let it finish (or stop it), then re-run; or install by hand: apt-get install $*" >&2
    exit 1
  fi
  if [ "$announced" = 0 ]; then
    say "waiting for the apt lock: another apt/dpkg process holds it (up to ${TIMEOUT} s; set APT_LOCK_TIMEOUT_S)"
    announced=1
  fi
  sleep "$POLL"
done
