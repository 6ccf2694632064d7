#!/usr/bin/env bash
# Starts Redis, three mcp-gateway replicas and HAProxy on loopback ports (Debian:
# apt-get install redis-server haproxy). Clients connect to http://127.0.0.1:4000/mcp.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${MCP_GATEWAY_BIN:-mcp-gateway}"
export MCP_GATEWAY_SESSION_KEY="${MCP_GATEWAY_SESSION_KEY:-$(head -c 32 /dev/urandom | base64)}"
export REDIS_URL="redis://127.0.0.1:6379/"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no & pids+=($!)
for i in a b c; do
  port=$((4000 + $(printf '%d' "'$i") - 96))
  REPLICA="gw-$i" PORT="$port" "$bin" start -c "$here/gateway.yml" & pids+=($!)
done
haproxy -f "$here/haproxy.cfg" & pids+=($!)
wait
