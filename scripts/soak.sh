#!/usr/bin/env bash
# Soak and chaos runs against a release mcp-gateway (issue 20; not part of scripts/test.sh:
# the soak takes about 12 minutes, the chaos run 2). Usage:
#   scripts/soak.sh [soak|chaos|both] [extra options for examples/soak.rs]
# Writes target/soak.json and target/chaos.json; exits non-zero when a run fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode="${1:-both}"
shift || true
scripts/install-peers.sh >/dev/null
cargo build --release --quiet --bin mcp-gateway --example mcp_test_server --example soak
if [[ "$mode" == soak || "$mode" == both ]]; then
  target/release/examples/soak soak --json target/soak.json "$@"
fi
if [[ "$mode" == chaos || "$mode" == both ]]; then
  target/release/examples/soak chaos --json target/chaos.json "$@"
fi
