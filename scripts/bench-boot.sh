#!/usr/bin/env bash
# Boot benchmark (see docs/virtualization.md): raw QEMU + SSH poll vs QEMUKvm.start(), and two
# VMs at once vs one. Ends with: boot_ratio=... concurrent_ratio=... overhead_ms=...
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
bash scripts/build-guest-image.sh >/dev/null
swift build -c release --product BootBench >/dev/null
exec .build/release/BootBench
