#!/usr/bin/env bash
# Two tenants on one shared Redis state store; the noisy one floods it. Starts its own redis-server.
# The runtime is pinned to core 0; redis-server and the load generator to core 1.
# Usage: bench/load/shared-redis.sh [load options, e.g. --rounds 4 --flood-rps 5000 --out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v redis-server >/dev/null || { echo "redis-server is needed: scripts/install-test-servers.sh" >&2; exit 1; }
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet
port=6391
taskset -c 1 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null & redis=$!
trap 'kill $redis 2>/dev/null || true' EXIT
until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.1; done
dll=$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll
taskset -c 1 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --runtime-dll "$dll" --runtime-cpu 0 \
  --scenario shared-redis --redis 127.0.0.1:$port "$@"
