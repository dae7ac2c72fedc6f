#!/usr/bin/env bash
# Start-up run: process start to healthz 204 for an empty Kestrel app published framework-dependent (the baseline), the
# plain Release build (JIT) and the shipped native publish, started in turn, side by side, each as a multiple of the
# baseline; then how fast a new Tenant file becomes usable. The processes started are pinned to core 0, the prober to core 1.
# Usage: bench/startup/run.sh [--starts 20] [--out bench/results/startup.md] [--no-pin]
# NATIVE_BIN=path/to/shared-runtime measures that native executable instead of publishing one (a publish takes minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet
baseline=$(pwd)/artifacts/startup/empty-kestrel
rm -rf "$baseline"
dotnet publish bench/EmptyKestrel -c Release -o "$baseline" -nologo -v quiet
native=${NATIVE_BIN:-}
if [[ -z "$native" ]]; then
  rm -rf artifacts/startup/native
  dotnet publish src/SharedRuntime.Host -c Release -r linux-x64 -o artifacts/startup/native -nologo -v quiet
  native=$(pwd)/artifacts/startup/native/shared-runtime
fi
dll=$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll
taskset -c 1 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --scenario startup \
  --baseline-dll "$baseline/EmptyKestrel.dll" --baseline-label "empty Kestrel app (framework-dependent)" \
  --runtime-dll "$dll" --label "Release build (JIT)" --compare-dll "$native" --compare-label "native publish (NativeAOT)" \
  --runtime-cpu 0 "$@"
