#!/usr/bin/env bash
# Machine setup for the remote host DUT tests (Tests/DTSTests/RemoteDUTTests.swift): a second
# "host" in a network namespace with its own SSH server. Idempotent; run as root on Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
# iproute2: ip netns / veth; dropbear-bin: the namespace host's SSH server; openssh-server and
# openssh-client: sshd for the dut_key test and ssh-keygen; openssh-sftp-server: file copy;
# util-linux: setsid (remote commands run in their own process group); procps: kill.
for pkg in iproute2 dropbear-bin openssh-server openssh-client openssh-sftp-server util-linux procps passwd; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
    apt-get install -y --no-install-recommends "${need[@]}"
fi

# sshd's privilege separation directory.
install -d -m 755 /run/sshd

# Dropbear starts SFTP as /usr/lib/sftp-server; OpenSSH's server lives in /usr/lib/openssh.
if [[ ! -e /usr/lib/sftp-server ]]; then
    ln -s openssh/sftp-server /usr/lib/sftp-server
fi

# The test user the namespace host is logged into (same user and password as the SSH tests).
if ! id dtstest >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash dtstest
fi
echo 'dtstest:dtstest-pw' | chpasswd
install -d -m 700 -o dtstest -g dtstest /home/dtstest/.ssh
touch /home/dtstest/.ssh/authorized_keys
chown dtstest:dtstest /home/dtstest/.ssh/authorized_keys
chmod 600 /home/dtstest/.ssh/authorized_keys

# Network namespaces need /run/netns (ip creates it) and the veth module.
modprobe veth 2>/dev/null || true
