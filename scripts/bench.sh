#!/usr/bin/env bash
# Every benchmark in one command: the ledger, the card tap, the terminal tap, clearing and the
# nightly reconciliation, each printing its figures and one JSON line; the JSON lines are
# collected in var/bench/.
#   bash scripts/bench.sh                 # full size (clearing: 1,000,000 taps)
#   bash scripts/bench.sh --quick         # small sizes, a few minutes
# Needs PostgreSQL (127.0.0.1:5432) and pcscd + vpcd (installed and started here).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/pcsc.sh install
bash scripts/setup.sh test,pcsc
bash scripts/services.sh
bash scripts/pcsc.sh start
py=.venv/bin/python
out=var/bench
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)

fresh_db() {
  psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" -c "CREATE DATABASE \"$1\""
}

run() {  # run NAME CMD...: print everything, keep the last JSON line
  local name=$1; shift
  echo "==> $name: $*"
  "$@" | tee "$out/$name-$stamp.log"
  tail -n 1 "$out/$name-$stamp.log" > "$out/$name-$stamp.json"
}

fresh_db onecard_bench_ledger
if [ "$quick" = 1 ]; then
  ONECARD_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_bench_ledger \
    run ledger "$py" bench/ledger.py --scale 0.2
  run tap "$py" bench/tap.py --taps 300
  run terminal "$py" bench/terminal.py --taps 100
  run clearing "$py" bench/clearing.py --taps 50000 --workers 1,2 --ingest-processes 2
  run reconcile "$py" bench/reconcile.py --taps 50000 --cards 5000 --history-days 1
else
  ONECARD_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/onecard_bench_ledger \
    run ledger "$py" bench/ledger.py
  run tap "$py" bench/tap.py
  run terminal "$py" bench/terminal.py
  run clearing "$py" bench/clearing.py --taps 1000000 --workers 1,2 --ingest-processes 2
  run reconcile "$py" bench/reconcile.py --history-days 1
fi

echo "==> results (one JSON line each, also in $out/*-$stamp.json)"
for name in ledger tap terminal clearing reconcile; do
  printf '%-9s %s\n' "$name" "$(cat "$out/$name-$stamp.json")"
done
