#!/usr/bin/env bash
# Headless browser for the app's end-to-end test (tests/test_app_browser.py): Debian's chromium
# plus Playwright for Python, which drives it (no Playwright browser download: the test passes
# executable_path=/usr/bin/chromium). Idempotent: skips what is already there.
#   usage: scripts/install_browser.sh [PYTHON]   (default: .venv/bin/python, else python3)
set -euo pipefail

PY="${1:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

if [ -x /usr/bin/chromium ]; then
    echo "install_browser: /usr/bin/chromium present, skipping apt-get"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

if "$PY" -c "import playwright.sync_api" 2>/dev/null; then
    echo "install_browser: playwright present in $PY"
else
    "$PY" -m pip install --quiet --disable-pip-version-check playwright
fi
