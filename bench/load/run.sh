#!/usr/bin/env bash
# End-to-end isolation run: the runtime pinned to core 0, the load generator to core 1.
# Usage: bench/load/run.sh [load options, e.g. --rounds 6 --flood-rps 10000]
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet
dll=$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll
taskset -c 1 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --runtime-dll "$dll" --runtime-cpu 0 "$@"
