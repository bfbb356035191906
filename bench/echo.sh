#!/usr/bin/env bash
# TCP echo: evnet (epoll, and the io_uring proactor; callbacks, and one async
# task per connection) vs tokio (current-thread) vs monoio (io_uring) vs Go
# (GOMAXPROCS=1).
# Load: echo-load (bench/peers), CONNS ping-pong connections per size.
#
#   bench/echo.sh                      # 3 rounds, 5 s, 50 conns, 64 B and 1 KiB
#   ROUNDS=1 SECS=2 bench/echo.sh
#   SERVERS="tokio go" bench/echo.sh   # evnet is the reference, keep it first
#   SERVERS="evnet-async-proactor evnet-async tokio monoio go evnet evnet-proactor" bench/echo.sh
#
# Env: EVNET EVNET_BASE ROUNDS SECS WARMUP CONNS SIZES SERVERS SERVER_CPU CLIENT_CPU NO_BUILD KEEP_TMP
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${CONNS:=50}"
: "${SIZES:=64 1024}"
: "${SERVERS:=evnet evnet-proactor tokio go}"

bench_init echo
ensure_peers echo-load tokio-echo monoio-echo
build_go echo

LOAD=$PEERS_BIN/echo-load
if [[ ! -x $LOAD ]]; then
    note "echo-load is missing ($LOAD): build bench/peers first"
    exit 1
fi

# server_cmd NAME PORT: sets CMD to the server's command line, or fails.
server_cmd() {
    local addr=127.0.0.1:$2
    case $1 in
    evnet) CMD=("$EVNET" echo --addr "$addr" --loops 0) ;;
    evnet-proactor) CMD=("$EVNET" echo --addr "$addr" --loops 0 --poller proactor) ;;
    evnet-base) CMD=("$EVNET_BASE" echo --addr "$addr" --loops 0) ;;
    evnet-base-proactor) CMD=("$EVNET_BASE" echo --addr "$addr" --loops 0 --poller proactor) ;;
    evnet-async) CMD=("$EVNET" echo --addr "$addr" --loops 0 --model async) ;;
    evnet-async-proactor) CMD=("$EVNET" echo --addr "$addr" --loops 0 --model async --poller proactor) ;;
    tokio) CMD=("$PEERS_BIN/tokio-echo" --addr "$addr") ;;
    monoio) CMD=("$PEERS_BIN/monoio-echo" --addr "$addr") ;;
    go) CMD=(env GOMAXPROCS=1 "$GO_BIN/echo" -addr "$addr") ;;
    *) return 1 ;;
    esac
}

check_servers

# load PORT SIZE SECS: run echo-load on the client CPU, print its JSON line.
load() {
    timeout -k 2 $(($3 + 30)) taskset -c "$CLIENT_CPU" \
        "$LOAD" --addr "127.0.0.1:$1" --conns "$CONNS" --size "$2" --secs "$3"
}

json_field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }

TESTS=""
for size in $SIZES; do TESTS+="${size}B "; done

for ((round = 1; round <= ROUNDS; round++)); do
    for size in $SIZES; do
        # shellcheck disable=SC2086 # word lists
        for s in $(rotate $((round - 1)) $SERVERS); do
            [[ -z ${SKIPPED[$s]:-} ]] || continue
            start_named "$s" || continue
            if ((WARMUP > 0)); then
                run_client /dev/null load "$port" "$size" "$WARMUP" 2>/dev/null
            fi
            t0=$(cpu_ticks "$SERVER_PID")
            w0=$(date +%s.%N)
            run_client "$BENCH_TMP/load.out" load "$port" "$size" "$SECS" 2>"$BENCH_TMP/load.err"
            rc=$?
            out=$(<"$BENCH_TMP/load.out")
            w1=$(date +%s.%N)
            t1=$(cpu_ticks "$SERVER_PID")
            stop_server "$SERVER_PID"
            msgs=$(json_field messages "$out")
            rate=$(json_field rate "$out")
            if ((rc != 0)) || [[ -z $msgs || -z $rate ]]; then
                note "$s ${size}B round $round: load failed (rc $rc): $(tr '\n' ' ' <"$BENCH_TMP/load.err")"
                continue
            fi
            wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
            record "${size}B" "$s" "$round" "$rate" "$msgs" $((t1 - t0)) "$wall"
        done
    done
done

{
    print_header "echo" "echo-load: $CONNS connections, ping-pong, ${SECS}s per run (+${WARMUP}s warm-up), message sizes: $SIZES bytes; unit: messages (one send + one full echo)"
    print_table "TCP echo" "msgs" "$TESTS" "$SERVERS"
    if [[ " $SERVERS " == *" evnet-proactor "* ]]; then
        # The same samples, with the proactor as the reference.
        others=$(tr ' ' '\n' <<<"$SERVERS" | grep -vx -e evnet -e evnet-proactor | tr '\n' ' ')
        print_table "TCP echo, io_uring proactor as the reference" "msgs" "$TESTS" "evnet-proactor $others"
    fi
    print_notes
} | tee "$RESULT_MD"
