#!/usr/bin/env bash
# The graceful upgrade (SIGUSR2), measured:
#  1. requests/s of `evnet load http` in steady state vs during a window in
#     which the server is upgraded every UPGRADE_EVERY seconds (errors too:
#     there should be none);
#  2. the time from SIGUSR2 to the old process's exit while IDLE idle
#     keep-alive connections (each has done one request) are open on it
#     (the drain closes idle keep-alive connections after 100 ms).
#
#   bench/upgrade.sh                      # 10 s per load run, 1,000 idle connections
#   SECS=2 IDLE=100 bench/upgrade.sh      # smoke run
#
# Env: EVNET SECS CONNS IDLE UPGRADE_EVERY LOOPS SERVER_CPU CLIENT_CPU
set -euo pipefail
cd "$(dirname "$0")/.."

: "${EVNET:=$PWD/target/release/evnet}"
: "${SECS:=10}"
: "${CONNS:=64}"
: "${IDLE:=1000}"
: "${UPGRADE_EVERY:=1}"
: "${LOOPS:=0}"
: "${SERVER_CPU:=0}"
: "${CLIENT_CPU:=1}"

[[ -x $EVNET ]] || { echo "no $EVNET (cargo build --release)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'kill -9 $(cat "$tmp/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$tmp"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c "$SERVER_CPU" "$EVNET" http --addr "127.0.0.1:$port" --loops "$LOOPS" \
    --pid-file "$tmp/pid" >"$tmp/out" 2>"$tmp/err" &
for _ in $(seq 100); do [[ -s $tmp/pid ]] && break; sleep 0.1; done
[[ -s $tmp/pid ]] || { echo "evnet did not start: $(cat "$tmp/err")" >&2; exit 1; }

field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

load() {
    taskset -c "$CLIENT_CPU" "$EVNET" load http "http://127.0.0.1:$port/plaintext" \
        -c "$CONNS" -d "${SECS}s" --json >"$1"
}

# alive PID: running (an exited process can linger as a zombie until its
# parent, possibly init, reaps it).
alive() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [[ ${st:0:1} != Z && ${st:0:1} != X ]]
}

# Wait until the pid file names another process than $1 and $1 has exited;
# print the seconds that took since $2 (date +%s.%N).
wait_handover() {
    local old=$1 t0=$2
    for _ in $(seq 2000); do
        local now
        now=$(cat "$tmp/pid" 2>/dev/null || echo "$old")
        if [[ $now != "$old" ]] && ! alive "$old"; then
            python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.3f}')" "$t0"
            return 0
        fi
        sleep 0.005
    done
    echo "timeout"
    return 1
}

load "$tmp/steady.json"
load "$tmp/upgrading.json" &
lp=$!
upgrades=0
end=$(($(date +%s) + SECS))
sleep 0.5
while (($(date +%s) < end - 1)); do
    old=$(cat "$tmp/pid")
    kill -USR2 "$old"
    wait_handover "$old" "$(date +%s.%N)" >/dev/null
    upgrades=$((upgrades + 1))
    sleep "$UPGRADE_EVERY"
done
wait "$lp"

steady=$(field "$tmp/steady.json" 'r["throughput"]')
during=$(field "$tmp/upgrading.json" 'r["throughput"]')
errors=$(field "$tmp/upgrading.json" 'r["errors"]["total"]')
non2xx=$(field "$tmp/upgrading.json" 'r["non_success"]')

# Idle keep-alive connections on the serving process, then one upgrade.
python3 - "$port" "$IDLE" "$tmp" <<'PY' &
import socket, sys, time, os
port, n, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: b\r\n\r\n")
    got = b""
    while b"Hello, World!" not in got:
        got += s.recv(4096)
    conns.append(s)
open(os.path.join(tmp, "idle-ready"), "w").close()
# Hold them until the old process closes them (each read sees EOF), and
# close in turn as a client does (the server's close waits for our FIN).
for s in conns:
    s.settimeout(60)
    s.recv(1)
    s.close()
PY
idle_pid=$!
for _ in $(seq 600); do [[ -e $tmp/idle-ready ]] && break; sleep 0.1; done
old=$(cat "$tmp/pid")
t0=$(date +%s.%N)
kill -USR2 "$old"
exit_secs=$(wait_handover "$old" "$t0")
wait "$idle_pid" || true

echo "### evnet upgrade (SIGUSR2), evnet http --loops $LOOPS"
echo
echo "| measure | value |"
echo "|---|---:|"
printf '| req/s steady (evnet load -c%s, %ss) | %.0f |\n' "$CONNS" "$SECS" "$steady"
printf '| req/s with an upgrade every %ss (%s upgrades) | %.0f |\n' "$UPGRADE_EVERY" "$upgrades" "$during"
printf '| during / steady | %.2f |\n' "$(python3 -c "print($during/$steady)")"
printf '| errors / non-2xx during the upgrades | %s / %s |\n' "$errors" "$non2xx"
printf '| SIGUSR2 to old process exit, %s idle keep-alive connections | %s s |\n' "$IDLE" "$exit_secs"
