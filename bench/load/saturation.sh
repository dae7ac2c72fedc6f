#!/usr/bin/env bash
# sharedruntime_saturation under a closed-loop flood and after it. The runtime is pinned to core 0 (so the cores it may
# use are 1), wrk (Debian's package) to core 1. Phases: quiet, then a closed-loop flood of state GETs on 64 keep-alive
# connections (wrk, run back to back) by one tenant whose limits are far above what the core can serve, then quiet again. Every second the
# gauge is read from /metrics, beside the process's own CPU use (from /proc) and the CPU the runtime charged to the
# flooding tenant (sharedruntime_tenant_cpu_seconds_total) over that second. The gauge is a 5-second average of the
# CPU the runtime used, so it follows the flood with up to 5 s of lag either way. It is the CPU the runtime got: other
# work on core 0 (the machine is shared) lowers it; the load average before and after says how busy the machine was.
# Usage: bench/load/saturation.sh [quiet seconds] [flood seconds] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
quiet=${1:-10}
flood=${2:-20}
out=""
[ "${3:-}" = "--out" ] && out=${4:?--out FILE}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
runtime_dll=${RUNTIME_DLL:-src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll}
[ -n "${RUNTIME_DLL:-}" ] || dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
runtime=""; load=""
trap 'kill $runtime $load 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
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
  name: flood
spec:
  apiToken: {value: flood-token}
  limits: {requestsPerSecond: 10000000, burst: 10000000, maxConcurrency: 256, maxQueue: 256}
YAML
export DOTNET_gcServer=0 DOTNET_gcConcurrent=0 DOTNET_TieredPGO=1
taskset -c 0 dotnet "$runtime_dll" --resources-path "$work" --state-dir "$work/state" --tenant-cpu-metrics true \
  --dapr-http-port 3731 --dapr-grpc-port 3732 --metrics-port 3733 --log-level error & runtime=$!
until curl -sf -o /dev/null localhost:3731/v1.0/healthz; do sleep 0.1; done
curl -sf -X POST localhost:3731/v1.0/state/store -H 'dapr-api-token: flood-token' -H 'content-type: application/json' \
  -d '[{"key":"k","value":{"order":42,"items":["a","b","c"]}}]'

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$runtime/stat"; }
metric() { curl -s localhost:3733/metrics | awk -v name="$1" 'index($0, name) == 1 {v = $NF} END {print (v == "" ? 0 : v)}'; }
requests() { curl -s localhost:3733/metrics | awk '/^sharedruntime_requests_total/ && /app_id="flood"/ {n += $NF} END {print n + 0}'; }

# One line a second, on a fixed schedule: second, phase, the gauge, and over the second that ended: the process's CPU
# use and what it charged to the tenant (both in cores), and the requests answered.
now() { date +%s.%N; }
sample() {
  local phase=$1 t=$2
  local c0 r0 u0 w0 c1 r1 u1 w1 gauge
  read -r c0 r0 u0 w0 < "$work/last"
  c1=$(cpu); r1=$(requests); u1=$(metric 'sharedruntime_tenant_cpu_seconds_total'); w1=$(now); gauge=$(metric 'sharedruntime_saturation')
  python3 -c "print(f'| $t | $phase | {$gauge:.2f} | {($c1 - $c0) / $ticks / ($w1 - $w0):.2f} | {($u1 - $u0) / ($w1 - $w0):.2f} | {$r1 - $r0} |')"
  echo "$c1 $r1 $u1 $w1" > "$work/last"
}
{
  echo "$(date -u +%Y-%m-%d), $(nproc) cores (runtime pinned to 1), load average before: $(cut -d' ' -f1-3 /proc/loadavg); quiet ${quiet}s, closed-loop flood ${flood}s (wrk -t1 -c64, state GET), quiet ${quiet}s"
  echo
  echo "| s | phase | sharedruntime_saturation | process CPU (cores) | charged to the tenant (cores) | requests |"
  echo "|---|---|---|---|---|---|"
  echo "$(cpu) $(requests) $(metric 'sharedruntime_tenant_cpu_seconds_total') $(now)" > "$work/last"
  start=$(now)
  for t in $(seq $((quiet + flood + quiet))); do
    python3 -c "import time; time.sleep(max(0, $start + $t - time.time()))"
    if [ "$t" -le "$quiet" ]; then phase=quiet; elif [ "$t" -le $((quiet + flood)) ]; then phase=flood; else phase=after; fi
    sample "$phase" "$t"
    if [ "$t" -eq "$quiet" ]; then
      # Back-to-back 2-second wrk runs rather than one long one: on this machine a long wrk run sometimes stops sending
      # after a few seconds while still waiting out its duration.
      ( end=$((SECONDS + flood)); while [ $SECONDS -lt $end ]; do
          taskset -c 1 wrk -t1 -c64 -d2s -H 'dapr-api-token: flood-token' http://127.0.0.1:3731/v1.0/state/store/k | grep -E 'requests in|Requests/sec|Non-2xx|Socket errors'
        done > "$work/wrk.txt" ) & load=$!
    fi
  done
  wait "$load" || true; load=""
  echo
  echo '```'
  cat "$work/wrk.txt"
  echo '```'
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee ${out:+"$out"}
