#!/usr/bin/env bash
# gRPC GetState through Dapr.Client: the runtime (token lookup, admission, metrics, the state building block, the
# in-memory store) against a bare Grpc.AspNetCore service answering the same bytes and etag with the same server
# settings. Both servers pinned to core 0, the Dapr.Client load tool pinned to core 1 (one DaprClient, one HTTP/2
# connection, 32 calls in flight); rounds alternate between the two. Besides calls/s, each round gives the server
# process's own CPU time per call (user + system, from /proc), which other work on the machine disturbs much less.
# Usage: bench/load/grpc.sh [rounds] [seconds per round] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-4}
out=""
[ "${3:-}" = "--out" ] && out=${4:?--out FILE}
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
runtime=""; bare=""
trap 'kill $runtime $bare 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/resources.yaml" <<'YAML'
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: store
spec:
  type: state.in-memory
---
apiVersion: sharedruntime.io/v1alpha1
kind: Tenant
metadata:
  name: quiet
spec:
  apiToken: {value: quiet-token}
  limits: {requestsPerSecond: 10000000, burst: 10000000, maxConcurrency: 256, maxQueue: 256}
YAML
load=bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll
export DOTNET_gcServer=0 DOTNET_gcConcurrent=0 DOTNET_TieredPGO=1
taskset -c 0 dotnet src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll --resources-path "$work" \
  --dapr-http-port 3721 --dapr-grpc-port 3722 --metrics-port 3723 --log-level error & runtime=$!
taskset -c 0 dotnet "$load" --serve-bare-grpc 3724 & bare=$!
until curl -sf -o /dev/null localhost:3721/v1.0/healthz; do sleep 0.1; done
curl -sf -X POST localhost:3721/v1.0/state/store -H 'dapr-api-token: quiet-token' -H 'content-type: application/json' \
  -d '[{"key":"k","value":{"order":42,"items":["a","b","c"]}}]'

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One round against PID's server at ADDRESS: prints "calls/s cpu-us-per-call".
rate() {
  local pid=$1; shift
  local before after
  before=$(cpu "$pid")
  taskset -c 1 dotnet "$load" --grpc-get "$@" > "$work/calls.txt"
  after=$(cpu "$pid")
  awk -v b="$before" -v a="$after" -v t="$ticks" '{printf "%s %.2f\n", $1, (a-b)/t*1e6/$2}' "$work/calls.txt"
}
runtime_get() { rate "$runtime" http://127.0.0.1:3722 "$seconds" 32 quiet-token; }
bare_get() { rate "$bare" http://127.0.0.1:3724 "$seconds" 32; }
source "$(dirname "$0")/side-by-side.sh"
side_by_side "Dapr.Client GetByteStateAsync, 32 calls in flight on one client" calls/s call "bare gRPC"
