#!/usr/bin/env bash
# The biller service (water, power and heating companies' bill service, HTTP/JSON), a process
# of its own with its own storage, for a quick start, the demo and manual tests:
#   scripts/biller.sh start    starts it (if not running) and waits until /health answers
#   scripts/biller.sh stop     stops it and waits until it is gone
#   scripts/biller.sh status   says whether it runs, and where
# ONECARD_BILLER_PORT (8741) and ONECARD_BILLER_DATA (var/biller) move it; the back office
# finds it through ONECARD_BILLER_URL (default http://127.0.0.1:8741). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${ONECARD_BILLER_PORT:-8741}"
DATA="${ONECARD_BILLER_DATA:-var/biller}"
PID_FILE="$DATA/biller.pid"
WAIT_TENTHS=100   # 10 s to come up or go away
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

running_pid() {
  local pid
  [ -r "$PID_FILE" ] || return 0
  pid=$(tr -dc '0-9' <"$PID_FILE")
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "clearing.billing.simulator"; then
    echo "$pid"
  fi
}

healthy() {
  "$PY" - "$PORT" <<'PYEOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1) as r:
        sys.exit(0 if r.status == 200 else 1)
except OSError:
    sys.exit(1)
PYEOF
}

start() {
  local pid i
  pid=$(running_pid)
  if [ -n "$pid" ]; then echo "==> biller service already running (pid $pid, port $PORT)"; return 0; fi
  if healthy; then
    echo "error: port $PORT already answers, but not a biller service started from $DATA: use it (ONECARD_BILLER_URL), or start one elsewhere with ONECARD_BILLER_PORT" >&2
    exit 1
  fi
  mkdir -p "$DATA"
  nohup "$PY" -m clearing.billing.simulator --port "$PORT" --data "$DATA" >"$DATA/biller.log" 2>&1 &
  echo $! >"$PID_FILE"
  for ((i = 0; i < WAIT_TENTHS; i++)); do
    if [ -z "$(running_pid)" ]; then echo "error: the biller service exited; see $DATA/biller.log" >&2; exit 1; fi
    if healthy; then echo "==> biller service on http://127.0.0.1:$PORT (data in $DATA)"; return 0; fi
    sleep 0.1
  done
  echo "error: the biller service did not answer on port $PORT within 10 s; see $DATA/biller.log" >&2
  exit 1
}

stop() {
  local pid i
  pid=$(running_pid)
  if [ -z "$pid" ]; then echo "==> biller service not running"; rm -f "$PID_FILE"; return 0; fi
  kill "$pid"
  for ((i = 0; i < WAIT_TENTHS; i++)); do
    [ -d "/proc/$pid" ] || { rm -f "$PID_FILE"; echo "==> biller service stopped"; return 0; }
    sleep 0.1
  done
  echo "error: the biller service (pid $pid) did not stop within 10 s" >&2
  exit 1
}

status() {
  local pid
  pid=$(running_pid)
  if [ -n "$pid" ]; then echo "biller service running (pid $pid) on http://127.0.0.1:$PORT"; else echo "biller service not running"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: scripts/biller.sh start|stop|status" >&2; exit 2 ;;
esac
