#!/usr/bin/env bash
# Build the dts guest image (a kernel and an initramfs) from Debian packages only.
#
#   scripts/build-guest-image.sh [--output DIR] [--user NAME] [--password PASS]
#                                [--authorized-keys FILE] [--with-dpdk] [--force]
#
# Output DIR (default ${DTS_IMAGE_DIR:-$HOME/.cache/dts/images}/dts-guest, or
# .../dts-guest-dpdk with --with-dpdk) receives vmlinuz (bzImage), vmlinux (the
# same kernel uncompressed, PVH-bootable: faster under TCG), initrd.img and manifest.
# The build is skipped when the manifest's input_hash matches the current inputs
# (this script, scripts/guest/*, the Debian package versions and the options).
# See docs/guest-image.md.
set -euo pipefail

prog=build-guest-image.sh
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
guest_dir=$script_dir/guest
setup_script=$script_dir/setup.d/image.sh
vfio_script=$script_dir/build-vfio-noiommu.sh
# shellcheck source=lib/apt.sh
. "$script_dir/lib/apt.sh"
# Where the rebuilt vfio modules are cached, per kernel version (see build-vfio-noiommu.sh).
kmod_cache=${HOME:?HOME is not set}/.cache/dts/kmod

die() { echo "$prog: error: $*" >&2; exit 1; }
info() { echo "$prog: $*"; }

usage() {
    cat <<EOF
usage: $prog [options]
  --output DIR            output directory (default \${DTS_IMAGE_DIR:-\$HOME/.cache/dts/images}/dts-guest,
                          dts-guest-dpdk with --with-dpdk)
  --user NAME             login user (default root)
  --password PASS         login password (default tester)
  --authorized-keys FILE  also install FILE as the login user's ~/.ssh/authorized_keys
  --with-dpdk             add dpdk-testpmd and its runtime (DPDK 22.11 from the host's dpdk-dev)
  --force                 rebuild even if the output is up to date
  -h, --help              this help
EOF
}

output=
login_user=root
login_password=tester
authorized_keys=
with_dpdk=0
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --output) [ $# -ge 2 ] || die "--output needs a value"; output=$2; shift 2 ;;
        --output=*) output=${1#*=}; shift ;;
        --user) [ $# -ge 2 ] || die "--user needs a value"; login_user=$2; shift 2 ;;
        --user=*) login_user=${1#*=}; shift ;;
        --password) [ $# -ge 2 ] || die "--password needs a value"; login_password=$2; shift 2 ;;
        --password=*) login_password=${1#*=}; shift ;;
        --authorized-keys) [ $# -ge 2 ] || die "--authorized-keys needs a value"; authorized_keys=$2; shift 2 ;;
        --authorized-keys=*) authorized_keys=${1#*=}; shift ;;
        --with-dpdk) with_dpdk=1; shift ;;
        --force) force=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

if [ -z "$output" ]; then
    base=${DTS_IMAGE_DIR:-${HOME:?HOME is not set}/.cache/dts/images}
    if [ "$with_dpdk" = 1 ]; then output=$base/dts-guest-dpdk; else output=$base/dts-guest; fi
fi
[[ "$login_user" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "invalid --user '$login_user' (want a POSIX user name)"
[ -n "$login_password" ] || die "--password must not be empty"
case "$login_password" in *$'\n'*|*:*) die "--password must not contain a newline or ':'" ;; esac
if [ -n "$authorized_keys" ]; then
    [ -r "$authorized_keys" ] || die "--authorized-keys: cannot read $authorized_keys"
fi
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs host packages and creates device nodes in the initramfs)"

