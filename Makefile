# Shortcuts; the scripts are the source of truth.
.PHONY: setup test main build image bench-sessions bench-boot bench-perf golden suites

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

# DTS's vhost/virtio suites in full (CI runs one short case of each); see docs/running.md.
suites:
	bash scripts/suites.sh

main:
	bash scripts/main.sh

build:
	swift build

image:
	bash scripts/build-guest-image.sh

bench-sessions:
	bash scripts/bench-sessions.sh

# Regenerate the golden command lines after a deliberate builder change; review the diff.
golden:
	DTS_UPDATE_GOLDEN=1 swift test --filter GoldenCommandLine
	swift run dts config reference > /tmp/dts-ref.md && echo "check docs/config.md against /tmp/dts-ref.md"

bench-boot:
	bash scripts/bench-boot.sh

# The DPDK generator against scapy on a host loopback, and the perf suites' 64-byte figures.
bench-perf:
	bash scripts/bench-perf.sh
