#!/usr/bin/env bash
# Sets this machine up and runs the main job against it as the DUT:
#   dts run --suite vxlan_sample
# Results go to output/ (report.html, junit.xml, results.json, test_results.json, logs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

bash scripts/setup.sh
swift build -c release --product dts
# This machine cannot run KVM guests (docs/config.md, "Choosing the accelerator"): use TCG.
exec .build/release/dts run --suite vxlan_sample --accel tcg "$@"
