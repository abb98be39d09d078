#!/usr/bin/env bash
# DPDK's example applications that tests run as real peers, built from Debian's dpdk-doc sources
# against libdpdk-dev (scripts/build-dpdk-example.sh): vhost_crypto serves the vhost-user crypto
# sockets of VMs with `crypto = enable=yes` (Tests/DTSTests/VM/DTSLegacyGuestTests.swift and the
# QEMU acceptance test). Idempotent; run as root on Debian 12.
set -euo pipefail
here=$(dirname "$0")
source "$here/../lib/apt.sh"
apt_install dpdk-doc dpdk-dev make gcc pkg-config
bash "$here/../build-dpdk-example.sh" vhost_crypto >/dev/null
echo "dpdk-examples: vhost_crypto built"
