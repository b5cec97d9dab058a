#!/usr/bin/env bash
# The whole test suite, as a newcomer runs it: installs what is missing, starts the services,
# makes a fresh PostgreSQL test database, runs ruff, the import contracts and pytest (in parallel).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/pcsc.sh install          # pcscd + vpcd + libpcsclite-dev (Debian packages)
bash scripts/browser.sh install       # chromium for the web apps' browser tests
bash scripts/setup.sh test,pcsc
bash scripts/services.sh
bash scripts/pcsc.sh start            # pcscd with the vpcd virtual reader

export PATH="$PWD/.venv/bin:$PATH"

test_db="${ONECARD_TEST_DB:-onecard_test}"
echo "==> fresh test database $test_db"
psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS \"$test_db\" WITH (FORCE)" -c "CREATE DATABASE \"$test_db\""
export ONECARD_TEST_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/$test_db"

echo "==> ruff"
ruff check .
ruff format --check .
echo "==> import contracts"
lint-imports
# In parallel, one worker per core (pytest-xdist); tests/conftest.py gives each worker its own
# PostgreSQL database and keeps what cannot be shared (the vpcd readers) on one worker.
# ONECARD_TEST_WORKERS=0 runs serially; a number sets how many workers.
echo "==> pytest"
pytest -n "${ONECARD_TEST_WORKERS:-auto}" --dist loadgroup "$@"
