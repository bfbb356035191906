#!/usr/bin/env bash
# I/O models side by side: the same echo workload against `evnet echo
# --loops 0` run as thread-per-connection, select, poll, epoll LT, epoll ET,
# io_uring LT and ET (readiness), the io_uring proactor (completions), busy
# polling and signal-driven I/O, a forked process per connection, and one
# async task per connection on an epoll loop and on the proactor loop, at
# 10 to 10,000 connections.
#
#   bench/models.sh                          # 3 rounds x 5 s per point
#   ROUNDS=2 SECS=2 bench/models.sh          # a quick look (~5 min)
#   MODELS="epoll-lt epoll-et" CONNS_LIST="100 1000" bench/models.sh
#
# Writes bench/results/models.tsv (raw samples) and models.md (medians);
# then, if it builds, bench/peers/plot-models draws models.svg.
# Env: EVNET ROUNDS SECS WARMUP SIZE MODELS CONNS_LIST SERVER_CPU CLIENT_CPU NO_BUILD KEEP_TMP
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${SIZE:=64}"
: "${MODELS:=processes threads select poll epoll-lt epoll-et uring-lt uring-et proactor busy-poll sigio async async-proactor}"
: "${CONNS_LIST:=10 100 1000 10000}"

# 10,000 client sockets: the client needs the fds too (evnet raises its own
# soft limit to the hard limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

bench_init models
printf 'model\tconns\tround\trate\tmsgs\tcpu_ticks\twall_secs\tp99_us\tnote\n' >"$RAW"
ensure_peers echo-load plot-models
LOAD=$PEERS_BIN/echo-load
[[ -x $LOAD ]] || { note "echo-load is missing ($LOAD): build bench/peers first"; exit 1; }
[[ -x $EVNET ]] || { note "evnet is missing ($EVNET): cargo build --release"; exit 1; }

model_args() {
    case $1 in
    processes) ARGS=(--model processes) ;;
    threads) ARGS=(--model threads) ;;
    async) ARGS=(--model async --poller epoll) ;;
    async-proactor) ARGS=(--model async --poller proactor) ;;
    select) ARGS=(--poller select) ;;
    poll) ARGS=(--poller poll) ;;
    epoll-lt) ARGS=(--poller epoll --trigger level) ;;
    epoll-et) ARGS=(--poller epoll --trigger edge) ;;
    uring-lt) ARGS=(--poller uring --trigger level) ;;
    uring-et) ARGS=(--poller uring --trigger edge) ;;
    proactor) ARGS=(--poller proactor) ;;
    busy-poll) ARGS=(--poller busy-poll) ;;
    sigio) ARGS=(--poller sigio) ;;
    *) return 1 ;;
    esac
}

json_field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }

# load PORT CONNS SECS: echo-load on the client CPU (connecting 10,000
# sockets takes a while: the timeout allows for it).
load() {
    timeout -k 2 $(($3 + 60)) taskset -c "$CLIENT_CPU" \
        "$LOAD" --addr "127.0.0.1:$1" --conns "$2" --size "$SIZE" --secs "$3"
}

declare -A FAILED=() # "model conns" -> note; later rounds skip it

fail() {
    FAILED["$1 $2"]=$4
    printf '%s\t%s\t%s\t\t\t\t\t\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"
    note "$1 at $2 connections, round $3: $4"
}

