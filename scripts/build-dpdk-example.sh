#!/usr/bin/env bash
# Builds one of DPDK's example applications from the sources Debian's dpdk-doc ships
# (/usr/share/dpdk/examples/<name>) against the installed libdpdk-dev, in a cache directory, and
# prints the binary's path. Idempotent: a second run rebuilds only when the sources changed.
#
#   scripts/build-dpdk-example.sh vhost_crypto      -> ~/.cache/dts/dpdk-examples/vhost_crypto/build/vhost-crypto
#
# DTS_DPDK_EXAMPLES_DIR overrides the cache directory. Needs dpdk-doc, dpdk-dev, make, gcc and
# pkg-config (scripts/setup.d/dpdk-examples.sh installs them).
set -euo pipefail
name=${1:?usage: build-dpdk-example.sh NAME}
case "$name" in */*|.*|'') echo "build-dpdk-example.sh: bad example name '$name'" >&2; exit 2 ;; esac
source_dir=/usr/share/dpdk/examples/$name
[ -f "$source_dir/Makefile" ] || { echo "build-dpdk-example.sh: no $source_dir/Makefile (install dpdk-doc)" >&2; exit 1; }
cache=${DTS_DPDK_EXAMPLES_DIR:-$HOME/.cache/dts/dpdk-examples}
work=$cache/$name
# The example's binary name is the Makefile's APP.
app=$(sed -n 's/^APP *= *//p' "$source_dir/Makefile" | head -n1)
[ -n "$app" ] || { echo "build-dpdk-example.sh: no APP in $source_dir/Makefile" >&2; exit 1; }
binary=$work/build/$app-shared
stamp=$(cd "$source_dir" && find . -type f -printf '%P %s %T@\n' | sort | sha256sum | cut -c1-16)-$(pkg-config --modversion libdpdk)
if [ ! -x "$binary" ] || [ "$(cat "$work/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$work"
    mkdir -p "$cache"
    cp -r "$source_dir" "$work"
    make -C "$work" -s shared >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
    echo "$stamp" > "$work/.stamp"
fi
echo "$binary"
