#!/usr/bin/env bash
# Boot benchmark (see docs/virtualization.md): raw QEMU + SSH poll vs QEMUKvm.start() booting cold
# and restoring a snapshot (warm boot), and two VMs at once vs one. Ends with:
#   boot_ratio=... concurrent_ratio=... warm_ratio=... overhead_ms=...
# Then (BENCH_VXLAN=0 skips it) the wall time of `dts run --suite vxlan_sample`, cold and warm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
bash scripts/build-guest-image.sh >/dev/null
swift build -c release --product BootBench >/dev/null
.build/release/BootBench | tee /tmp/dts-bench-boot.$$
summary=$(grep '^boot_ratio=' /tmp/dts-bench-boot.$$)
rm -f /tmp/dts-bench-boot.$$

if [ "${BENCH_VXLAN:-1}" != 0 ]; then
    bash scripts/build-guest-image.sh --with-dpdk >/dev/null
    swift build -c release --product dts >/dev/null
    work=$(mktemp -d /tmp/dts-bench-vxlan.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    run() { # NAME BOOT
        local start end
        start=$(date +%s.%N)
        DTS_SNAPSHOT_DIR=$work/snapshots .build/release/dts run --suite vxlan_sample --accel tcg --boot "$2" \
            --output "$work/$1" >"$work/$1.out" 2>&1 || { cat "$work/$1.out"; echo "dts run ($1) failed" >&2; exit 1; }
        end=$(date +%s.%N)
        printf '%s\n' "$(echo "$end - $start" | bc)"
    }
    cold=$(run cold cold)
    first=$(run warm-first warm)
    warm=$(run warm warm)
    grep -q 'restored snapshot' "$work/warm/dts.log" || echo "warning: the warm vxlan_sample run did not restore its VM" >&2
    printf '\ndts run --suite vxlan_sample: cold %.1f s, warm %.1f s (the first warm run, which takes the snapshot: %.1f s)\n' \
        "$cold" "$warm" "$first"
fi
echo "$summary"
