#!/usr/bin/env bash
# PC/SC without hardware: pcscd with the vpcd virtual reader driver (Debian's vsmartcard).
#   scripts/pcsc.sh install   installs pcscd, vsmartcard-vpcd and libpcsclite-dev if missing
#   scripts/pcsc.sh start     starts pcscd (if not running) and waits until vpcd listens
#   scripts/pcsc.sh stop      stops pcscd
# vpcd's readers: "Virtual PCD 00 00" on TCP 35963 and "Virtual PCD 00 01" on 35964.
set -euo pipefail
VPCD_PORT="${ONECARD_VPCD_PORT:-35963}"

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install() {
  local missing=()
  for pkg in pcscd libpcsclite-dev vsmartcard-vpcd; do
    have_pkg "$pkg" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]} (apt-get)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

listening() { ss -ltn 2>/dev/null | grep -q ":${VPCD_PORT} "; }

start() {
  if ! pgrep -x pcscd >/dev/null 2>&1; then
    echo "==> starting pcscd"
    mkdir -p /run/pcscd
    pcscd
  fi
  # Wait until vpcd listens. Never probe the port with a TCP connect: vpcd takes it for a card.
  for _ in $(seq 1 100); do
    listening && return 0
    sleep 0.1
  done
  echo "error: pcscd is running but vpcd does not listen on port ${VPCD_PORT}" >&2
  exit 1
}

stop() {
  local pid
  pid=$(pgrep -x pcscd || true)
  [ -n "$pid" ] || return 0
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
