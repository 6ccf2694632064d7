#!/usr/bin/env bash
# Reload time with 10 stdio servers, and calls in flight across reloads (BENCHMARKS.md,
# "Configuration reload"). Starts the gateway on a free loopback port with 10 test servers,
# then reloads it through POST /api/v1/admin/reload N times in each of two ways:
#   keep:    one server added or removed, nine kept (the usual edit)
#   restart: every server's args changed, so all ten start anew and the old ones drain
# while four clients call tools without pause; prints the reload durations the gateway
# reports and the calls made and failed.
# Usage: scripts/reload-bench.sh [N]   (needs curl and jq; builds nothing:
# MCP_GATEWAY_BIN and MCP_TEST_SERVER default to the debug builds of the test command)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-20}
pick() { for p in "$@"; do [[ -x $p ]] && { echo "$p"; return; }; done; echo "missing: $*" >&2; exit 1; }
BIN=${MCP_GATEWAY_BIN:-$(pick target/debug/mcp-gateway)}
SRV=${MCP_TEST_SERVER:-$(pick target/debug/examples/mcp_test_server)}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
conf() { # $1: number of servers, $2: an extra arg that changes every server
  printf 'port: %s\nhost: 127.0.0.1\nshutdownTimeout: 5000\nmonitor: {requestLog: false}\nservers:\n' "$port"
  for i in $(seq 1 "$1"); do
    printf '  - id: s%s\n    command: %s\n    args: ["--name", "bench-%s%s"]\n' "$i" "$SRV" "$i" "$2"
  done
}
conf 10 "" >"$dir/gw.yml"
"$BIN" start -c "$dir/gw.yml" >"$dir/log" 2>&1 &
gw=$!
trap 'kill $gw $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
base=http://127.0.0.1:$port
for _ in $(seq 100); do
  [[ $(curl -sf "$base/api/v1/health" | jq -r '.servers.healthy' 2>/dev/null) == 10 ]] && break
  sleep 0.1
done
caller() { # calls s1__echo until told to stop; one line per call: ok or fail
  while [[ ! -e $dir/stop ]]; do
    if curl -sf -o /dev/null "$base/api/v1/tools/call" -H 'content-type: application/json' \
        -d '{"tool":"s1__echo","arguments":{"text":"x"}}'; then echo ok; else echo fail; fi
  done >"$dir/calls.$1"
}
for c in 1 2 3 4; do caller $c & done
run() { # $1: label; then the two configs to alternate
  local label=$1 a=$2 b=$3 times=()
  for i in $(seq "$N"); do
    if (( i % 2 )); then printf '%s' "$b" >"$dir/gw.yml"; else printf '%s' "$a" >"$dir/gw.yml"; fi
    times+=("$(curl -sf -X POST "$base/api/v1/admin/reload" | jq '.durationMs')")
    sleep 0.2
  done
  printf '%s\n' "${times[@]}" | sort -g | awk -v l="$label" '{v[NR]=$1} END {
    printf "%-8s %d reloads: median %.1f ms, p90 %.1f ms, max %.1f ms\n", l, NR, v[int((NR+1)/2)], v[int(NR*0.9+0.5)], v[NR]}'
}
run keep "$(conf 10 "")" "$(conf 9 "")"
run restart "$(conf 10 "")" "$(conf 10 "-b")"
touch "$dir/stop"; sleep 0.5
ok=$(cat "$dir"/calls.* | grep -c ok || true)
fail=$(cat "$dir"/calls.* | grep -c fail || true)
echo "calls to a kept server during the reloads: $ok ok, $fail failed"
