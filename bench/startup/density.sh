#!/usr/bin/env bash
# Resident memory of the runtime: idle with one tenant, and with N tenants (default 10,000) in one resource file, each
# read as VmRSS 5 s after the first healthz 204 (start-up's garbage is collected by then), and again LATE_SECONDS
# (default 30) after it, idle all along, to show what stays resident. Prints both and the bytes per idle tenant. RUNTIME_DLL=... measures another build (for example a ReadyToRun publish).
# Usage: bench/startup/density.sh [tenants]
set -euo pipefail
cd "$(dirname "$0")/../.."
tenants=${1:-10000}
dll=${RUNTIME_DLL:-src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll}
# RUNTIME_BIN=... measures a native executable (a NativeAOT publish) instead of a .dll.
run=(dotnet "$dll"); [[ -z "${RUNTIME_BIN:-}" ]] || { run=("$RUNTIME_BIN"); dll=$RUNTIME_BIN; }
[[ -n "${RUNTIME_DLL:-}${RUNTIME_BIN:-}" ]] || dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/one" "$work/many"
python3 - "$work" "$tenants" <<'PY'
import sys
work, count = sys.argv[1], int(sys.argv[2])
component = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\nspec:\n  type: state.in-memory\n"
def tenant(i):
    return f"---\napiVersion: sharedruntime.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: t{i}\nspec:\n  apiToken: {{value: token-{i}}}\n"
open(f"{work}/one/resources.yaml", "w").write(component + tenant(0))
open(f"{work}/many/resources.yaml", "w").write(component + "".join(tenant(i) for i in range(count)))
PY
rss() {
  "${run[@]}" --resources-path "$work/$1" --state-dir "$work/state-$1" --handoff-socket none --dapr-http-port 3761 \
    --dapr-grpc-port 3762 --metrics-port 3763 --log-level error >/dev/null 2>&1 & local pid=$!
  until curl -sf -o /dev/null localhost:3761/v1.0/healthz; do sleep 0.1; done
  sleep 5
  local early; early=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  sleep $(( ${LATE_SECONDS:-30} - 5 ))
  echo "$early $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
read -r one one_late < <(rss one); read -r many many_late < <(rss many)
echo "$(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(basename "$dll")"
python3 -c "print(f'after 5 s: idle (1 tenant): {$one/1024:.1f} MB; {$tenants:,} tenants: {$many/1024:.1f} MB; per idle tenant: {($many-$one)*1024/($tenants-1):,.0f} B')"
python3 -c "print(f'after ${LATE_SECONDS:-30} s: idle (1 tenant): {$one_late/1024:.1f} MB; {$tenants:,} tenants: {$many_late/1024:.1f} MB; per idle tenant: {($many_late-$one_late)*1024/($tenants-1):,.0f} B')"
