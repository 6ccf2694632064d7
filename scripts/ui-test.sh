#!/usr/bin/env bash
# End-to-end test of the dashboard (/ui) in headless Chromium: tests/ui/dashboard_test.py
# drives Debian's chromium through chromium-driver with Selenium (from tests/peers/.venv)
# against gateways started from MCP_GATEWAY_BIN (default target/debug/mcp-gateway) with the
# dashboard files embedded in that binary. Screenshots of every page go to
# target/ui-screenshots/.
#
# Skipped (exit 0, with a message) where chromium or chromedriver is missing;
# scripts/install-peers.sh installs both, and Selenium.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '[ui-test] %s\n' "$*"; }

CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
DRIVER="$(command -v chromedriver || true)"
if [[ -z "$CHROMIUM" || -z "$DRIVER" ]]; then
    say "SKIPPED: the dashboard's browser test needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver; scripts/install-peers.sh does it)"
    exit 0
fi
PY="$ROOT/tests/peers/.venv/bin/python"
if [[ ! -x "$PY" ]] || ! "$PY" -c 'import selenium' 2>/dev/null; then
    say "FAILED: Selenium is missing from tests/peers/.venv: run scripts/install-peers.sh" >&2
    exit 1
fi

export MCP_GATEWAY_BIN="${MCP_GATEWAY_BIN:-target/debug/mcp-gateway}"
# The embedded files are what is tested, never a directory on disk.
unset MCP_GATEWAY_UI_DIR
# Selenium is given the driver: it has nothing to download or report.
export SE_AVOID_STATS=true SE_OFFLINE=true

# The Python test stops its gateways on exit, SIGINT and SIGTERM; the timeout bounds a hung
# browser.
exec timeout --kill-after=10 240 "$PY" "$ROOT/tests/ui/dashboard_test.py" --chromium "$CHROMIUM" --driver "$DRIVER"
