#!/usr/bin/env bash
# gRPC proxying: an app's own unary gRPC method called through the runtime's gRPC port with dapr-app-id metadata
# (Dapr's gRPC proxying: admission, access control, the caller's line at the app, the app's channel and breaker)
# against the same call made straight to the app. The runtime is pinned to core 0; the app and the load tool share
# core 1, as apps and their callers do on a node. One HTTP/2 connection from the load tool, 32 calls in flight; rounds
# alternate between the two. The CPU columns are the runtime's CPU per proxied call and the app's per direct call.
# Usage: bench/load/grpc-proxy.sh [rounds] [seconds per round] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-4}
out=""
[ "${3:-}" = "--out" ] && out=${4:?--out FILE}
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
runtime=""; app=""
trap 'kill $runtime $app 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/resources.yaml" <<'YAML'
apiVersion: sharedruntime.io/v1alpha1
kind: Tenant
metadata:
  name: echo
spec:
  apiToken: {value: echo-token}
  appEndpoint: http://127.0.0.1:3734
  appProtocol: grpc
  appChannel: {maxConcurrency: 64, maxQueue: 64}
---
apiVersion: sharedruntime.io/v1alpha1
kind: Tenant
metadata:
  name: caller
spec:
  apiToken: {value: caller-token}
  limits: {requestsPerSecond: 10000000, burst: 10000000, maxConcurrency: 256, maxQueue: 256}
YAML
load=bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll
export DOTNET_gcServer=0 DOTNET_gcConcurrent=0 DOTNET_TieredPGO=1
taskset -c 0 dotnet src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll --resources-path "$work" \
  --dapr-http-port 3731 --dapr-grpc-port 3732 --metrics-port 3733 --log-level error & runtime=$!
taskset -c 1 dotnet "$load" --serve-grpc-app 3734 & app=$!
until curl -sf -o /dev/null localhost:3731/v1.0/healthz; do sleep 0.1; done

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One round measuring PID's CPU: prints "calls/s cpu-us-per-call".
rate() {
  local pid=$1; shift
  local before after
  before=$(cpu "$pid")
  taskset -c 1 dotnet "$load" --grpc-proxy "$@" > "$work/calls.txt"
  after=$(cpu "$pid")
  awk -v b="$before" -v a="$after" -v t="$ticks" '{printf "%s %.2f\n", $1, (a-b)/t*1e6/$2}' "$work/calls.txt"
}
runtime_get() { rate "$runtime" http://127.0.0.1:3732 "$seconds" 32 caller-token echo; }
bare_get() { rate "$app" http://127.0.0.1:3734 "$seconds" 32; }
source "$(dirname "$0")/side-by-side.sh"
side_by_side "unary gRPC call of the app's own method, proxied with dapr-app-id vs straight to the app, 32 calls in flight on one connection" calls/s call "direct to app"
