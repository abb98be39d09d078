#!/usr/bin/env bash
# Rebuild a Debian kernel's vfio modules with CONFIG_VFIO_NOIOMMU=y, for the dts guest image.
#
#   scripts/build-vfio-noiommu.sh --kernel-version KVER --package-version VERSION --cache DIR
#
# Debian builds its kernels without CONFIG_VFIO_NOIOMMU, so its vfio module has no
# enable_unsafe_noiommu_mode parameter and vfio-pci cannot be used in a guest without a vIOMMU
# (DTS's def_driver "driver_name=vfio-pci; driver_mode=noiommu"). This script compiles
# drivers/vfio from linux-source-<major.minor> of exactly VERSION (the guest kernel package's
# version) against linux-headers-KVER as external modules with CONFIG_VFIO_NOIOMMU defined, using
# the kernel's own compiler (gcc-12). The modules are unsigned: they taint the kernel (E) but load,
# as Debian does not set CONFIG_MODULE_SIG_FORCE.
#
# The stripped .ko files are kept in DIR/KVER_VERSION (keyed also on this script's hash), so a
# re-run is a lookup. On success the last line of stdout is that directory. Run as root (apt-get
# download). See docs/guest-image.md.
set -euo pipefail

prog=build-vfio-noiommu.sh
# shellcheck source=lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
die() { echo "$prog: error: $*" >&2; exit 1; }
info() { echo "$prog: $*" >&2; }

kver= version= cache=
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel-version) [ $# -ge 2 ] || die "$1 needs a value"; kver=$2; shift 2 ;;
        --package-version) [ $# -ge 2 ] || die "$1 needs a value"; version=$2; shift 2 ;;
        --cache) [ $# -ge 2 ] || die "$1 needs a value"; cache=$2; shift 2 ;;
        -h|--help) sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
[ -n "$kver" ] && [ -n "$version" ] && [ -n "$cache" ] || die "--kernel-version, --package-version and --cache are required"
[[ "$kver" =~ ^([0-9]+\.[0-9]+)\.[0-9]+-([0-9]+)-([a-z0-9]+)$ ]] || die "unexpected kernel version '$kver' (want e.g. 6.1.0-57-amd64)"
series=${BASH_REMATCH[1]}
abi=${kver%-*}

# The modules rebuilt: all of drivers/vfio that the kernel builds as modules, except mdev (not in
# the image). Rebuilt together, so their symbol versions agree with each other and the kernel.
built_modules=(vfio vfio_iommu_type1 vfio_virqfd pci/vfio-pci-core pci/vfio-pci)
make_vars=(CONFIG_VFIO=m CONFIG_VFIO_IOMMU_TYPE1=m CONFIG_VFIO_VIRQFD=m CONFIG_VFIO_PCI_CORE=m
           CONFIG_VFIO_PCI=m CONFIG_VFIO_MDEV= KCFLAGS=-DCONFIG_VFIO_NOIOMMU=1)

script_sha=$(sha256sum < "${BASH_SOURCE[0]}" | cut -d' ' -f1)
key="${kver}_${version}"
out=$cache/$key
stamp="kernel=$kver version=$version script=$script_sha"

mkdir -p "$cache" || die "cannot create $cache"
exec 8>"$cache/.lock"
flock 8 || die "cannot lock $cache/.lock"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ]; then
    info "up to date: $out"
    echo "$out"
    exit 0
fi

for c in apt-get apt-cache dpkg-deb tar xz make gcc-12 strip modinfo; do
    command -v "$c" >/dev/null 2>&1 || die "missing $c (install the packages of scripts/setup.d/image.sh)"
done

# The source, headers and kbuild of exactly the kernel's version (a different source would build
# modules whose symbol versions or behaviour differ from the kernel's).
source_pkg=linux-source-$series
needed=("$source_pkg" "linux-headers-$kver" "linux-headers-$abi-common" "linux-kbuild-$series")
for p in "${needed[@]}"; do
    have=$(apt-cache madison "$p" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' | sort -u)
    if ! grep -qxF -- "$version" <<<"$have"; then
        die "$p $version is not in the package lists, so the guest kernel's vfio cannot be rebuilt with no-IOMMU mode (the kernel package is $version; $p has: $(echo ${have:-none})). Run apt-get update, or wait until the mirror has both at one version."
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dts-vfio-noiommu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
mkdir -p "$tmp/x"
info "downloading ${needed[*]} ($version)"
pins=()
for p in "${needed[@]}"; do pins+=("$p=$version"); done
apt_download "$tmp/debs" "${pins[@]}" || die "apt-get download failed"
for deb in "$tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$tmp/x" || die "cannot unpack $deb"; done

headers=$tmp/x/usr/src/linux-headers-$kver
[ -f "$headers/Makefile" ] || die "no usr/src/linux-headers-$kver/Makefile in linux-headers-$kver"
# The headers' Makefile includes the common tree at its installed path; point it at the unpacked one.
sed -i "s|^include /usr/src/|include $tmp/x/usr/src/|" "$headers/Makefile"
tarball=$tmp/x/usr/src/$source_pkg.tar.xz
[ -f "$tarball" ] || die "no usr/src/$source_pkg.tar.xz in $source_pkg"
info "unpacking drivers/vfio from $source_pkg"
tar -xJf "$tarball" -C "$tmp" "$source_pkg/drivers/vfio" || die "cannot unpack drivers/vfio from $tarball"
src=$tmp/$source_pkg/drivers/vfio
grep -q '^config VFIO_NOIOMMU' "$src/Kconfig" || die "$source_pkg has no VFIO_NOIOMMU option"

info "building ${built_modules[*]} with CONFIG_VFIO_NOIOMMU=y against linux-headers-$kver"
make -C "$headers" M="$src" -j"$(nproc)" "${make_vars[@]}" modules >"$tmp/build.log" 2>&1 \
    || { tail -n 40 "$tmp/build.log" >&2; die "building the vfio modules failed (log above)"; }

mkdir -p "$tmp/out"
for m in "${built_modules[@]}"; do
    ko=$src/$m.ko
    [ -f "$ko" ] || die "the build made no $m.ko"
    vermagic=$(modinfo -F vermagic "$ko")
    [ "${vermagic%% *}" = "$kver" ] || die "$m.ko has vermagic '$vermagic', not $kver"
    strip --strip-debug -o "$tmp/out/${m##*/}.ko" "$ko"
done
modinfo -p "$tmp/out/vfio.ko" | grep -q '^enable_unsafe_noiommu_mode:' \
    || die "the rebuilt vfio.ko has no enable_unsafe_noiommu_mode parameter"
echo "$stamp" > "$tmp/out/stamp"

rm -rf "$out"
mkdir -p "$out"
mv "$tmp"/out/*.ko "$out/"
mv "$tmp/out/stamp" "$out/stamp"   # last: a half-filled directory never looks up to date
info "built $out"
echo "$out"
