#!/usr/bin/env bash
# Installs onecard into .venv and runs the city demo on the embedded default
# (SQLite, eager Celery, in-process software cards) with localstripe for the phone top-ups.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Stripe's side starts as empty as the demo's own database: a localstripe left by an earlier
# demo still holds its top-ups, which the nightly reconciliation would rightly report as
# charges the books never posted.
bash scripts/stripe.sh stop >/dev/null
# Another checkout's localstripe on the port (a second demo beside this one) would mix its
# top-ups into ours: unless a port was asked for, this demo then takes a free one of its own.
if [ -z "${ONECARD_LOCALSTRIPE_PORT:-}" ] && bash scripts/stripe.sh status >/dev/null 2>&1; then
  ONECARD_LOCALSTRIPE_PORT=$(.venv/bin/python -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export ONECARD_LOCALSTRIPE_PORT
  echo "==> another localstripe answers on the default port: this demo uses port $ONECARD_LOCALSTRIPE_PORT"
  # a port no later demo would look on: its localstripe ends with this demo
  trap 'bash scripts/stripe.sh stop >/dev/null' EXIT
fi
bash scripts/stripe.sh start
.venv/bin/onecard demo "$@"
