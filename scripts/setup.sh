#!/usr/bin/env bash
# Sets up this machine (Debian 12, as root) for dts: packages, test fixtures, hugetlbfs, guest image.
# Idempotent: run it as often as you like; it only installs or builds what is missing.
#
#   scripts/setup.sh            everything (packages, fixtures, guest image)
#   scripts/setup.sh --no-image skip the guest image build
set -euo pipefail
cd "$(dirname "$0")/.."

build_image=yes
for arg in "$@"; do
    case "$arg" in
        --no-image) build_image=no ;;
        *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (it installs Debian packages and mounts hugetlbfs)" >&2
    exit 1
fi

# Packages every part of dts needs. Each setup.d script adds its own.
packages=(
    pkg-config libssh2-1-dev            # the SSH layer (CLibSSH2)
    libssl-dev                          # libcrypto's SHA-256 for host key fingerprints (CLibCrypto)
    qemu-system-x86 qemu-utils          # VMs
    qemu-guest-agent                    # guest agent (tests run it on the host too)
    socat procps iproute2 util-linux    # process and network tools used by tests
    dpdk-dev                            # dpdk-testpmd: vhost-user backends
)
source scripts/lib/apt.sh
apt_install "${packages[@]}"

for script in scripts/setup.d/*.sh; do
    [ -e "$script" ] || continue
    echo "setup: $script"
    bash "$script"
done

# A hugetlbfs mount for hugepage-backed guests (pages are reserved by whoever needs them).
if ! grep -q ' hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages
    echo "setup: mounted hugetlbfs on /dev/hugepages"
fi

if [ "$build_image" = yes ]; then
    bash scripts/build-guest-image.sh
    bash scripts/build-guest-image.sh --with-dpdk   # the vxlan_sample suite's guest (dpdk-testpmd)
fi

# Swift must be reachable for the build.
if ! command -v swift >/dev/null 2>&1 && [ ! -x /opt/swift/usr/bin/swift ]; then
    echo "setup.sh: no Swift toolchain (expected swift on PATH or /opt/swift/usr/bin/swift)" >&2
    exit 1
fi
echo "setup: done"
