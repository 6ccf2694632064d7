#!/usr/bin/env bash
# Runs the official MCP conformance suite's client-mode scenarios that apply to a gateway's
# upstream side, with mcp-gateway as the client (see README.md beside this file).
#
#   tests/conformance/run.sh                 # every run below
#   tests/conformance/run.sh tools_call sse  # only runs whose label contains one of the words
#
# Needs: tests/peers/node_modules (cd tests/peers && npm ci) and a built gateway
# (target/debug/mcp-gateway, or MCP_GATEWAY_BIN). Results: tests/conformance/results/<label>/
# (or CONFORMANCE_RESULTS_DIR). Exit status 1 when any run FAILs or WARNs (the suite itself
# counts a WARNING check, a missed SHOULD, as an overall failure); with
# CONFORMANCE_ALLOW_WARNINGS=1 only FAIL counts.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS="$REPO/tests/peers"
SUITE="$PEERS/node_modules/@modelcontextprotocol/conformance/dist/index.js"
export MCP_GATEWAY_BIN="${MCP_GATEWAY_BIN:-$REPO/target/debug/mcp-gateway}"
RESULTS="${CONFORMANCE_RESULTS_DIR:-$HERE/results}"

[ -f "$SUITE" ] || { echo "missing $SUITE: run 'cd tests/peers && npm ci'" >&2; exit 2; }
[ -x "$MCP_GATEWAY_BIN" ] || { echo "missing gateway binary $MCP_GATEWAY_BIN: build it first (cargo build)" >&2; exit 2; }
case "$HERE$REPO" in *" "*) echo "the repository path must not contain spaces (the suite splits --command on spaces)" >&2; exit 2;; esac

# label | scenario | --spec-version | extra env for gateway_client.mjs
# The upstream `protocol` follows the spec version (session for 2025-x, stateless for
# 2026-07-28) unless GATEWAY_UPSTREAM_PROTOCOL says otherwise; the downstream client is of the
# same generation unless GATEWAY_DOWNSTREAM says otherwise.
RUNS=(
  "initialize                          |initialize                         |2025-11-25|"
  "tools_call@2025-11-25               |tools_call                         |2025-11-25|"
  "tools_call@2026-07-28               |tools_call                         |2026-07-28|"
  "tools_call@2025-11-25+auto          |tools_call                         |2025-11-25|GATEWAY_UPSTREAM_PROTOCOL=auto"
  "tools_call@2026-07-28+auto          |tools_call                         |2026-07-28|GATEWAY_UPSTREAM_PROTOCOL=auto GATEWAY_DOWNSTREAM=stateless"
  "tools_call@2026-07-28+2025-client   |tools_call                         |2026-07-28|GATEWAY_DOWNSTREAM=session"
  "request-metadata                    |request-metadata                   |2026-07-28|"
  "http-standard-headers               |http-standard-headers              |2026-07-28|"
  "http-standard-headers+2025-client   |http-standard-headers              |2026-07-28|GATEWAY_DOWNSTREAM=session"
  "http-custom-headers                 |http-custom-headers                |2026-07-28|"
  "http-custom-headers+2025-client     |http-custom-headers                |2026-07-28|GATEWAY_DOWNSTREAM=session"
  "http-invalid-tool-headers           |http-invalid-tool-headers          |2026-07-28|"
  "json-schema-2020-12@2025-11-25      |json-schema-2020-12-preservation   |2025-11-25|"
  "json-schema-2020-12@2026-07-28      |json-schema-2020-12-preservation   |2026-07-28|"
  "json-schema-ref-no-deref            |json-schema-ref-no-deref           |2026-07-28|"
  "sse-retry                           |sse-retry                          |2025-11-25|"
  "sep-2322-client-request-state       |sep-2322-client-request-state      |2026-07-28|"
  "sep-2322+2025-client                |sep-2322-client-request-state      |2026-07-28|GATEWAY_DOWNSTREAM=session"
  "elicitation-sep1034-client-defaults |elicitation-sep1034-client-defaults|2025-11-25|"
)

trim() { local s="$1"; s="${s#"${s%%[![:space:]]*}"}"; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

mkdir -p "$RESULTS"
fails=0; n=0; start=$SECONDS
summary=()
for run in "${RUNS[@]}"; do
  IFS='|' read -r label scenario version envs <<<"$run"
  label="$(trim "$label")"; scenario="$(trim "$scenario")"; version="$(trim "$version")"; envs="$(trim "$envs")"
  if [ $# -gt 0 ]; then
    keep=0; for w in "$@"; do [[ "$label" == *"$w"* ]] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  n=$((n + 1))
  out="$RESULTS/$label"; rm -rf "$out"; mkdir -p "$out"
  t0=$SECONDS
  # The suite runs the command with the mock's URL appended.
  (
    cd "$PEERS" || exit 2
    # shellcheck disable=SC2086
    env $envs node --import "$HERE/lib/node20-compat.mjs" "$SUITE" client \
      --command "node $HERE/gateway_client.mjs" --scenario "$scenario" \
      --spec-version "$version" --timeout 30000 -o "$out"
  ) >"$out/suite.log" 2>&1
  line="$(node "$HERE/summarize.mjs" "$out")"
  verdict="${line%%$'\t'*}"
  if [ "$verdict" = FAIL ] || { [ "$verdict" = WARN ] && [ "${CONFORMANCE_ALLOW_WARNINGS:-0}" != 1 ]; }; then
    fails=$((fails + 1))
  fi
  printf '%-38s %s  (%ss)\n' "$label" "$line" "$((SECONDS - t0))"
  [ "$verdict" = PASS ] || node "$HERE/summarize.mjs" "$out" --details | tail -n +2
  summary+=("$(printf '%-38s %s' "$label" "${line%%$'\t'*}")")
done

echo
echo "== mcp-gateway as the client of the MCP conformance suite: $n runs, $fails failing, $((SECONDS - start))s"
printf '  %s\n' "${summary[@]}"
echo "results: $RESULTS"
[ "$fails" = 0 ]