for ((round = 1; round <= ROUNDS; round++)); do
    for conns in $CONNS_LIST; do
        # shellcheck disable=SC2086
        for m in $(rotate $((round - 1)) $MODELS); do
            model_args "$m" || { note "unknown model $m"; continue; }
            [[ -z ${FAILED["$m $conns"]:-} ]] || continue
            # select(2) cannot watch fd >= FD_SETSIZE (1024); evnet refuses
            # such connections rather than corrupt memory.
            if [[ $m == select ]] && ((conns + 16 > 1024)); then
                fail "$m" "$conns" "$round" "n/a (FD_SETSIZE)"
                continue
            fi
            port=$(free_port) || { note "no free port"; exit 1; }
            if ! start_server "$m" "$port" "$EVNET" echo --addr "127.0.0.1:$port" --loops 0 "${ARGS[@]}"; then
                fail "$m" "$conns" "$round" "server failed to start"
                continue
            fi
            if ((WARMUP > 0)); then
                run_client /dev/null load "$port" "$conns" "$WARMUP" 2>/dev/null
            fi
            t0=$(cpu_ticks "$SERVER_PID")
            w0=$(date +%s.%N)
            run_client "$BENCH_TMP/load.out" load "$port" "$conns" "$SECS" 2>"$BENCH_TMP/load.err"
            rc=$?
            w1=$(date +%s.%N)
            t1=$(cpu_ticks "$SERVER_PID")
            alive=1
            proc_alive "$SERVER_PID" || alive=0
            stop_server "$SERVER_PID"
            out=$(<"$BENCH_TMP/load.out")
            msgs=$(json_field messages "$out")
            rate=$(json_field rate "$out")
            p99=$(json_field p99_us "$out")
            if ((rc != 0)) || [[ -z $msgs || -z $rate ]]; then
                why=$(tr '\n' ' ' <"$BENCH_TMP/load.err" | cut -c1-120)
                ((alive)) || why="server died; $why"
                fail "$m" "$conns" "$round" "failed (${why:-rc $rc})"
                continue
            fi
            wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n' "$m" "$conns" "$round" "$rate" "$msgs" $((t1 - t0)) "$wall" "$p99" >>"$RAW"
            note "$m $conns conns round $round: $(printf '%.0f' "$rate") msgs/s, p99 ${p99} us"
        done
    done
done

# col MODEL CONNS FIELD: sample values (rate, cpu_us, p99) of successful runs.
col() {
    awk -F'\t' -v m="$1" -v c="$2" -v f="$3" -v hz="$CLK_TCK" '
        NR > 1 && $1 == m && $2 == c && $4 != "" {
            if (f == "rate") print $4
            else if (f == "cpu_us" && $5 > 0) printf "%.6f\n", $6 * 1e6 / hz / $5
            else if (f == "p99") print $8
        }' "$RAW"
}

{
    print_header "I/O models" "echo-load: ping-pong, ${SIZE}-byte messages, ${SECS}s per run (+${WARMUP}s warm-up); server: \`evnet echo --loops 0\` plus the model's flags; medians of the rounds"
    echo "| model | connections | msgs/s | server CPU µs/msg | p99 latency µs | rounds |"
    echo "|---|---:|---:|---:|---:|---:|"
    for m in $MODELS; do
        for c in $CONNS_LIST; do
            rates=$(col "$m" "$c" rate)
            n=$(printf '%s' "$rates" | grep -c . || true)
            if ((n == 0)); then
                why=$(awk -F'\t' -v m="$m" -v c="$c" 'NR > 1 && $1 == m && $2 == c && $9 != "" { print $9; exit }' "$RAW")
                echo "| $m | $c | ${why:-—} | | | 0 |"
                continue
            fi
            # shellcheck disable=SC2086,SC2046
            printf '| %s | %s | %.0f | %.2f | %.0f | %d |\n' "$m" "$c" "$(median $rates)" \
                "$(median $(col "$m" "$c" cpu_us))" "$(median $(col "$m" "$c" p99))" "$n"
        done
    done
    echo
    echo "Server CPU µs/msg: the server's user+system CPU time over the messages echoed (one send + one full echo)."
    echo "A busy-poll server burns its whole core whatever the load, so its CPU/msg is high at low load by design."
    echo
} | tee "$RESULT_MD"

PLOT=$PEERS_BIN/plot-models
if [[ -x $PLOT ]]; then
    "$PLOT" "$RAW" "$RESULTS_DIR/models.svg" || note "plot-models failed"
else
    note "plot-models is missing: no chart"
fi
