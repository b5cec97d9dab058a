#!/usr/bin/env bash
# Creates .venv (if missing) and installs onecard into it: the server (the whole platform) plus
# the given extras. A terminal alone is `pip install "onecard[terminal]"` (README).
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test,pcsc
set -euo pipefail
cd "$(dirname "$0")/.."
extras="server${1:+,$1}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.onecard-installed-${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing onecard[$extras] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  touch "$stamp"
fi
