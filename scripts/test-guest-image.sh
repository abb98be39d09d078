#!/usr/bin/env bash
# Build (cached) and boot the dts guest image under QEMU TCG, then check it for real:
# readiness line, SSH password and key login, kernel version, host_connect address,
# guest agent (guest-ping, guest-network-get-interfaces, guest-exec), SFTP,
# and that QGA guest-shutdown powers the VM off.
#
#   scripts/test-guest-image.sh [--with-dpdk] [--output DIR] [--kernel vmlinux|vmlinuz]
#                               [--keep-tmp] [-- BUILD-OPTIONS...]
#
# --kernel picks the kernel file QEMU boots: vmlinux (default; uncompressed, PVH
# entry, much faster under TCG) or vmlinuz (the Debian bzImage).
# BUILD-OPTIONS (e.g. --user NAME --password PASS) are passed to build-guest-image.sh;
# the login user and password are then read from the image's manifest.
# With --with-dpdk the image gets DPDK and the test also binds the guest's
# virtio-net device (PCI 0000:00:04.0) to uio_pci_generic and runs dpdk-testpmd on it.
set -euo pipefail

prog=test-guest-image.sh
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
with_dpdk=0
output=
keep_tmp=0
kernel_file=vmlinux
extra_build_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --with-dpdk) with_dpdk=1; shift ;;
        --output) [ $# -ge 2 ] || { echo "$prog: --output needs a value" >&2; exit 2; }; output=$2; shift 2 ;;
        --keep-tmp) keep_tmp=1; shift ;;
        --kernel) [ $# -ge 2 ] || { echo "$prog: --kernel needs a value" >&2; exit 2; }; kernel_file=$2; shift 2 ;;
        --) shift; extra_build_args=("$@"); break ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "$prog: unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$kernel_file" in vmlinux|vmlinuz) ;; *) echo "$prog: --kernel must be vmlinux or vmlinuz" >&2; exit 2 ;; esac

fail() { echo "$prog: FAIL: $*" >&2; exit 1; }
pass() { echo "$prog: ok: $*"; }

for c in qemu-system-x86_64 ssh sftp ssh-keygen /usr/bin/python3; do
    command -v "$c" >/dev/null 2>&1 || fail "$c is not installed (run scripts/setup.d/image.sh as root)"
done

# ---- build (cached) -----------------------------------------------------------
build_args=()
[ -n "$output" ] && build_args+=(--output "$output")
[ "$with_dpdk" = 1 ] && build_args+=(--with-dpdk)
build_args+=("${extra_build_args[@]}")
"$script_dir/build-guest-image.sh" "${build_args[@]}" || fail "image build failed"
if [ -z "$output" ]; then
    base=${DTS_IMAGE_DIR:-$HOME/.cache/dts/images}
    if [ "$with_dpdk" = 1 ]; then output=$base/dts-guest-dpdk; else output=$base/dts-guest; fi
fi
manifest=$output/manifest
[ -f "$manifest" ] || fail "no manifest in $output"
mval() { sed -n "s/^$1=//p" "$manifest" | sed -n 1p; }
kver=$(mval kernel_version)
user=$(mval login_user)
password=$(mval login_password)
host_key=$(mval ssh_host_key)
[ -n "$kver" ] && [ -n "$user" ] && [ -n "$password" ] && [ -n "$host_key" ] || fail "incomplete manifest $manifest"

