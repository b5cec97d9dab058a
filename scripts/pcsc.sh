#!/usr/bin/env bash
# PC/SC without hardware: pcscd with the vpcd virtual reader driver (Debian's vsmartcard).
#   scripts/pcsc.sh install   installs pcscd, vsmartcard-vpcd, libpcsclite-dev (+ gcc, python3-dev
#                             to build pyscard) if missing; as root, or through sudo
#   scripts/pcsc.sh start     starts pcscd (if not running) and waits until vpcd listens
#   scripts/pcsc.sh stop      stops pcscd and waits until it is gone
#   scripts/pcsc.sh status    prints whether pcscd runs and which vpcd ports listen
# All of them are idempotent. No systemd needed (apt-get never starts services here).
# vpcd's readers: "Virtual PCD 00 00" on TCP 35963 and "Virtual PCD 00 01" on 35964.
# Only the standard tools of a minimal Debian 12 are used (no procps or iproute2 needed).
set -euo pipefail
VPCD_PORT="${ONECARD_VPCD_PORT:-35963}"
PID_FILE=/run/pcscd/pcscd.pid
WAIT_TENTHS=100   # 10 s for pcscd to come up or go away

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
  local missing=()
  for pkg in pcscd libpcsclite-dev vsmartcard-vpcd gcc python3-dev; do
    have_pkg "$pkg" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "==> pcscd, vpcd and build dependencies already installed"
    return 0
  fi
  echo "==> installing ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  [ -f /etc/reader.conf.d/vpcd ] || { echo "error: vsmartcard-vpcd left no /etc/reader.conf.d/vpcd" >&2; exit 1; }
}

# The pid of the running pcscd, or nothing. Reads /proc, so it works without procps.
pcscd_pid() {
  local pid comm
  if [ -r "$PID_FILE" ]; then
    pid=$(tr -dc '0-9' <"$PID_FILE")
    if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = pcscd ]; then
      echo "$pid"; return 0
    fi
  fi
  for comm in /proc/[0-9]*/comm; do
    if [ "$(cat "$comm" 2>/dev/null)" = pcscd ]; then
      pid=${comm#/proc/}; echo "${pid%/comm}"; return 0
    fi
  done
  return 0
}

# Is something listening on TCP port $1? Reads /proc/net/tcp{,6} (state 0A = LISTEN), no iproute2.
# Never probe the port with a connect: vpcd would take the probe for a card.
listening() {
  local hex
  hex=$(printf '%04X' "$1")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" {f=1} END {exit !f}'
}

start() {
  if ! command -v pcscd >/dev/null 2>&1; then
    echo "error: pcscd is not installed: run bash scripts/pcsc.sh install" >&2
    exit 1
  fi
  if [ -z "$(pcscd_pid)" ]; then
    # A pid file left by a pcscd that died makes the next one refuse to start.
    rm -f "$PID_FILE" /run/pcscd/pcscd.comm
    echo "==> starting pcscd"
    as_root mkdir -p /run/pcscd
    as_root pcscd
  fi
  for _ in $(seq 1 "$WAIT_TENTHS"); do
    listening "$VPCD_PORT" && return 0
    sleep 0.1
  done
  echo "error: pcscd is running but vpcd does not listen on port ${VPCD_PORT}" >&2
  echo "       (is vsmartcard-vpcd installed? /etc/reader.conf.d/vpcd)" >&2
  exit 1
}

stop() {
  local pid
  pid=$(pcscd_pid)
  [ -n "$pid" ] || return 0
  echo "==> stopping pcscd ($pid)"
  as_root kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$WAIT_TENTHS"); do
    [ -d "/proc/$pid" ] || return 0
    sleep 0.1
  done
  echo "==> pcscd did not stop in time; killing it"
  as_root kill -9 "$pid" 2>/dev/null || true
  while [ -d "/proc/$pid" ]; do sleep 0.05; done
}

status() {
  local pid
  pid=$(pcscd_pid)
  if [ -n "$pid" ]; then echo "pcscd running (pid $pid)"; else echo "pcscd not running"; fi
  for port in 35963 35964; do
    if listening "$port"; then echo "vpcd listening on $port"; else echo "vpcd not listening on $port"; fi
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
