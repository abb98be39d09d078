#!/usr/bin/env bash
# Machine setup for DTSControl (QMP / HMP / guest agent clients) and its tests.
# Idempotent; run as root on Debian 12. The tests start a real qemu-system-x86_64 (TCG) and run
# the host's own qemu-ga on a unix socket (with every power command disabled).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(qemu-system-x86 qemu-guest-agent qemu-utils)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Debian package enables a qemu-guest-agent service that waits for a virtio port that a host
# does not have; the tests run their own qemu-ga, so the service is left alone (not started here).

command -v qemu-system-x86_64 >/dev/null
test -x /usr/sbin/qemu-ga || command -v qemu-ga >/dev/null
echo "control: qemu-system-x86_64 $(qemu-system-x86_64 --version | head -n1 | awk '{print $4}'), qemu-ga $(/usr/sbin/qemu-ga -V 2>/dev/null | head -n1 | awk '{print $NF}')"
