#!/usr/bin/env bash
# UDP echo throughput and server CPU per datagram: evnet udp-echo with
# batching on (recvmmsg/sendmmsg + GRO/GSO: --batch auto), with mmsg only,
# and off (one recvfrom/sendto per datagram), against a plain C
# recvfrom/sendto loop (bench/udp/udp_plain.c), and an io_uring echo server
# (bench/udp/udp_uring.c: provided buffer ring, multishot recvmsg, sendmsg
# with UDP_SEGMENT; needs liburing-dev, left out with a note without it).
# The load is
# bench/udp/udp_blast.c: WINDOW datagrams in flight, sendmmsg/recvmmsg.
# Server on CPU $SERVER_CPU, client on $CLIENT_CPU; one server loop.
#
#   bench/udp.sh                      # SECS=5 ROUNDS=3 SIZES="64 1200"
#   SECS=2 ROUNDS=1 bench/udp.sh      # smoke run
#   CLIENT_OFFLOAD=gso RESULT_NAME=udp-client-gso bench/udp.sh
#
# Writes bench/results/udp.{md,tsv}. Target (issue 15): batching at least
# 2x fewer server CPU microseconds per datagram than one call per datagram.
set -uo pipefail  # not -e: stop_server reaps servers killed by a signal (non-zero wait)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${SIZES:=64 1200}"
: "${WINDOW:=64}"
# CLIENT_OFFLOAD: what the client's kernel does for it.
#   none: one datagram per message each way (the default);
#   gro:  the client takes echoes with UDP GRO (a GSO burst from the server
#         arrives whole, as through a NIC that segments in hardware);
#   gso:  gro, and the client sends its bursts with UDP GSO (UDP_SEGMENT),
#         as QUIC stacks do, so a server with GRO reads a burst at once.
: "${CLIENT_OFFLOAD:=none}"
GRO_ARG=()
[[ $CLIENT_OFFLOAD == none ]] || GRO_ARG=("$CLIENT_OFFLOAD")
SERVERS="evnet-batch evnet-mmsg evnet-nobatch plain uring"

[[ -x $EVNET ]] || (cd "$REPO_ROOT" && cargo build --release --bin evnet >&2)
TOOLS=$BENCH_TMP/udp
mkdir -p "$TOOLS"
gcc -O2 -o "$TOOLS/udp_plain" "$BENCH_DIR/udp/udp_plain.c"
gcc -O2 -o "$TOOLS/udp_blast" "$BENCH_DIR/udp/udp_blast.c"
# uring: io_uring with GSO replies and IORING_SETUP_DEFER_TASKRUN (the
# cheapest variant in bench/results/udp-uring.md).
if [[ " $SERVERS " == *" uring "* ]] &&
    ! gcc -O2 -o "$TOOLS/udp_uring" "$BENCH_DIR/udp/udp_uring.c" -luring 2>"$TOOLS/uring.err"; then
    note "leaving out uring: bench/udp/udp_uring.c did not build (liburing-dev missing?): $(grep -m 1 -i error "$TOOLS/uring.err")"
    SERVERS=$(sed 's/ *\buring\b//' <<<"$SERVERS")
fi

bench_init udp

server_cmd() { # NAME PORT
    case $1 in
    evnet-batch) echo "$EVNET udp-echo --addr 127.0.0.1:$2 --loops 1 --batch auto" ;;
    evnet-mmsg) echo "$EVNET udp-echo --addr 127.0.0.1:$2 --loops 1 --batch mmsg" ;;
    evnet-nobatch) echo "$EVNET udp-echo --addr 127.0.0.1:$2 --loops 1 --batch off" ;;
    plain) echo "$TOOLS/udp_plain $2" ;;
    uring) echo "$TOOLS/udp_uring $2 gso defer" ;;
    esac
}

# udp_up PORT PID: wait (bounded) until something is bound to udp PORT.
udp_up() {
    local i
    for ((i = 0; i < START_TIMEOUT * 20; i++)); do
        ss -Hulnp "sport = :$1" 2>/dev/null | grep -q . && return 0
        proc_alive "$2" || return 1
        sleep 0.05
    done
    return 1
}

for ((round = 1; round <= ROUNDS; round++)); do
    for size in $SIZES; do
        for s in $SERVERS; do
            port=$(free_port)
            # shellcheck disable=SC2046
            taskset -c "$SERVER_CPU" $(server_cmd "$s" "$port") </dev/null >"$BENCH_TMP/$s.log" 2>&1 &
            SERVER_PID=$!
            BENCH_PIDS+=("$SERVER_PID")
            if ! udp_up "$port" "$SERVER_PID"; then
                note "$s did not start: $(tail -n 2 "$BENCH_TMP/$s.log" | tr '\n' ' ')"
                stop_server "$SERVER_PID"
                continue
            fi
            ((WARMUP > 0)) && taskset -c "$CLIENT_CPU" "$TOOLS/udp_blast" "$port" "$size" "$WARMUP" "$WINDOW" "${GRO_ARG[@]}" >/dev/null
            t0=$(cpu_ticks "$SERVER_PID")
            read -r n wall < <(taskset -c "$CLIENT_CPU" "$TOOLS/udp_blast" "$port" "$size" "$SECS" "$WINDOW" "${GRO_ARG[@]}")
            t1=$(cpu_ticks "$SERVER_PID")
            stop_server "$SERVER_PID"
            rate=$(awk -v n="$n" -v w="$wall" 'BEGIN { printf "%.1f", n / w }')
            record "${size}B" "$s" "$round" "$rate" "$n" $((t1 - t0)) "$wall"
        done
    done
done

TESTS=$(for s in $SIZES; do printf '%sB ' "$s"; done)
{
    print_header "udp" "udp_blast: $WINDOW datagrams in flight (client offload: $CLIENT_OFFLOAD), ${SECS}s per run (+${WARMUP}s warm-up), sizes: $SIZES bytes; unit: datagrams echoed; one server loop"
    print_table "UDP echo, batched (recvmmsg/sendmmsg + GRO/GSO) as the reference" "dgrams" "$TESTS" "$SERVERS"
    print_notes
} | tee "$RESULT_MD"
