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
bash scripts/stripe.sh start
exec .venv/bin/onecard demo "$@"
