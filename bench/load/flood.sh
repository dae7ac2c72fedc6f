#!/usr/bin/env bash
# What a flood costs the others, in one command: a quiet tenant's p99 alone and under a 5,000/s flood at 250x the
# neighbour's limit (per-tenant admission with and without push-back, and one shared limit), the runtime's CPU on the
# flood, and Jain's index with every tenant flooding; on the in-memory store, then on a shared Redis.
# The runtime is pinned to core 0; the load tool (and redis-server) to core 1.
# Usage: bench/load/flood.sh [--out FILE] [--rounds 4] [--phase-seconds 3] [--no-redis] [other load options]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=""; redis=1; pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --no-redis) redis=0; shift ;;
    *) pass+=("$1"); shift ;;
  esac
done
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet
dll=$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll
tool=bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${redis_pid:-}" ] && kill $redis_pid 2>/dev/null || true' EXIT
common=(--runtime-dll "$dll" --runtime-cpu 0 --scenario flood --quiet-rps 200 --quiet-limit 1000 --flood-rps 5000 --noisy-limit 20 --rounds 4 --phase-seconds 3)
echo "## In-memory store" > "$tmp/report.md"
taskset -c 1 dotnet "$tool" "${pass[@]}" "${common[@]}" --out "$tmp/memory.md"
cat "$tmp/memory.md" >> "$tmp/report.md"
if [ $redis = 1 ]; then
  command -v redis-server >/dev/null || { echo "redis-server is needed: scripts/install-test-servers.sh" >&2; exit 1; }
  port=6392
  taskset -c 1 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null & redis_pid=$!
  until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.1; done
  printf '\n## Shared Redis store (redis-server on core 1 with the load tool)\n' >> "$tmp/report.md"
  taskset -c 1 dotnet "$tool" "${pass[@]}" "${common[@]}" --redis 127.0.0.1:$port --out "$tmp/redis.md"
  cat "$tmp/redis.md" >> "$tmp/report.md"
fi
printf '\nCommand: `bench/load/flood.sh %s`; %s cores; %s\n' "${pass[*]:-}" "$(nproc)" "$(uptime)" >> "$tmp/report.md"
cat "$tmp/report.md"
[ -z "$out" ] || cp "$tmp/report.md" "$out"
