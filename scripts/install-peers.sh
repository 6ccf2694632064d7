#!/usr/bin/env bash
# Installs the real MCP peers that mcp-gateway's tests talk to (see DESIGN.md section 7):
#   - npm packages from tests/peers/package-lock.json   -> tests/peers/node_modules  (npm ci)
#   - PyPI packages from tests/peers/requirements.txt   -> tests/peers/.venv         (pip)
#   - redis-server from Debian, when missing                                          (apt-get)
#   - podman, mmdebstrap and haproxy from Debian, when missing (scripts/image-test.sh)  (apt-get)
#   - chromium and chromium-driver from Debian, Selenium into tests/peers/.venv
#     (scripts/ui-test.sh, the dashboard's browser test), when missing            (apt-get, pip)
# Idempotent and quick when everything is already there: each step is skipped when a stamp
# holding the checksum of its input file (and the tool version) still matches.
# Works from any cwd. Set PEERS_FORCE=1 to reinstall everything.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$ROOT/tests/peers"
VENV="$PEERS/.venv"
PYTHON="${PYTHON:-python3}"
FORCE="${PEERS_FORCE:-0}"

say() { printf '[install-peers] %s\n' "$*"; }

# A stamp is the sha256 of the input file plus the tool version, so a changed lock file or a
# different node/python triggers a reinstall.
stamp_of() { # $1 = input file, $2 = extra text
    { sha256sum "$1" | cut -d' ' -f1; printf '%s\n' "$2"; } | sha256sum | cut -d' ' -f1
}

# --- npm peers -------------------------------------------------------------------------------
command -v node >/dev/null || { say "node not found"; exit 1; }
command -v npm >/dev/null || { say "npm not found"; exit 1; }
npm_want="$(stamp_of "$PEERS/package-lock.json" "node $(node --version)")"
npm_stamp="$PEERS/node_modules/.install-peers.stamp"
if [[ "$FORCE" != 1 && -f "$npm_stamp" && "$(cat "$npm_stamp")" == "$npm_want" ]]; then
    say "npm peers up to date"
else
    say "npm ci in tests/peers ..."
    (cd "$PEERS" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$npm_want" >"$npm_stamp"
    say "npm peers installed"
fi

# --- Python peers ----------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null || { say "$PYTHON not found"; exit 1; }
py_want="$(stamp_of "$PEERS/requirements.txt" "$("$PYTHON" --version 2>&1)")"
py_stamp="$VENV/.install-peers.stamp"
if [[ "$FORCE" != 1 && -x "$VENV/bin/python" && -f "$py_stamp" && "$(cat "$py_stamp")" == "$py_want" ]]; then
    say "python venv up to date"
else
    say "creating tests/peers/.venv and installing requirements.txt ..."
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PEERS/requirements.txt"
    printf '%s\n' "$py_want" >"$py_stamp"
    say "python venv ready ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'))"
fi

# --- redis-server ----------------------------------------------------------------------------
if command -v redis-server >/dev/null; then
    say "redis-server present"
else
    say "installing redis-server (apt-get) ..."
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # Debian's package may start a system service; the tests start their own instances.
    say "redis-server installed ($(redis-server --version | cut -d' ' -f3))"
fi

# --- image tools ------------------------------------------------------------------------------
# scripts/image-test.sh builds the container image with podman from a Debian base made by
# mmdebstrap, and checks the Compose cluster's HAProxy config.
if command -v podman >/dev/null && command -v mmdebstrap >/dev/null && command -v haproxy >/dev/null; then
    say "podman, mmdebstrap and haproxy present"
else
    say "installing podman, mmdebstrap and haproxy (apt-get) ..."
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman mmdebstrap haproxy >/dev/null
    say "image tools installed"
fi

# --- browser test tools ------------------------------------------------------------------------
# scripts/ui-test.sh drives Debian's chromium through chromium-driver with Selenium.
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    say "chromium and chromedriver present"
else
    say "installing chromium and chromium-driver (apt-get) ..."
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    say "chromium installed ($(chromium --version 2>/dev/null | head -1))"
fi
SELENIUM_VERSION="4.51.0"
if [[ "$("$VENV/bin/python" -c 'import selenium; print(selenium.__version__)' 2>/dev/null)" == "$SELENIUM_VERSION" ]]; then
    say "selenium $SELENIUM_VERSION present"
else
    say "installing selenium $SELENIUM_VERSION into tests/peers/.venv ..."
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION"
fi

say "done"
