#!/usr/bin/env bash
# State GET through the runtime's full admission path against a bare Kestrel endpoint returning the same bytes.
# Both servers pinned to core 0, wrk (Debian's package) pinned to core 1; rounds alternate between the two.
# Usage: bench/load/kestrel.sh [rounds] [seconds per round]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-4}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
runtime=""; bare=""
trap 'kill $runtime $bare 2>/dev/null || true; rm -rf "$work"' EXIT
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
taskset -c 0 dotnet src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll --resources-path "$work" \
  --dapr-http-port 3701 --dapr-grpc-port 3702 --metrics-port 3703 --log-level error & runtime=$!
taskset -c 0 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --serve-bare 3704 & bare=$!
until curl -sf -o /dev/null localhost:3701/v1.0/healthz && curl -sf -o /dev/null localhost:3704/v1.0/healthz; do sleep 0.1; done
curl -sf -X POST localhost:3701/v1.0/state/store -H 'dapr-api-token: quiet-token' -H 'content-type: application/json' \
  -d '[{"key":"k","value":{"order":42,"items":["a","b","c"]}}]'
[ "$(curl -s localhost:3701/v1.0/state/store/k -H 'dapr-api-token: quiet-token')" = "$(curl -s localhost:3704/v1.0/state/store/k)" ]

rate() { taskset -c 1 wrk -t1 -c32 -d"${seconds}s" "$@" | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "ERRORS: " $0 > "/dev/stderr"}'; }
for _ in 1 2 3; do rate -H 'dapr-api-token: quiet-token' http://127.0.0.1:3701/v1.0/state/store/k >/dev/null; done   # warm-up: JIT and tiered compilation
rate http://127.0.0.1:3704/v1.0/state/store/k >/dev/null
echo "| round | runtime req/s | bare Kestrel req/s | ratio |"
echo "|---|---|---|---|"
for r in $(seq "$rounds"); do
  a=$(rate -H 'dapr-api-token: quiet-token' http://127.0.0.1:3701/v1.0/state/store/k)
  b=$(rate http://127.0.0.1:3704/v1.0/state/store/k)
  echo "| $r | $a | $b | $(python3 -c "print(f'{$a/$b:.2f}x')") |"
done
