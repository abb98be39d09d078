#!/usr/bin/env bash
# Session round-trip benchmark: dts (libssh2) vs OpenSSH ControlMaster vs python3-pexpect pxssh;
# then file copy: dts's SFTP copy vs OpenSSH's scp (as it chooses, and held to dts's cipher and MAC), a COPY_MB
# file (default 256) each way, MB/s and ratios, against the dropbear and again against a loopback OpenSSH sshd
# (what labs' DUTs run).
# Starts a loopback dropbear and a private OpenSSH sshd (own port, host key, config, pid file) with key auth for
# the dtstest user (scripts/setup.d/ssh.sh), runs SessionBench, and cleans up (servers, key, temp dir) on every
# exit path.
# Usage: scripts/bench-sessions.sh [iterations]   (default 200; COPY_MB=0 skips the copy, COPY_ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-200}

for prog in /usr/sbin/dropbear /usr/sbin/sshd /usr/lib/openssh/sftp-server /usr/bin/dropbearkey /usr/bin/ssh /usr/bin/scp /usr/bin/ssh-keygen /usr/bin/python3; do
    [[ -x $prog ]] || { echo "missing $prog: run scripts/setup.d/ssh.sh" >&2; exit 1; }
done
/usr/bin/python3 -c 'import pexpect' 2>/dev/null || { echo "python3-pexpect missing: apt-get install -y python3-pexpect" >&2; exit 1; }
id dtstest >/dev/null 2>&1 || { echo "user dtstest missing: run scripts/setup.d/ssh.sh" >&2; exit 1; }

swift build -c release --product SessionBench >&2
bin=$(swift build -c release --product SessionBench --show-bin-path)/SessionBench

work=$(mktemp -d /tmp/dts-bench-sessions.XXXXXX)
auth=/home/dtstest/.ssh/authorized_keys
server_pid=
sshd_pid=
bench_pid=
bench_running=
pubkey=
# The descendants of a process, by pid, parents before children.
descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}
# Kills a server's per-connection processes (all depths: sshd's session processes and sftp-server), lets the
# server reap them, then kills the server itself.
stop_server() {
    local pid=$1
    [[ -n $pid ]] || return 0
    local tree
    tree=$(descendants "$pid")
    if [[ -n $tree ]]; then
        # shellcheck disable=SC2086 # one pid per word
        kill -KILL $tree 2>/dev/null || true
        sleep 0.2
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    # SessionBench runs in the background (its pid names its remote files) and so ignores SIGINT: stop it here.
    if [[ -n $bench_running ]]; then
        kill -KILL "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    stop_server "$server_pid"
    stop_server "$sshd_pid"
    # The copy's remote files (SessionBench removes them itself unless it was killed).
    if [[ -n $bench_pid ]]; then rm -f "/tmp/dts-bench-copy-$bench_pid-dts" "/tmp/dts-bench-copy-$bench_pid-scp"; fi
    if [[ -n $pubkey && -f $auth ]]; then
        grep -vxF "$pubkey" "$auth" > "$work/ak" || true
        cat "$work/ak" > "$auth"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap runs (bash skips it when a signal kills it).
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

dropbearkey -t ed25519 -f "$work/hostkey" >/dev/null 2>&1
ssh-keygen -q -t ed25519 -N '' -C dts-bench -f "$work/id_ed25519"
pubkey=$(cat "$work/id_ed25519.pub")
echo "$pubkey" >> "$auth"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "no server on 127.0.0.1:$1" >&2
    return 1
}
port=$(free_port)
/usr/sbin/dropbear -F -E -m -r "$work/hostkey" -p "127.0.0.1:$port" -P "$work/dropbear.pid" 2>"$work/dropbear.log" &
server_pid=$!
wait_port "$port"

# OpenSSH sshd, private: nothing of the system's sshd config, keys or pid file is used.
sshd_port=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host_ed25519"
cat > "$work/sshd_config" <<EOF
ListenAddress 127.0.0.1:$sshd_port
HostKey $work/sshd_host_ed25519
PidFile $work/sshd.pid
AuthorizedKeysFile $auth
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
AllowUsers dtstest
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
mkdir -p /run/sshd
# sshd's per-connection processes orphan a child each; PID 1 here does not reap orphans, so each connection would
# leave an <defunct> sshd behind. As a child subreaper (prctl PR_SET_CHILD_SUBREAPER, kept across exec) sshd
# gets those orphans itself and reaps them.
/usr/bin/python3 -c 'import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0: sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
os.execv(sys.argv[1], sys.argv[1:])' /usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
sshd_pid=$!
wait_port "$sshd_port"

"$bin" --port "$port" --user dtstest --key "$work/id_ed25519" --workdir "$work" --iterations "$iterations" --pexpect-iterations "$iterations" --copy-mb "${COPY_MB:-256}" --copy-rounds "${COPY_ROUNDS:-3}" \
    --sshd-port "$sshd_port" &
bench_pid=$!
bench_running=1
bench_status=0
wait "$bench_pid" || bench_status=$?
bench_running=
exit "$bench_status"
