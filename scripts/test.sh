#!/usr/bin/env bash
# Runs mcp-gateway's whole test suite on a fresh machine: installs the real MCP peers the
# tests talk to (npm and PyPI packages, Debian's redis-server), then runs every test of
# the workspace (unit, integration, doc tests; examples are built too).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-peers.sh
cargo build --workspace --examples --quiet
cargo test --workspace "$@"
