#!/usr/bin/env bash
# Sets this machine up (scripts/setup.sh) and runs every dts test: a warning-free build, then
# `swift test` (unit, golden, and the tests against real QEMU, SSH servers and guest agents),
# then one minute of config fuzzing (scripts/fuzz-config.sh --ci).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

bash scripts/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "test: swift build"
status=0
swift build --build-tests >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    tail -60 "$log" >&2
    echo "test: build failed" >&2
    exit 1
fi
if grep -E '^/.*(Sources|Tests|suites|Benchmarks)/.*: (warning|error):' "$log" | grep -v '/.build/' ; then
    echo "test: the build has warnings or errors (see above); dts builds warning-free" >&2
    exit 1
fi
tail -1 "$log"

echo "test: swift test"
swift test --skip-build "$@"

# The config reader against random mutations of conf/ and the golden configs: no crash, no hang.
echo "test: config fuzzing (1 minute)"
bash scripts/fuzz-config.sh --ci