# ---- temp dir, cleanup ----------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dts-guest-test.XXXXXX")
qemu_pid=
cleanup() {
    local rc=$?
    local pid=$qemu_pid
    [ -s "$tmp/qemu.pid" ] && pid=$(cat "$tmp/qemu.pid")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.3; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    [ -n "$qemu_pid" ] && wait "$qemu_pid" 2>/dev/null || true
    if [ $rc -ne 0 ] && [ -f "$tmp/console.log" ]; then
        echo "---- guest console (last 40 lines) ----" >&2
        tail -n 40 "$tmp/console.log" >&2 || true
        echo "---- qemu stderr ----" >&2
        cat "$tmp/qemu.err" >&2 2>/dev/null || true
    fi
    if [ "$keep_tmp" = 1 ]; then echo "$prog: kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

# ---- helpers ------------------------------------------------------------------
# Guest agent client: one JSON command per invocation, after a guest-sync handshake.
cat > "$tmp/qga.py" <<'EOF'
import json, random, socket, sys, time
path, command = sys.argv[1], json.loads(sys.argv[2])
expect_reply = sys.argv[3] != "noreply" if len(sys.argv) > 3 else True
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(15)
s.connect(path)
f = s.makefile("rwb", buffering=0)
def send(obj):
    f.write(json.dumps(obj).encode() + b"\n")
def receive():
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("guest agent closed the connection")
        line = line.strip(b"\xff \r\n")
        if line:
            return json.loads(line)
token = random.randint(1, 2**31)
f.write(b"\xff")
send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
while receive().get("return") != token:
    pass
send(command)
if expect_reply:
    reply = receive()
    if "error" in reply:
        raise SystemExit("guest agent error: " + json.dumps(reply["error"]))
    print(json.dumps(reply["return"]))
EOF
qga() { /usr/bin/python3 "$tmp/qga.py" "$tmp/qga.sock" "$@"; }

cat > "$tmp/askpass" <<'EOF'
#!/bin/sh
printf '%s\n' "$DTS_TEST_PASSWORD"
EOF
chmod 700 "$tmp/askpass"
printf '[127.0.0.1]:%s %s\n' "$port" "$host_key" > "$tmp/known_hosts"
ssh-keygen -q -t ed25519 -N '' -C dts-guest-test -f "$tmp/id_ed25519"
ssh_common=(-F /dev/null -p "$port" -o UserKnownHostsFile="$tmp/known_hosts" -o StrictHostKeyChecking=yes
            -o HostKeyAlgorithms=ssh-ed25519 -o ConnectTimeout=20 -o LogLevel=ERROR)
ssh_pw=("${ssh_common[@]}" -o PreferredAuthentications=password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1)
ssh_key=("${ssh_common[@]}" -o PreferredAuthentications=publickey -o IdentitiesOnly=yes -o IdentityFile="$tmp/id_ed25519" -o BatchMode=yes)
# Password login through OpenSSH's askpass hook (no sshpass needed).
ssh_password() {
    DTS_TEST_PASSWORD=$password SSH_ASKPASS="$tmp/askpass" SSH_ASKPASS_REQUIRE=force \
        ssh "${ssh_pw[@]}" "$user@127.0.0.1" "$@" </dev/null
}
ssh_keyauth() { ssh "${ssh_key[@]}" "$user@127.0.0.1" "$@" </dev/null; }

# ---- boot ---------------------------------------------------------------------
mem=512
# shellcheck disable=SC2054 # the commas belong to QEMU option values
qemu_argv=(
    qemu-system-x86_64 -machine pc,accel=tcg -cpu max -smp 2 -m "$mem" -nodefaults -display none
    -kernel "$output/$kernel_file" -initrd "$output/initrd.img" -append "console=ttyS0 quiet"
    -serial "file:$tmp/console.log"
    -device e1000,netdev=mgmt,addr=1f
    -netdev "user,id=mgmt,hostfwd=tcp:127.0.0.1:$port-:22"
    -device virtio-net-pci,netdev=data0,addr=04
    -netdev user,id=data0,restrict=on
    -chardev "socket,id=qga0,path=$tmp/qga.sock,server=on,wait=off"
    -device virtio-serial-pci
    -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0
    -qmp "unix:$tmp/qmp.sock,server=on,wait=off"
    -pidfile "$tmp/qemu.pid"
)
start_ns=$(date +%s%N)
"${qemu_argv[@]}" >"$tmp/qemu.out" 2>"$tmp/qemu.err" &
qemu_pid=$!

ready_line=
deadline=$((start_ns + 90 * 1000000000))
while :; do
    if [ -f "$tmp/console.log" ]; then
        ready_line=$(grep -a -m1 '^DTS-GUEST-READY ' "$tmp/console.log" | tr -d '\r' || true)
        [ -n "$ready_line" ] && break
    fi
    kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited before the guest was ready"
    [ "$(date +%s%N)" -lt "$deadline" ] || fail "no DTS-GUEST-READY line on the console within 90 s"
    sleep 0.1
done
ready_ns=$(date +%s%N)
boot_ms=$(( (ready_ns - start_ns) / 1000000 ))
echo "$prog: boot time ($kernel_file, qemu start -> ready line): $boot_ms ms; guest: $(grep -a -o 'services up after .*' "$tmp/console.log" | tr -d '\r' || true); host load: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$ready_line" = "DTS-GUEST-READY host_connect=10.0.2.15" ] || fail "unexpected ready line: '$ready_line'"
pass "console: $ready_line"

# ---- SSH ----------------------------------------------------------------------
out=$(ssh_password uname -r) || fail "SSH password login as $user failed"
[ "$out" = "$kver" ] || fail "uname -r over SSH is '$out', manifest says '$kver'"
pass "SSH password login; uname -r = $out"
out=$(ssh_password ip -4 addr show host_connect) || fail "ip addr show host_connect failed"
grep -q 'inet 10\.0\.2\.15/' <<<"$out" || fail "host_connect has no 10.0.2.15: $out"
pass "host_connect has 10.0.2.15"
out=$(ssh_password 'echo "$0 $BASH_VERSION"; hostname; ls -d /sys/bus/pci/devices/0000:00:04.0/virtio*/net/*; cat /sys/class/net/eth0/operstate; echo x | sha256sum') \
    || fail "shell commands over SSH failed"
