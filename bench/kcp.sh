#!/usr/bin/env bash
# KCP echo on loopback: evnet kcp-echo against an echo server on the
# reference C KCP (tests/c/kcp_ref.c over ikcp.c, the peer the wire tests
# use; it serves one conversation, so the load is one conversation, closed
# loop). Messages/s and server CPU per message, normal and fast mode.
# Target (issue 15): evnet at most the reference's CPU per message.
#
#   bench/kcp.sh                          # SECS=5 ROUNDS=3 SIZES="64 1024"
#   SECS=2 ROUNDS=1 bench/kcp.sh          # smoke run
#   PIPELINE=16 RESULT_NAME=kcp-pipelined bench/kcp.sh
#       16 messages out at once: the wake-up a message costs in ping-pong
#       (most of the server's CPU here) is shared, so what shows is the
#       protocol's own cost per message
#
# ikcp.c: target/kcp-ref/kcp-0.1.6/kcp (fetched by .ci/run) or KCP_REF_SRC.
# Writes bench/results/kcp.{md,tsv}.
set -uo pipefail # not -e: stop_server reaps servers killed by a signal
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${SIZES:=64 1024}"
: "${MODES:=normal fast}"
: "${PIPELINE:=1}"
: "${KCP_REF_SRC:=$REPO_ROOT/target/kcp-ref/kcp-0.1.6/kcp}"
[[ -f $KCP_REF_SRC/ikcp.c ]] || { echo "kcp.sh: no ikcp.c in $KCP_REF_SRC (run .ci/run once, or set KCP_REF_SRC)" >&2; exit 1; }
[[ -x $EVNET ]] || (cd "$REPO_ROOT" && cargo build --release --bin evnet >&2)
REF=$BENCH_TMP/kcp_ref
gcc -O2 -o "$REF" "$REPO_ROOT/tests/c/kcp_ref.c" "$KCP_REF_SRC/ikcp.c" -I "$KCP_REF_SRC"

bench_init kcp
SERVERS="evnet ikcp"
TESTS=""
for ((round = 1; round <= ROUNDS; round++)); do
    for mode in $MODES; do
        for size in $SIZES; do
            t="$mode-${size}B"
            [[ $TESTS == *"$t "* ]] || TESTS+="$t "
            for s in $SERVERS; do
                log=$BENCH_TMP/$s.log
                if [[ $s == evnet ]]; then
                    port=$(free_port)
                    taskset -c "$SERVER_CPU" "$EVNET" kcp-echo --addr "127.0.0.1:$port" --mode "$mode" </dev/null >"$log" 2>&1 &
                    SERVER_PID=$!
                else
                    # The reference server picks its port and says it; stdin
                    # open keeps it running.
                    rm -f "$BENCH_TMP/ref.in"
                    mkfifo "$BENCH_TMP/ref.in"
                    taskset -c "$SERVER_CPU" "$REF" server 1 "$mode" <"$BENCH_TMP/ref.in" >"$log" 2>&1 &
                    SERVER_PID=$!
                    exec 7>"$BENCH_TMP/ref.in"
                fi
                BENCH_PIDS+=("$SERVER_PID")
                for ((i = 0; i < START_TIMEOUT * 20; i++)); do
                    grep -qE 'listening|^port' "$log" 2>/dev/null && break
                    sleep 0.05
                done
                [[ $s == ikcp ]] && port=$(awk '/^port/ { print $2 }' "$log")
                t0=$(cpu_ticks "$SERVER_PID")
                taskset -c "$CLIENT_CPU" "$EVNET" load kcp "127.0.0.1:$port" --mode "$mode" -c 1 \
                    --size "$size" --pipeline "$PIPELINE" -d "${SECS}s" --json >"$BENCH_TMP/out.json" 2>/dev/null
                t1=$(cpu_ticks "$SERVER_PID")
                [[ $s == ikcp ]] && exec 7>&-
                stop_server "$SERVER_PID"
                read -r n rate < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["requests"], r["throughput"])' "$BENCH_TMP/out.json" 2>/dev/null || echo "0 0")
                record "$t" "$s" "$round" "$rate" "$n" $((t1 - t0)) "$SECS"
            done
        done
    done
done

{
    print_header "kcp" "evnet load kcp: one conversation, closed loop, $PIPELINE message(s) out at once, ${SECS}s per run; unit: messages echoed"
    print_table "KCP echo, evnet kcp-echo vs the reference ikcp.c server" "msgs" "$TESTS" "$SERVERS"
    print_notes
} | tee "$RESULT_MD"
