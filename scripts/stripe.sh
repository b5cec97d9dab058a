#!/usr/bin/env bash
# Stripe offline: localstripe (PyPI), the fake Stripe API the tests and the demo run against.
#   scripts/stripe.sh start    installs localstripe into .venv if missing, starts it empty (if
#                              nothing answers on the port yet) and waits until it answers
#   scripts/stripe.sh stop     stops the localstripe this script started (its pid file)
#   scripts/stripe.sh status   says whether it answers
# The port is ONECARD_LOCALSTRIPE_PORT (default 8420); the service points the official SDK at
# it with ONECARD_STRIPE_API_BASE=http://127.0.0.1:<port>. Production sets only the keys.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${ONECARD_LOCALSTRIPE_PORT:-8420}"
RUN_DIR="${ONECARD_LOCALSTRIPE_DIR:-var/localstripe-$PORT}"
PID_FILE="$RUN_DIR/localstripe.pid"
WAIT_TENTHS="${ONECARD_LOCALSTRIPE_WAIT_TENTHS:-300}"   # 30 s to answer (a loaded machine is slow to import aiohttp)

answers() {
  # Any HTTP answer will do (an unauthenticated call is refused with 401): it is up.
  .venv/bin/python - "$PORT" <<'PY' >/dev/null 2>&1
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/balance", timeout=1)
except urllib.error.HTTPError:
    sys.exit(0)
except OSError:
    sys.exit(1)
PY
}

start() {
  if answers; then
    echo "==> localstripe answers on 127.0.0.1:$PORT"
    return 0
  fi
  if [ ! -x .venv/bin/localstripe ]; then
    echo "==> installing localstripe into .venv"
    .venv/bin/python -m pip install -q "localstripe>=1.15"
  fi
  mkdir -p "$RUN_DIR"
  echo "==> starting localstripe on 127.0.0.1:$PORT (log: $RUN_DIR/localstripe.log)"
  # --from-scratch: localstripe would otherwise load /tmp/localstripe.pickle, the state that any
  # localstripe on this machine (another port, another checkout, a test run) last wrote there;
  # read while one of them writes it, it is truncated and localstripe dies at start.
  nohup .venv/bin/localstripe --port "$PORT" --from-scratch >"$RUN_DIR/localstripe.log" 2>&1 &
  echo $! >"$PID_FILE"
  for _ in $(seq 1 "$WAIT_TENTHS"); do
    answers && return 0
    sleep 0.1
  done
  echo "error: localstripe did not answer on port $PORT within $((WAIT_TENTHS / 10)) s; its log ($RUN_DIR/localstripe.log) ends:" >&2
  tail -n 15 "$RUN_DIR/localstripe.log" >&2 || true
  exit 1
}

stop() {
  if [ -r "$PID_FILE" ]; then
    pid=$(tr -dc '0-9' <"$PID_FILE")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    echo "==> localstripe stopped"
  else
    echo "==> no localstripe started by this script on port $PORT"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "localstripe answers on 127.0.0.1:$PORT"; else echo "localstripe is not running on port $PORT"; exit 1; fi ;;
  *) echo "usage: scripts/stripe.sh start|stop|status" >&2; exit 2 ;;
esac
