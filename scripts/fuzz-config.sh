#!/usr/bin/env bash
# Fuzzes the config reader: random mutations of conf/*.cfg and the golden configs, fed to the
# built `dts config check` and `dts vm cmdline` (each input in a process with a deadline).
# A crash (a signal, an exit status other than 0 or 2) or a hang is a failure; each is saved
# with its input, output and a reproduce.sh (docs/config.md, "Fuzzing the reader").
#
#   scripts/fuzz-config.sh              # long mode: 10 minutes
#   scripts/fuzz-config.sh --ci         # 1 minute (scripts/test.sh runs this)
#   scripts/fuzz-config.sh --duration 120 --seed 42 --out /tmp/fails
#
# Exit status 0 when nothing failed, 1 otherwise. Pure: boots nothing, needs no lock.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

duration=600
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ci) duration=60; shift ;;
        --duration) duration="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

swift build --product dts >/dev/null
dts="$(swift build --show-bin-path)/dts"
exec /usr/bin/python3 scripts/lib/fuzz_config.py --dts "$dts" --duration "$duration" \
    --corpus conf --corpus Tests/DTSTests/Golden/cmdline --out "${DTS_FUZZ_OUT:-.build/fuzz-failures}" "${args[@]}"
