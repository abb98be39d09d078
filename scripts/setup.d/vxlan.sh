#!/usr/bin/env bash
# Machine setup for the host-side backends of the vxlan_sample suite (Sources/DTS/Backends,
# Sources/DTS/Tester) and their tests: Open vSwitch with DPDK, DPDK's testpmd, the tester's
# packet tools (scapy, tcpdump), ethtool and iproute2. Idempotent; run as root on Debian 12;
# installs only what is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(openvswitch-switch-dpdk dpdk-dev tcpdump python3-scapy ethtool iproute2)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
# The OVS test pings through the tunnel with busybox (Debian's host has no ping); busybox-static
# is what the guest image builder installs, and it conflicts with busybox: take whichever is there.
command -v busybox >/dev/null || missing+=(busybox-static)
if ((${#missing[@]})); then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# dts runs its own private ovsdb-server/ovs-vswitchd (own run directory, DB, sockets, DPDK
# file prefix); the system's openvswitch-switch service is neither needed nor touched.

test -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
for tool in ovsdb-tool ovsdb-server ovs-vsctl ovs-appctl ovs-ofctl dpdk-testpmd tcpdump ethtool ip busybox; do
    command -v "$tool" >/dev/null || { echo "vxlan: $tool missing after install" >&2; exit 1; }
done
/usr/bin/python3 -c 'import scapy.all' 2>/dev/null
echo "vxlan: $(ovs-vsctl --version | head -n1), dpdk-testpmd from dpdk-dev $(dpkg-query -W -f='${Version}' dpdk-dev), scapy $(/usr/bin/python3 -c 'import scapy; print(scapy.VERSION)')"
