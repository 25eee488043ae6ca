#!/usr/bin/env bash
# Installs what the widget's end-to-end test needs: Debian's chromium (apt) and the Playwright
# Python client (pinned; it drives /usr/bin/chromium, so no Playwright browser download).
# Usage: services/support_bot/scripts/install_browser.sh [VENV]   (default .venv)
set -euo pipefail
VENV="${1:-.venv}"
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
"$VENV/bin/pip" install -q "playwright==1.65.2"
chromium --version
