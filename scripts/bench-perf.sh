#!/usr/bin/env bash
# Performance benchmark (see docs/backends.md, TrafficGenerator): the scapy sender against the
# DPDK generator on one host loopback, then the 64-byte figures of test_perf_vxlan_sample (round
# trip through the tunnel and a TCG guest, zero loss) and perf_virtio_user_loopback
# (split ring mergeable). Ends with one line:
#   generator_ratio=<dpdk/scapy> vxlan_64B_mpps=<..> loopback_64B_mpps=<..>
# Needs root, dpdk-dev, python3-scapy, Open vSwitch with DPDK and the DPDK guest image.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
swift build --product dts >/dev/null
swift build --product PerfBench >/dev/null
bin=$(swift build --show-bin-path)

generator=$("$bin/PerfBench" | tee /dev/stderr | sed -n 's/^generator_ratio=\([0-9.]*\).*/\1/p')

work=$(mktemp -d /tmp/dts-bench-perf-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r conf "$work/conf"
# 64-byte frames only, no baselines to judge, nothing written back.
/usr/bin/python3 - "$work/conf" <<'PY'
import re, sys
for name, sizes in (("vxlan_sample", "{64: [256]}"), ("perf_virtio_user_loopback", "{64: [1024]}")):
    path = f"{sys.argv[1]}/{name}.cfg"
    text = open(path).read()
    text = re.sub(r"^test_parameters = .*$", f"test_parameters = {sizes}", text, flags=re.M)
    open(path, "w").write(text)
PY

mpps() {  # results.json, table title -> the 64-byte throughput
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for execution in report["executions"]:
    for suite in execution["suites"]:
        for case in suite["cases"]:
            for table in case["perf"]:
                if table["title"] == sys.argv[2]:
                    names = [c["name"] for c in table["columns"]]
                    for row in table["rows"]:
                        if row[names.index("Frame Size")] == 64:
                            print("%.3f" % row[names.index("Throughput")]); sys.exit(0)
print("nan")
PY
}

"$bin/dts" run --suite perf_virtio_user_loopback --test-cases test_perf_loopback_split_ring_mergeable \
    --conf-dir "$work/conf" --output "$work/loopback" >/dev/null || true
loopback=$(mpps "$work/loopback/results.json" split_ring_mergeable)
echo "perf_virtio_user_loopback split_ring_mergeable 64 B: $loopback Mpps" >&2

"$bin/dts" run --suite vxlan_sample --accel tcg --test-cases test_perf_vxlan_sample \
    --conf-dir "$work/conf" --output "$work/vxlan" >/dev/null || true
vxlan=$(mpps "$work/vxlan/results.json" tester_to_guest_to_tester)
echo "test_perf_vxlan_sample round trip 64 B (zero loss, TCG guest): $vxlan Mpps" >&2

echo "generator_ratio=$generator vxlan_64B_mpps=$vxlan loopback_64B_mpps=$loopback"