# Kernel modules to load at boot, in this order (their dependencies are added
# before them, resolved with modinfo from the kernel package).
# e1000 goes first: /init brings the management NIC up right after its driver
# loads, so the (slow, emulated) link negotiation overlaps the other insmods.
# vfio, vfio_iommu_type1 and vfio_pci let DPDK use vfio-pci in no-IOMMU mode (a guest has no vIOMMU):
# Debian's kernel lacks CONFIG_VFIO_NOIOMMU, so they are rebuilt with it (build-vfio-noiommu.sh).
modules=(e1000 virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         failover net_failover virtio_net virtio_console virtio_blk uio uio_pci_generic
         vfio vfio_iommu_type1 vfio_pci)
# Debian packages downloaded and unpacked into the image (the kernel package is added below).
# iperf (2), ethtool and tcpdump are what DTS's vhost/virtio suites run in the guest.
packages=(busybox-static dropbear-bin qemu-guest-agent openssh-sftp-server bash iperf ethtool tcpdump)
# Host packages whose libraries end up in the image (ldd closure); recorded for caching.
host_lib_packages=(libc6 libcrypt1 libtomcrypt1 libtommath1 zlib1g libgmp10 libglib2.0-0
                   libudev1 libnuma1 liburing2 libpcre2-8-0 libtinfo6 libgcc-s1 libstdc++6
                   libpcap0.8 libssl3 libdbus-1-3 libsystemd0 libcap2 libgcrypt20 liblzma5
                   libzstd1 liblz4-1 libgpg-error0 libbsd0 libmd0 libmnl0)
# DPDK drivers (from the pmds directory) put into --with-dpdk images, beyond testpmd's own closure.
# net_pcap is dpdk-pdump's capture device.
dpdk_pmds=(bus_pci bus_vdev mempool_ring mempool_stack net_virtio net_e1000 net_ring net_null net_pcap)

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

# ---- host prerequisites -------------------------------------------------------
host_ready() {
    local c p
    for c in apt-get apt-cache dpkg-deb dpkg-query cpio zstd xz modinfo openssl ldd sha256sum mknod flock od \
             tar make gcc-12 strip; do
        command -v "$c" >/dev/null 2>&1 || return 1
    done
    for p in "${host_lib_packages[@]}" $([ "$with_dpdk" = 1 ] && echo dpdk-dev); do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = 'install ok installed' ] || return 1
    done
}
if ! host_ready; then
    info "installing missing host packages with $setup_script"
    [ -x "$setup_script" ] || die "missing $setup_script"
    if [ "$with_dpdk" = 1 ]; then bash "$setup_script" --with-dpdk; else bash "$setup_script"; fi
    host_ready || die "host prerequisites still missing after $setup_script"
fi

# ---- versions and input hash ----------------------------------------------------
guest_packages=("${packages[@]}")
declare -A pkg_version
# Sets kernel_pkg, packages (kernel first) and pkg_version; returns 1 with a
# message in resolve_error when the package lists do not know a package.
resolve_versions() {
    local p v
    resolve_error=
    kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ && !n++ {print $2}')
    if [ -z "$kernel_pkg" ]; then
        resolve_error="cannot find the kernel package: 'apt-cache depends linux-image-amd64' names none"
        return 1
    fi
    packages=("$kernel_pkg" "${guest_packages[@]}")
    pkg_version=()
    # One apt-cache call for all candidates (each call costs most of a second).
    while read -r p v; do
        pkg_version[$p]=$v
    done < <(apt-cache policy "${packages[@]}" 2>/dev/null \
                 | awk '/^[^ ].*:$/ {p = substr($0, 1, length($0) - 1)} $1 == "Candidate:" {print p, $2}')
    for p in "${packages[@]}"; do
        v=${pkg_version[$p]:-}
        if [ -z "$v" ] || [ "$v" = "(none)" ]; then
            resolve_error="no installable version of Debian package $p"
            return 1
        fi
    done
}
if ! resolve_versions; then
    info "$resolve_error: running apt-get update"
    apt-get update -q >/dev/null 2>&1 || die "apt-get update failed"
    resolve_versions || die "$resolve_error (even after apt-get update)"
