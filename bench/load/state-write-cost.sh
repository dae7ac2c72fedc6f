#!/usr/bin/env bash
# State save against state get on one Redis through the runtime, and save with 200,000 keys of other apps in the same
# database against an empty one, side by side in one run. Starts its own redis-server.
# The runtime is pinned to core 0; redis-server and the load generator to core 1.
# Usage: bench/load/state-write-cost.sh [--other-keys N] [load options, e.g. --rounds 4 --phase-seconds 3 --out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v redis-server >/dev/null || { echo "redis-server is needed: scripts/install-test-servers.sh" >&2; exit 1; }
others=200000
if [[ "${1:-}" == "--other-keys" ]]; then others=$2; shift 2; fi
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet
port=6392
taskset -c 1 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null & redis=$!
trap 'kill $redis 2>/dev/null || true' EXIT
until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.1; done
# Other apps' state in database 1, written as Dapr's Redis store writes it (a hash {data, version}) by 50 apps, before
# the runtime starts: the runtime has no usage for them and must not scan them on any write.
awk -v n="$others" 'BEGIN { for (i = 0; i < n; i++) printf "HSET other%d||key%d data order-%d-items-a-b-c-and-some-padding version 1\n", i % 50, i, i }' \
  | taskset -c 1 redis-cli -p $port -n 1 --pipe >/dev/null
echo "database 1 holds $(redis-cli -p $port -n 1 dbsize) keys" >&2
dll=$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll
taskset -c 1 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --runtime-dll "$dll" --runtime-cpu 0 \
  --scenario state-write-cost --redis 127.0.0.1:$port --crowded-note "$others keys of 50 other apps" "$@"
