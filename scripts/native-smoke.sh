#!/usr/bin/env bash
# Publishes the shipped build, a NativeAOT executable (trim and AOT warnings are errors), and runs the native smoke
# tests against it through the Dapr SDK: state on every embedded store, publish and delivery, gRPC, Kubernetes mode, and
# the Redis, PostgreSQL and NATS components against real servers (installed by scripts/install-test-servers.sh).
# Usage: scripts/native-smoke.sh [results folder for the trx file]
set -euo pipefail
cd "$(dirname "$0")/.."
results="${1:-$(pwd)/artifacts/test-results}"

# The native linker step needs a C toolchain (clang, else gcc).
if ! command -v clang >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq clang >/dev/null
fi

out="$(pwd)/artifacts/native"
rm -rf "$out"
echo "publishing the native executable to $out"
dotnet publish src/SharedRuntime.Host -c Release -r linux-x64 -o "$out" -nologo -v quiet
echo "native executable: $(du -h "$out/shared-runtime" | cut -f1)"
dotnet build tests/SharedRuntime.SdkTests -c Release -nologo -v quiet
SHAREDRUNTIME_NATIVE_EXECUTABLE="$out/shared-runtime" dotnet test tests/SharedRuntime.SdkTests -c Release --no-build --nologo \
  --filter "FullyQualifiedName~NativeExecutableTests" --logger "trx;LogFileName=native-smoke.trx" --results-directory "$results"
dotnet build tests/SharedRuntime.ComponentTests -c Release -nologo -v quiet
SHAREDRUNTIME_NATIVE_EXECUTABLE="$out/shared-runtime" dotnet test tests/SharedRuntime.ComponentTests -c Release --no-build --nologo \
  --filter "FullyQualifiedName~NativeBackendStoresTests" --logger "trx;LogFileName=native-backends.trx" --results-directory "$results"