grep -q '^bash 5\.' <<<"$out" || fail "login shell is not bash: $out"
grep -qx 'dts-guest' <<<"$out" || fail "hostname is not dts-guest: $out"
grep -q '/net/eth0$' <<<"$out" || fail "the virtio-net NIC at 00:04.0 is not eth0: $out"
grep -qx 'down' <<<"$out" || fail "eth0 is not left down: $out"
pass "bash login shell, hostname dts-guest, eth0 (00:04.0) present and down"

# ---- the tools DTS's vhost/virtio suites run in the guest: iperf, ethtool, tcpdump, vfio ----
out=$(ssh_password 'set -e
    ethtool -i eth0 | grep "^driver:"
    ethtool -k eth0 | grep "tx-tcp-segmentation:"
    (tcpdump -n -c 2 -i lo icmp > /tmp/td.out 2>&1 &)
    sleep 1; ping -c 2 127.0.0.1 >/dev/null; sleep 1; cat /tmp/td.out
    iperf -s -p 5201 >/dev/null 2>&1 & s=$!
    sleep 1; iperf -c 127.0.0.1 -p 5201 -t 1 -f m; kill $s
    ls -d /sys/bus/pci/drivers/vfio-pci /sys/module/vfio/parameters/enable_unsafe_noiommu_mode') || { echo "$out" >&2; fail "iperf/ethtool/tcpdump/vfio in the guest failed"; }
grep -q '^driver: virtio_net' <<<"$out" || { echo "$out" >&2; fail "ethtool -i eth0 does not name virtio_net"; }
grep -q "tx-tcp-segmentation:" <<<"$out" || { echo "$out" >&2; fail "ethtool -k eth0 lists no TSO feature"; }
grep -q 'ICMP echo request' <<<"$out" || { echo "$out" >&2; fail "tcpdump on lo saw no ICMP echo request"; }
grep -q 'Mbits/sec' <<<"$out" || { echo "$out" >&2; fail "iperf over lo reported no rate"; }
grep -q '/sys/bus/pci/drivers/vfio-pci' <<<"$out" || fail "vfio-pci is not loaded"
grep -q 'enable_unsafe_noiommu_mode' <<<"$out" || fail "vfio has no no-IOMMU mode (the rebuilt modules are missing)"
pass "ethtool, tcpdump and iperf work in the guest; vfio-pci is loaded, with vfio's no-IOMMU mode"

# ---- SFTP: password session (commands on stdin: -b would force BatchMode and
# forbid passwords), then a key login with the key uploaded by SFTP, then SFTP
# in batch mode with that key ---------------------------------------------------------
head -c 65536 /dev/urandom > "$tmp/payload"
sftp_pw=("${ssh_pw[@]/#-p/-P}")
sftp_key=("${ssh_key[@]/#-p/-P}")
printf 'put %s /tmp/payload\nget /tmp/payload %s\nput %s .ssh/authorized_keys\n' \
    "$tmp/payload" "$tmp/payload.back" "$tmp/id_ed25519.pub" > "$tmp/sftp.cmds"
DTS_TEST_PASSWORD=$password SSH_ASKPASS="$tmp/askpass" SSH_ASKPASS_REQUIRE=force \
    sftp "${sftp_pw[@]}" "$user@127.0.0.1" <"$tmp/sftp.cmds" >"$tmp/sftp.log" 2>&1 \
    || { cat "$tmp/sftp.log" >&2; fail "SFTP session (password) failed"; }
cmp -s "$tmp/payload" "$tmp/payload.back" || { cat "$tmp/sftp.log" >&2; fail "SFTP round trip changed or lost the file"; }
remote_sum=$(ssh_password sha256sum /tmp/payload | cut -d' ' -f1)
[ "$remote_sum" = "$(sha256sum < "$tmp/payload" | cut -d' ' -f1)" ] || fail "uploaded file has the wrong sha256 in the guest"
pass "SFTP (password) put/get of 64 KiB, checksums match"
out=$(ssh_keyauth id -un) || fail "SSH key login failed (authorized_keys)"
[ "$out" = "$user" ] || fail "key login: id -un says '$out'"
pass "SSH public key login via ~/.ssh/authorized_keys"
printf 'get /tmp/payload %s\n' "$tmp/payload.key" > "$tmp/sftp.batch"
sftp "${sftp_key[@]}" -b "$tmp/sftp.batch" "$user@127.0.0.1" >"$tmp/sftp2.log" 2>&1 </dev/null \
    || { cat "$tmp/sftp2.log" >&2; fail "SFTP batch session (key) failed"; }
cmp -s "$tmp/payload" "$tmp/payload.key" || fail "SFTP (key) get returned different data"
pass "SFTP (key, batch mode) get"

# ---- guest agent ---------------------------------------------------------------
out=$(qga '{"execute":"guest-ping"}') || fail "QGA guest-ping failed"
[ "$out" = "{}" ] || fail "QGA guest-ping returned $out"
pass "QGA guest-ping"
out=$(qga '{"execute":"guest-network-get-interfaces"}') || fail "QGA guest-network-get-interfaces failed"
/usr/bin/python3 -c '
import json, sys
ifs = {i["name"]: i for i in json.loads(sys.argv[1])}
hc = ifs.get("host_connect") or sys.exit("host_connect missing: %s" % sorted(ifs))
addrs = [a["ip-address"] for a in hc.get("ip-addresses", [])]
"10.0.2.15" in addrs or sys.exit("host_connect addresses: %s" % addrs)
' "$out" || fail "guest-network-get-interfaces does not list host_connect with 10.0.2.15"
pass "QGA guest-network-get-interfaces lists host_connect 10.0.2.15"
out=$(qga '{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","echo exec-ok; uname -n"],"capture-output":true}}') \
    || fail "QGA guest-exec failed"
exec_pid=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["pid"])' "$out")
exec_out=
for _ in $(seq 1 50); do
    st=$(qga "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$exec_pid}}") || fail "guest-exec-status failed"
    exec_out=$(/usr/bin/python3 -c '
import base64, json, sys
s = json.loads(sys.argv[1])
if s["exited"]:
    print("rc=%d %s" % (s.get("exitcode", -1), base64.b64decode(s.get("out-data", "")).decode().replace("\n", " ").strip()))
' "$st")
    [ -n "$exec_out" ] && break
    sleep 0.2
done
[ "$exec_out" = "rc=0 exec-ok dts-guest" ] || fail "guest-exec /bin/sh gave '$exec_out'"
pass "QGA guest-exec of /bin/sh"

# ---- DPDK --------------------------------------------------------------------------
if [ "$with_dpdk" = 1 ]; then
    out=$(ssh_password 'set -e
        echo 0000:00:04.0 > /sys/bus/pci/devices/0000:00:04.0/driver/unbind
        echo uio_pci_generic > /sys/bus/pci/devices/0000:00:04.0/driver_override
        echo 0000:00:04.0 > /sys/bus/pci/drivers/uio_pci_generic/bind
        basename "$(readlink /sys/bus/pci/devices/0000:00:04.0/driver)"
        echo 64 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
        grep -q "/dev/hugepages hugetlbfs" /proc/mounts
        printf "show port info 0\nquit\n" | timeout 120 dpdk-testpmd -l 0-1 -m 128 -a 0000:00:04.0 -- -i --total-num-mbufs=2048 2>&1') \
        || { echo "$out" >&2; fail "dpdk-testpmd in the guest failed"; }
    echo "$out" | sed 's/^/    guest: /' | grep -E 'uio_pci_generic|Driver name|EAL: Probe|Bye' || true
    grep -qx 'uio_pci_generic' <<<"$out" || fail "00:04.0 is not bound to uio_pci_generic"
    grep -q 'Driver name: net_virtio' <<<"$out" || { echo "$out" >&2; fail "testpmd did not drive 00:04.0 with net_virtio"; }
    pass "dpdk-testpmd runs on 0000:00:04.0 (uio_pci_generic, net_virtio)"
    out=$(ssh_password 'command -v dpdk-pdump; ls /usr/lib/x86_64-linux-gnu/dpdk/pmds-*/ | grep net_pcap') \
        || { echo "$out" >&2; fail "dpdk-pdump or its net_pcap driver is missing"; }
    pass "dpdk-pdump and net_pcap are in the image"
fi

# ---- shutdown through the guest agent --------------------------------------------
qga '{"execute":"guest-shutdown"}' noreply || fail "QGA guest-shutdown could not be sent"
sd_start=$(date +%s)
while kill -0 "$qemu_pid" 2>/dev/null; do
    [ $(( $(date +%s) - sd_start )) -lt 20 ] || fail "qemu still running 20 s after QGA guest-shutdown"
    sleep 0.2
done
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
rm -f "$tmp/qemu.pid"
pass "QGA guest-shutdown powered the VM off in $(( $(date +%s) - sd_start )) s"
echo "$prog: PASS (boot ${boot_ms} ms with $kernel_file, initrd $(stat -c %s "$output/initrd.img") bytes, with_dpdk=$with_dpdk)"
