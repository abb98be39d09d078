#!/usr/bin/env bash
# Machine setup for the SSH layer's tests and benchmark (DTSSSHTests, SessionBench).
# Idempotent; run as root on Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

source "$(dirname "$0")/../lib/apt.sh"
apt_install libssh2-1-dev dropbear-bin openssh-client openssh-server openssh-sftp-server python3-pexpect passwd iproute2

# sshd (keyboard-interactive test) needs its privilege separation directory.
install -d -m 755 /run/sshd

# Dropbear starts SFTP as /usr/lib/sftp-server; OpenSSH's server lives in /usr/lib/openssh.
if [[ ! -e /usr/lib/sftp-server ]]; then
    ln -s openssh/sftp-server /usr/lib/sftp-server
fi

# The test user: password login and key login (the tests add keys to its authorized_keys).
if ! id dtstest >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash dtstest
fi
echo 'dtstest:dtstest-pw' | chpasswd
install -d -m 700 -o dtstest -g dtstest /home/dtstest/.ssh
touch /home/dtstest/.ssh/authorized_keys
chown dtstest:dtstest /home/dtstest/.ssh/authorized_keys
chmod 600 /home/dtstest/.ssh/authorized_keys

# Root login with a password: only set one if root has none (locked or empty), never replace one.
root_hash=$(getent shadow root | cut -d: -f2)
if [[ -z "$root_hash" || "$root_hash" == "*" || "$root_hash" == "!"* ]]; then
    echo 'root:dtsroot-pw' | chpasswd
fi
