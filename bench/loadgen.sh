#!/usr/bin/env bash
# Is `evnet load` the bottleneck? evnet load vs wrk, both with one thread,
# against the same server (`evnet http --loops 0`, a fresh one per run) on
# GET /plaintext, without pipelining and with $PIPELINE requests per write.
# Reports each load generator's throughput and its own CPU time per request.
#
#   bench/loadgen.sh
#   ROUNDS=5 SECS=3 bench/loadgen.sh
#
# Env: EVNET ROUNDS SECS CONNS PIPELINE SERVER_CPU CLIENT_CPU KEEP_TMP
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${CONNS:=64}"
: "${PIPELINE:=16}"
CLIENTS="evnet wrk"
TESTS="plain pipelined$PIPELINE"

bench_init loadgen
if ! command -v wrk >/dev/null; then
    note "wrk not found (apt-get install wrk)"
    exit 1
fi
[[ -x $EVNET ]] || { note "evnet not built ($EVNET): cargo build --release"; exit 1; }

# depth TEST: requests per write.
depth() { [[ $1 == plain ]] && echo 1 || echo "$PIPELINE"; }

# load CLIENT TEST PORT: run one load generator on the client CPU.
load() {
    local url=http://127.0.0.1:$3/plaintext
    case $1 in
    wrk)
        local args=(-t1 -c"$CONNS" -d"$SECS"s --timeout 5s)
        [[ $2 == plain ]] || args+=(-s "$BENCH_DIR/pipeline.lua")
        args+=("$url")
        [[ $2 == plain ]] || args+=(-- "$PIPELINE")
        taskset -c "$CLIENT_CPU" wrk "${args[@]}"
        ;;
    evnet)
        taskset -c "$CLIENT_CPU" "$EVNET" load http "$url" -c "$CONNS" -t 1 \
            -d "$SECS"s --pipeline "$(depth "$2")" --json
        ;;
    esac
}

# timed OUT CLIENT TEST PORT: run `load` with its CPU time (user + sys
# seconds, children included) written to OUT.time.
timed() {
    local out=$1
    shift
    local TIMEFORMAT='%3U %3S'
    { time load "$@" >"$out" 2>"$out.err"; } 2>"$out.time"
}

for ((round = 1; round <= ROUNDS; round++)); do
    for t in $TESTS; do
        # shellcheck disable=SC2086 # word lists
        for c in $(rotate $((round - 1)) $CLIENTS); do
            port=$(free_port) || { note "no free port"; exit 1; }
            start_server evnet "$port" "$EVNET" http --addr "127.0.0.1:$port" --loops 0 || exit 1
            w0=$(date +%s.%N)
            run_client /dev/null timed "$BENCH_TMP/load.out" "$c" "$t" "$port"
            rc=$?
            w1=$(date +%s.%N)
            stop_server "$SERVER_PID"
            out=$(cat "$BENCH_TMP/load.out")
            if [[ $c == wrk ]]; then
                reqs=$(awk '/ requests in / { print $1; exit }' <<<"$out")
                rps=$(awk '/^Requests\/sec:/ { print $2; exit }' <<<"$out")
                bad=$(awk '/Non-2xx or 3xx responses:|Socket errors:/ { print; exit }' <<<"$out")
            else
                read -r reqs rps bad < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
bad = d["non_success"] + d["errors"]["total"]
print(d["requests"], d["throughput"], bad if bad else "")
' "$BENCH_TMP/load.out" 2>/dev/null)
            fi
            if ((rc != 0)) || [[ -z ${reqs:-} || -z ${rps:-} || $reqs == 0 ]]; then
                note "$c $t round $round: failed (rc $rc): $(tail -n 3 "$BENCH_TMP/load.out.err" | tr '\n' ' ')"
                continue
            fi
            if [[ -n ${bad:-} ]]; then
                note "$c $t round $round: errors ($bad); sample dropped"
                continue
            fi
            ticks=$(awk -v hz="$CLK_TCK" '{ printf "%.0f", ($1 + $2) * hz }' "$BENCH_TMP/load.out.time")
            wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
            record "$t" "$c" "$round" "$rps" "$reqs" "$ticks" "$wall"
        done
    done
done

{
    print_header "loadgen" "load generators with one thread, $CONNS connections, ${SECS}s, against \`evnet http --loops 0\` on CPU $SERVER_CPU; GET /plaintext; plain: one request per write; pipelined$PIPELINE: $PIPELINE per write; unit: responses; CPU is the load generator's own (user + sys)"
    print_table "evnet load vs wrk" "req" "$TESTS" "$CLIENTS" "client"
    echo "Throughput ratio > 1: evnet load drove more requests through the same server. CPU/op ratio < 1: evnet load spent less CPU per request."
    echo
} | tee "$RESULT_MD"
