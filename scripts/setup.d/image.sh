#!/usr/bin/env bash
# Host packages needed to build (scripts/build-guest-image.sh) and test
# (scripts/test-guest-image.sh) the dts guest image. Idempotent; run as root
# on Debian 12. Set DTS_IMAGE_WITH_DPDK=1 (or pass --with-dpdk) to also
# install dpdk-dev, whose dpdk-testpmd goes into --with-dpdk images.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.d/image.sh: must run as root" >&2
    exit 1
fi

packages=(
    # building the image
    dpkg cpio zstd xz-utils kmod openssl coreutils findutils util-linux
    busybox-static dropbear-bin openssh-sftp-server qemu-guest-agent bash
    # rebuilding the guest kernel's vfio modules with no-IOMMU mode (build-vfio-noiommu.sh):
    # the kernel's compiler, make, strip, and the libraries of the kernel's prebuilt objtool
    tar make gcc-12 binutils libelf1
    # libraries of the guest binaries (their ldd closure is copied from the host)
    libc6 libcrypt1 libtomcrypt1 libtommath1 zlib1g libgmp10
    libglib2.0-0 libudev1 libnuma1 liburing2 libpcre2-8-0 libtinfo6
    # ... of iperf, ethtool and tcpdump (and of dpdk-pdump's net_pcap in --with-dpdk images)
    libstdc++6 libpcap0.8 libssl3 libdbus-1-3 libsystemd0 libcap2 libgcrypt20 liblzma5
    libzstd1 liblz4-1 libgpg-error0 libbsd0 libmd0 libmnl0
    # testing the image
    qemu-system-x86 qemu-utils socat openssh-client python3
)
want_dpdk=0
[ "${DTS_IMAGE_WITH_DPDK:-0}" = 1 ] && want_dpdk=1
for a in "$@"; do [ "$a" = --with-dpdk ] && want_dpdk=1; done
[ "$want_dpdk" = 1 ] && packages+=(dpdk-dev)

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != 'install ok installed' ]; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.d/image.sh: installing ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}" || {
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    }
fi
