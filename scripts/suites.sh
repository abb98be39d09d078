#!/usr/bin/env bash
# Runs DTS's vhost/virtio suites in full on this machine (TCG guests), one `dts run` per suite,
# under the machine lock other VM-heavy jobs take. CI (scripts/test.sh) runs one short case of
# each (Tests/DTSTests/VirtioSuitesEndToEndTests.swift, VhostUserLiveMigrationEndToEndTests.swift);
# this runs every case. See docs/running.md.
# Usage: scripts/suites.sh [SUITE...]    (default: every vhost/virtio suite)
# Results: ${DTS_OUTPUT:-output/suites}/<suite>/ (report.html, results.json, junit.xml, dts.log).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

suites=("$@")
[ "${#suites[@]}" -gt 0 ] || suites=(vm2vm_virtio_net_perf vhost_qemu_mtu vm2vm_virtio_pmd vhost_user_live_migration pvp_vhost_user_reconnect)
out=${DTS_OUTPUT:-output/suites}
lock=${DTS_VM_LOCK:-/work/.vm-heavy.lock}

swift build
bin=$(swift build --show-bin-path)/dts
status=0
for suite in "${suites[@]}"; do
    echo "suites: $suite"
    run=("$bin" run --suite "$suite" --accel tcg --output "$out/$suite")
    if [ -d "$(dirname "$lock")" ]; then
        flock "$lock" "${run[@]}" || status=$?
    else
        "${run[@]}" || status=$?
    fi
done
exit "$status"
