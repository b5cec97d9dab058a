#!/usr/bin/env bash
# Installs onecard into .venv and runs the city demo on the embedded default
# (SQLite, eager Celery, in-process software cards) with localstripe for the phone top-ups.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/stripe.sh start
exec .venv/bin/onecard demo "$@"
