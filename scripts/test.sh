#!/usr/bin/env bash
# Runs mcp-gateway's whole test suite on a fresh machine: installs the real MCP peers the
# tests talk to (npm and PyPI packages, Debian's redis-server), then runs every test of
# the workspace (unit, integration, doc tests; examples are built too).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-peers.sh
cargo build --workspace --bins --examples --quiet
cargo test --workspace "$@"
# The gateway's upstream side against the official MCP conformance suite's mock servers
# (client mode; tests/conformance/README.md), with the binary built above.
tests/conformance/run.sh
# The container image, Compose files and Kubernetes manifests (docs/deploy.md); the image
# part is skipped with a message where podman or mmdebstrap is missing.
MCP_GATEWAY_BIN=target/debug/mcp-gateway scripts/image-test.sh
# The dashboard (/ui): unit tests of its logic (form generation from JSON Schema, routes,
# chart data, filters) with Node's test runner, and its end-to-end test in headless Chromium
# against the binary built above (skipped with a message where chromium is missing).
node --test layers/ui/tests/
MCP_GATEWAY_BIN=target/debug/mcp-gateway scripts/ui-test.sh
# The fuzz targets keep building and run for a few seconds each from their seed corpus
# (skipped with a message when the nightly toolchain is missing; MCP_GATEWAY_SKIP_FUZZ=1
# skips it too).
if [[ -z "${MCP_GATEWAY_SKIP_FUZZ:-}" ]]; then
  scripts/fuzz.sh --smoke
fi
