#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when it is missing (the .NET SDK must be present).
# Usage: ./test.sh [extra dotnet test arguments]
# SHAREDRUNTIME_NATIVE_SMOKE (1; 0 skips publishing the native executable and its smoke tests),
# SHAREDRUNTIME_FUZZ_CASES (50000) sets the size of the generated-request fuzz run; SHAREDRUNTIME_PARSER_FUZZ_SECONDS (30,
# 0 to skip) the time the coverage-guided parser fuzzer spends on each parser.
set -euo pipefail
cd "$(dirname "$0")"

# Real servers (Redis, PostgreSQL, NATS) for the component tests; each test starts its own instances.
bash scripts/install-test-servers.sh

# The JS SDK's DaprServer (tests/js, @dapr/dapr pinned in its package-lock.json) for the SDK tests.
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
results="$(pwd)/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

dotnet build SharedRuntime.sln -c Release -warnaserror -nologo -v quiet
status=0
# One test project at a time: the process and timing tests get the machine to themselves.
dotnet test SharedRuntime.sln -c Release --no-build --nologo -m:1 \
  --logger "trx" --results-directory "$results" \
  --blame-hang-timeout 5m "$@" || status=$?

# The shipped build is a native executable: publish it and run the smoke tests against it (SHAREDRUNTIME_NATIVE_SMOKE=0
# skips this; the publish takes several minutes).
if [ "${SHAREDRUNTIME_NATIVE_SMOKE:-1}" != "0" ]; then
  bash scripts/native-smoke.sh "$results" || { echo "the native build or its smoke tests failed" >&2; status=1; }
fi

# Coverage-guided fuzzing of the parsers of tenant input (SharpFuzz with afl++), bounded in time per parser.
parser_fuzz_seconds="${SHAREDRUNTIME_PARSER_FUZZ_SECONDS:-30}"
if [ "$parser_fuzz_seconds" != "0" ]; then
  bash scripts/fuzz-parsers.sh "$parser_fuzz_seconds" || { echo "parser fuzzing found a crash or a hang" >&2; status=1; }
fi

# One closing line for every test project together.
python3 - "$results" <<'PY' || true
import sys, glob, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in glob.glob(sys.argv[1] + "/**/*.trx", recursive=True):
    counters = ET.parse(path).getroot().find(".//{*}Counters")
    if counters is None:
        continue
    passed += int(counters.get("passed", 0))
    failed += int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0)) + int(counters.get("aborted", 0))
    skipped += int(counters.get("notExecuted", 0))
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
