#!/usr/bin/env bash
# The browser the web apps' end-to-end tests drive: Debian's chromium (Playwright for Python
# launches it by path, /usr/bin/chromium; `playwright install` is never used: it downloads
# browser builds from outside the package registries).
#   scripts/browser.sh install   installs chromium and its fonts if missing; as root, or via sudo
#   scripts/browser.sh path      prints the executable the tests launch
# Idempotent.
set -euo pipefail
CHROMIUM="${ONECARD_CHROMIUM:-/usr/bin/chromium}"

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
  local missing=()
  # fonts-noto-cjk: the Chinese pages' screenshots show characters, not boxes
  for pkg in chromium fonts-noto-cjk; do
    have_pkg "$pkg" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "==> chromium already installed"
    return 0
  fi
  echo "==> installing ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  [ -x "$CHROMIUM" ] || { echo "error: no $CHROMIUM after installing chromium" >&2; exit 1; }
}

case "${1:-}" in
  install) install ;;
  path) echo "$CHROMIUM" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
