#!/usr/bin/env bash
# Machine setup for the remote host DUT tests (Tests/DTSTests/RemoteDUTTests.swift and
# Tests/DTSTests/VM/RemoteVMTests.swift): a second "host" in a network namespace with its own SSH
# server, on which VMs are started. Idempotent; run as root on Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(dirname "$0")

# iproute2: ip netns / veth; util-linux: setsid (remote commands run in their own process group);
# procps: kill. A remote DUT that runs VMs needs qemu-system-x86 and socat (dts reaches QEMU's
# QMP and guest-agent sockets there through it); the namespace host shares this machine's.
source "$here/../lib/apt.sh"
apt_install iproute2 util-linux procps socat qemu-system-x86

# The SSH servers, the sftp-server link and the test user (dtstest / dtstest-pw) are the SSH
# tests' own setup.
bash "$here/ssh.sh"

# Network namespaces need /run/netns (ip creates it) and the veth module.
modprobe veth 2>/dev/null || true
