#!/usr/bin/env bash
# Installs onecard into .venv and runs the city demo on the embedded default
# (SQLite, eager Celery, in-process software cards). Nothing else needs to run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/onecard demo "$@"
