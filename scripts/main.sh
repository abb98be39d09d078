#!/usr/bin/env bash
# Sets this machine up and runs the main job against it as the DUT.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

bash scripts/setup.sh
swift build -c release --product dts
# This machine cannot run KVM guests (see docs/config.md, "Choosing the accelerator"): use TCG.
exec .build/release/dts vm cmdline --suite vxlan_sample --vm vm0 --accel tcg --explain \
    --device 'driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:20' \
    --device 'driver=vhost-user,opt_path=./vhost-net,opt_mac=00:00:20:00:00:21' "$@"
