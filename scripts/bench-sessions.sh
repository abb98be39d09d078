#!/usr/bin/env bash
# Session round-trip benchmark: dts (libssh2) vs OpenSSH ControlMaster vs python3-pexpect pxssh;
# then file copy: dts's SFTP copy vs OpenSSH's scp (as it chooses, and held to dts's cipher and MAC), a COPY_MB
# file (default 256) each way, MB/s and ratios.
# Starts a loopback dropbear with key auth for the dtstest user (scripts/setup.d/ssh.sh), runs
# SessionBench, and cleans up (server, key, temp dir) on every exit path.
# Usage: scripts/bench-sessions.sh [iterations]   (default 200; COPY_MB=0 skips the copy, COPY_ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-200}

for prog in /usr/sbin/dropbear /usr/bin/dropbearkey /usr/bin/ssh /usr/bin/scp /usr/bin/ssh-keygen /usr/bin/python3; do
    [[ -x $prog ]] || { echo "missing $prog: run scripts/setup.d/ssh.sh" >&2; exit 1; }
done
/usr/bin/python3 -c 'import pexpect' 2>/dev/null || { echo "python3-pexpect missing: apt-get install -y python3-pexpect" >&2; exit 1; }
id dtstest >/dev/null 2>&1 || { echo "user dtstest missing: run scripts/setup.d/ssh.sh" >&2; exit 1; }

swift build -c release --product SessionBench >&2
bin=$(swift build -c release --product SessionBench --show-bin-path)/SessionBench

work=$(mktemp -d /tmp/dts-bench-sessions.XXXXXX)
auth=/home/dtstest/.ssh/authorized_keys
server_pid=
pubkey=
cleanup() {
    if [[ -n $server_pid ]]; then
        # The server and the per-connection children it forked, by pid.
        for child in $(pgrep -P "$server_pid" || true); do kill -KILL "$child" 2>/dev/null || true; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $pubkey && -f $auth ]]; then
        grep -vxF "$pubkey" "$auth" > "$work/ak" || true
        cat "$work/ak" > "$auth"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

dropbearkey -t ed25519 -f "$work/hostkey" >/dev/null 2>&1
ssh-keygen -q -t ed25519 -N '' -C dts-bench -f "$work/id_ed25519"
pubkey=$(cat "$work/id_ed25519.pub")
echo "$pubkey" >> "$auth"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/sbin/dropbear -F -E -m -r "$work/hostkey" -p "127.0.0.1:$port" -P "$work/dropbear.pid" 2>"$work/dropbear.log" &
server_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done

"$bin" --port "$port" --user dtstest --key "$work/id_ed25519" --workdir "$work" --iterations "$iterations" --pexpect-iterations "$iterations" --copy-mb "${COPY_MB:-256}" --copy-rounds "${COPY_ROUNDS:-3}"
