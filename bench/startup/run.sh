#!/usr/bin/env bash
# Start-up run: process start to healthz 204, for the plain Release build and for the shipped native publish, side by side;
# then how fast a new Tenant file becomes usable. The runtime is pinned to core 0, the prober to core 1.
# Usage: bench/startup/run.sh [--starts 20] [--out bench/results/startup.md] [--no-pin]
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet
native=$(pwd)/artifacts/startup/native
rm -rf "$native"
dotnet publish src/SharedRuntime.Host -c Release -r linux-x64 -o "$native" -nologo -v quiet
dll=$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll
taskset -c 1 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --scenario startup \
  --runtime-dll "$dll" --label "Release build (JIT)" --compare-dll "$native/shared-runtime" --compare-label "native publish (NativeAOT)" \
  --runtime-cpu 0 "$@"