fi
host_versions=$(dpkg-query -W -f='${Package}=${Version}\n' "${host_lib_packages[@]}" 2>/dev/null | sort)
dpdk_version=
if [ "$with_dpdk" = 1 ]; then
    dpdk_version=$(dpkg-query -W -f='${Version}' dpdk-dev)
    command -v dpdk-testpmd >/dev/null || die "dpdk-testpmd not found although dpdk-dev is installed"
    host_versions+=$'\n'$(dpkg-query -W -f='${Package}=${Version}\n' 'librte-*' 2>/dev/null | sort)
fi

password_sha=$(printf '%s' "$login_password" | sha256sum | cut -d' ' -f1)
keys_sha=none
[ -n "$authorized_keys" ] && keys_sha=$(sha256sum < "$authorized_keys" | cut -d' ' -f1)
# Everything the image depends on, as text; its SHA-256 is the input hash. The
# text is kept next to the manifest so a rebuild can say what changed.
inputs=$(
    echo "format=1"
    echo "build-script $(sha256sum < "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
    echo "vfio-noiommu-script $(sha256sum < "$vfio_script" | cut -d' ' -f1)"
    echo "apt-lib $(sha256sum < "$script_dir/lib/apt.sh" | cut -d' ' -f1)"
    (cd "$guest_dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    for p in "${packages[@]}"; do echo "package $p=${pkg_version[$p]}"; done
    echo "$host_versions"
    echo "dpdk=$with_dpdk $dpdk_version pmds=${dpdk_pmds[*]}"
    echo "user=$login_user password_sha256=$password_sha authorized_keys_sha256=$keys_sha"
    echo "modules=${modules[*]}"
)
input_hash=$(printf '%s\n' "$inputs" | sha256sum | cut -d' ' -f1)

# One build per output directory at a time: a concurrent caller waits here and
# then finds the image up to date.
mkdir -p "$output" || die "cannot create output directory $output"
exec 9>"$output/.build.lock"
flock 9 || die "cannot lock $output/.build.lock"

manifest_value() { sed -n "s/^$1=//p" "$output/manifest"; }
if [ "$force" = 0 ] && [ -f "$output/manifest" ] && [ -f "$output/vmlinuz" ] && [ -f "$output/initrd.img" ] \
        && [ "$(manifest_value input_hash)" = "$input_hash" ] \
        && [ "$(manifest_value initrd_bytes)" = "$(stat -c %s "$output/initrd.img")" ] \
        && [ "$(manifest_value vmlinuz_bytes)" = "$(stat -c %s "$output/vmlinuz")" ] \
        && [ -f "$output/vmlinux" ] && [ "$(manifest_value vmlinux_bytes)" = "$(stat -c %s "$output/vmlinux")" ]; then
    info "up to date: $output (input hash $input_hash)"
    exit 0
fi
if [ "$force" = 1 ]; then
    info "rebuilding (--force)"
elif [ -f "$output/inputs" ] && [ -f "$output/manifest" ]; then
    changes=$(diff "$output/inputs" <(printf '%s\n' "$inputs") | grep '^[<>]' || true)
    if [ -n "$changes" ]; then
        info "rebuilding: inputs changed (< old, > new):"
        printf '%s\n' "$changes" | sed -n '1,20p'
    else
        info "rebuilding: output files missing or changed"
    fi
fi

# ---- download and unpack --------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dts-guest-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
mkdir -p "$tmp/x"
info "downloading ${packages[*]}"
pins=()
for p in "${packages[@]}"; do pins+=("$p=${pkg_version[$p]}"); done
apt_download "$tmp/debs" "${pins[@]}" || die "apt-get download failed"
for p in "${packages[@]}"; do
    deb=$(find "$tmp/debs" -maxdepth 1 -name "${p}_*.deb" -print -quit)
    [ -n "$deb" ] || die "apt-get download produced no .deb for $p"
    dpkg-deb -x "$deb" "$tmp/x/$p" || die "cannot unpack $deb"
done

kx=$tmp/x/$kernel_pkg
vmlinuz_src=$(find "$kx/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit)
[ -n "$vmlinuz_src" ] || die "no boot/vmlinuz-* in $kernel_pkg"
kver=${vmlinuz_src##*/vmlinuz-}
kmoddir=$kx/lib/modules/$kver
[ -d "$kmoddir/kernel" ] || die "no lib/modules/$kver/kernel in $kernel_pkg"

# ---- root filesystem -------------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/usr/{bin,sbin,lib,lib64}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
mkdir -p "$root"/{dev,proc,sys,run,tmp,mnt,root,etc/dropbear,var/log,var/lib/qemu-ga,usr/share/udhcpc}
ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

# Copy a file from the host into the image at the same path, keeping symlinks as
# symlinks (their targets are copied too).
copy_path() {
    local p=$1 t
    [ -e "$root$p" ] || [ -L "$root$p" ] && return 0
    [ -e "$p" ] || die "cannot copy $p into the image: it does not exist on the host"
    mkdir -p "$root$(dirname "$p")"
    if [ -L "$p" ]; then
        t=$(readlink "$p")
        ln -s "$t" "$root$p"
        case "$t" in /*) copy_path "$t" ;; *) copy_path "$(dirname "$p")/$t" ;; esac
    else
        cp -p "$p" "$root$p"
    fi
}

# Copy the shared libraries an ELF file needs (ldd lists the full closure).
copy_closure() {
    local f out lib
    for f in "$@"; do
        if ! out=$(ldd "$f" 2>&1); then
            case "$out" in *"not a dynamic executable"*|*"statically linked"*) continue ;; esac
            die "ldd $f failed: $out"
        fi
        if grep -q 'not found' <<<"$out"; then
            die "libraries of $f missing on the host: $(grep 'not found' <<<"$out" | tr -s '\t\n' '  ')"
        fi
        while read -r lib; do
            [ -n "$lib" ] && copy_path "$lib"
        done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out")
    done
}

install_file() { # SRC DEST MODE
    mkdir -p "$(dirname "$root$2")"
    install -m "$3" "$1" "$root$2"
}

# busybox and its applets (ours win over busybox for init-adjacent files below).
install_file "$tmp/x/busybox-static/bin/busybox" /usr/bin/busybox 755
while read -r applet; do
    [ -n "$applet" ] || continue
    [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || { mkdir -p "$(dirname "$root/$applet")"; ln -s /usr/bin/busybox "$root/$applet"; }
done < <("$tmp/x/busybox-static/bin/busybox" --list-full)
[ -L "$root/usr/bin/sh" ] || die "busybox did not provide /bin/sh"

elfs=()
install_file "$tmp/x/bash/bin/bash" /usr/bin/bash 755;                      elfs+=("$tmp/x/bash/bin/bash")
install_file "$tmp/x/dropbear-bin/usr/sbin/dropbear" /usr/sbin/dropbear 755; elfs+=("$tmp/x/dropbear-bin/usr/sbin/dropbear")
install_file "$tmp/x/qemu-guest-agent/usr/sbin/qemu-ga" /usr/sbin/qemu-ga 755; elfs+=("$tmp/x/qemu-guest-agent/usr/sbin/qemu-ga")
install_file "$tmp/x/openssh-sftp-server/usr/lib/openssh/sftp-server" /usr/lib/openssh/sftp-server 755
install_file "$tmp/x/iperf/usr/bin/iperf" /usr/bin/iperf 755;               elfs+=("$tmp/x/iperf/usr/bin/iperf")
install_file "$tmp/x/ethtool/sbin/ethtool" /usr/sbin/ethtool 755;           elfs+=("$tmp/x/ethtool/sbin/ethtool")
install_file "$tmp/x/tcpdump/usr/bin/tcpdump" /usr/bin/tcpdump 755;         elfs+=("$tmp/x/tcpdump/usr/bin/tcpdump")
elfs+=("$tmp/x/openssh-sftp-server/usr/lib/openssh/sftp-server")
# Debian's dropbear looks for its SFTP server at /usr/lib/sftp-server.
ln -s openssh/sftp-server "$root/usr/lib/sftp-server"
copy_closure "${elfs[@]}"
# glibc dlopens libgcc_s for thread cancellation and unwinding.
libgcc=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" && $NF ~ /x86_64|\/lib\// && !n++ {print $NF}')
[ -n "$libgcc" ] && copy_path "$libgcc"

if [ "$with_dpdk" = 1 ]; then
    testpmd=$(command -v dpdk-testpmd)
    copy_path "$testpmd"
    # dpdk-pdump: captures a running testpmd's ports as a secondary process (into net_pcap files).
    pdump=$(command -v dpdk-pdump) || die "dpdk-pdump not found although dpdk-dev is installed"
    copy_path "$pdump"
    pmddir=$(find /usr/lib/x86_64-linux-gnu/dpdk -maxdepth 1 -type d -name 'pmds-*' -print -quit)
    [ -n "$pmddir" ] || die "no DPDK pmds-* directory under /usr/lib/x86_64-linux-gnu/dpdk"
    pmd_files=()
    for d in "${dpdk_pmds[@]}"; do
        found=0
        for f in "$pmddir/librte_$d.so" "$pmddir/librte_$d.so".*; do
            [ -e "$f" ] || continue
            copy_path "$f"; found=1
            [ -L "$f" ] || pmd_files+=("$f")
        done
        [ "$found" = 1 ] || die "DPDK driver librte_$d not found in $pmddir"
    done
    copy_closure "$testpmd" "$pdump" "${pmd_files[@]}"
    # EAL's plugin loader opens every librte_*.so.23 in the pmds directory, and some of those
    # drivers (net_mlx5, in testpmd's closure) need libraries that sit beside them there.
    # testpmd finds them through its RUNPATH, dpdk-pdump has none: the image's ld.so.cache
    # lists the directory (ldconfig -r writes the cache for the image's root).
    printf '%s\n' "$pmddir" > "$root/etc/ld.so.conf"
    ldconfig -r "$root" || die "ldconfig -r $root failed"
fi

# Kernel modules: resolve dependencies with modinfo, copy the .ko files, and
# write the load order for /init. The vfio modules come rebuilt with CONFIG_VFIO_NOIOMMU=y.
info "vfio modules with no-IOMMU mode for $kver"
vfio_dir=$(bash "$vfio_script" --kernel-version "$kver" --package-version "${pkg_version[$kernel_pkg]}" \
               --cache "$kmod_cache" | tail -n 1) || die "cannot rebuild the vfio modules with no-IOMMU mode"
[ -f "$vfio_dir/vfio.ko" ] || die "$vfio_script gave no vfio.ko (in '$vfio_dir')"
declare -A kmod_path kmod_done
while read -r f; do
    n=$(basename "$f" .ko); kmod_path[${n//-/_}]=$f
done < <(find "$kmoddir/kernel" "$vfio_dir" -name '*.ko')   # the rebuilt ones last: they win
load_order=()
resolve_module() {
    local m=${1//-/_} deps d
    [ -z "${kmod_done[$m]:-}" ] || return 0
    kmod_done[$m]=1
    if [ -n "${kmod_path[$m]:-}" ]; then
        deps=$(modinfo -F depends "${kmod_path[$m]}")
        for d in ${deps//,/ }; do resolve_module "$d"; done
        load_order+=("$m")
    elif sed 's/-/_/g' "$kmoddir/modules.builtin" | grep "/$m\.ko$" >/dev/null; then
        : # built into the kernel
    else
        die "kernel module $m is neither a module nor built into $kernel_pkg"
    fi
}
for m in "${modules[@]}"; do resolve_module "$m"; done
mkdir -p "$root/lib/modules/$kver"
: > "$root/etc/dts-modules.load"
for m in "${load_order[@]}"; do
    cp "${kmod_path[$m]}" "$root/lib/modules/$kver/$m.ko"
    echo "$m" >> "$root/etc/dts-modules.load"
done

# Our init, DHCP script, shutdown and profile.
install_file "$guest_dir/init" /init 755
install_file "$guest_dir/udhcpc.script" /usr/share/udhcpc/default.script 755
rm -f "$root/usr/sbin/shutdown"
install_file "$guest_dir/shutdown" /usr/sbin/shutdown 755
install_file "$guest_dir/profile" /etc/profile 644
install_file "$guest_dir/bash.bashrc" /etc/bash.bashrc 644

# Accounts. Root's shell is bash; sh is busybox ash.
password_hash=$(printf '%s' "$login_password" | openssl passwd -6 -stdin)
if [ "$login_user" = root ]; then
    home=/root; uid=0
    printf 'root:x:0:0:root:/root:/bin/bash\n' > "$root/etc/passwd"
    printf 'root:%s:19000:0:99999:7:::\n' "$password_hash" > "$root/etc/shadow"
    printf 'root:x:0:\ntty:x:5:\n' > "$root/etc/group"
else
    home=/home/$login_user; uid=1000
    printf 'root:x:0:0:root:/root:/bin/bash\n%s:x:1000:1000:%s:%s:/bin/bash\n' "$login_user" "$login_user" "$home" > "$root/etc/passwd"
    printf 'root:*:19000:0:99999:7:::\n%s:%s:19000:0:99999:7:::\n' "$login_user" "$password_hash" > "$root/etc/shadow"
    printf 'root:x:0:\ntty:x:5:\n%s:x:1000:\n' "$login_user" > "$root/etc/group"
fi
# tcpdump drops its privileges to the user tcpdump after opening the capture.
printf 'tcpdump:x:104:104::/nonexistent:/usr/sbin/nologin\n' >> "$root/etc/passwd"
printf 'tcpdump:!:19000::::::\n' >> "$root/etc/shadow"
printf 'tcpdump:x:104:\n' >> "$root/etc/group"
chmod 600 "$root/etc/shadow"
mkdir -p "$root$home/.ssh"
touch "$root$home/.ssh/authorized_keys"
[ -n "$authorized_keys" ] && cp "$authorized_keys" "$root$home/.ssh/authorized_keys"
chmod 700 "$root$home" "$root$home/.ssh"
chmod 600 "$root$home/.ssh/authorized_keys"
chown -R "$uid:$uid" "$root$home"
printf '/bin/sh\n/bin/bash\n/bin/ash\n/usr/bin/bash\n/usr/bin/sh\n' > "$root/etc/shells"
echo dts-guest > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdts-guest\n::1\tlocalhost\n' > "$root/etc/hosts"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
: > "$root/etc/resolv.conf"

# SSH host keys: generated on the first build of an output directory and kept in
# DIR/hostkeys/, so rebuilds keep the guest's SSH identity (known_hosts stays valid).
dropbearkey=$tmp/x/dropbear-bin/usr/bin/dropbearkey
mkdir -p "$output/hostkeys"
chmod 700 "$output/hostkeys"
for spec in ed25519:256 ecdsa:256; do
    type=${spec%%:*}
    kept=$output/hostkeys/dropbear_${type}_host_key
    if [ ! -s "$kept" ] || ! "$dropbearkey" -y -f "$kept" >/dev/null 2>&1; then
        rm -f "$kept"
        "$dropbearkey" -t "$type" -s "${spec#*:}" -f "$kept" >/dev/null 2>&1 \
            || die "dropbearkey failed to make the $type host key"
    fi
    install -m 600 "$kept" "$root/etc/dropbear/dropbear_${type}_host_key"
done
host_key_ed25519=$("$dropbearkey" -y -f "$root/etc/dropbear/dropbear_ed25519_host_key" | grep '^ssh-ed25519 ' | cut -d' ' -f1,2)

# ---- pack ---------------------------------------------------------------------
rootfs_bytes=$(du -sb --apparent-size "$root" | cut -f1)
info "packing initramfs ($rootfs_bytes bytes unpacked)"
mkdir -p "$tmp/out"
(cd "$root" && find . -mindepth 1 -print0 | sort -z | cpio --null -o -H newc --quiet) \
    | zstd -q -19 > "$tmp/out/initrd.img"
cp "$vmlinuz_src" "$tmp/out/vmlinuz"
# Also the uncompressed kernel (an ELF with a PVH entry point, CONFIG_PVH=y):
# QEMU boots it directly with -kernel vmlinux, skipping the in-guest xz
# decompression of the bzImage, which costs seconds under TCG.
xz_offset=$(LC_ALL=C grep -obUaP -m1 '\xFD7zXZ\x00' "$vmlinuz_src" | sed -n '1s/:.*//p')
[ -n "$xz_offset" ] || die "no xz stream in $vmlinuz_src: cannot extract vmlinux (kernel not xz-compressed?)"
tail -c +$((xz_offset + 1)) "$vmlinuz_src" > "$tmp/vmlinux.xz"
xz -dc --single-stream "$tmp/vmlinux.xz" > "$tmp/out/vmlinux" || die "cannot decompress the kernel in $vmlinuz_src"
rm -f "$tmp/vmlinux.xz"
[ "$(head -c 4 "$tmp/out/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || die "extracted vmlinux is not an ELF file"

{
    echo "format=1"
    echo "input_hash=$input_hash"
    echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel_version=$kver"
    echo "kernel_cmdline=console=ttyS0 quiet"
    for p in "${packages[@]}"; do echo "package.$p=${pkg_version[$p]}"; done
    while IFS="=" read -r p v; do [ -n "$p" ] && echo "host_package.$p=$v"; done <<<"$host_versions"
    echo "with_dpdk=$with_dpdk"
    [ "$with_dpdk" = 1 ] && echo "dpdk_version=$dpdk_version" && echo "dpdk_pmds=${dpdk_pmds[*]}"
    echo "modules=${load_order[*]}"
    echo "vfio_noiommu=yes"
    echo "login_user=$login_user"
    echo "login_password=$login_password"
    echo "login_home=$home"
    echo "ssh_port=22"
    echo "ssh_host_key=$host_key_ed25519"
    echo "sftp_server=/usr/lib/sftp-server"
    echo "mgmt_pci=0000:00:1f.0"
    echo "mgmt_interface=host_connect"
    echo "qga_port_name=org.qemu.guest_agent.0"
    echo "ready_line=DTS-GUEST-READY host_connect=<ip>"
    echo "rootfs_bytes=$rootfs_bytes"
    echo "initrd_compression=zstd"
    echo "initrd_bytes=$(stat -c %s "$tmp/out/initrd.img")"
    echo "vmlinuz_bytes=$(stat -c %s "$tmp/out/vmlinuz")"
    echo "vmlinux_bytes=$(stat -c %s "$tmp/out/vmlinux")"
} > "$tmp/out/manifest"

rm -f "$output/manifest"   # a half-replaced output never looks up to date
printf '%s\n' "$inputs" > "$output/inputs"
mv -f "$tmp/out/vmlinuz" "$output/vmlinuz"
mv -f "$tmp/out/vmlinux" "$output/vmlinux"
mv -f "$tmp/out/initrd.img" "$output/initrd.img"
mv -f "$tmp/out/manifest" "$output/manifest"
info "built $output: kernel $kver, initrd $(stat -c %s "$output/initrd.img") bytes (rootfs $rootfs_bytes bytes)"
