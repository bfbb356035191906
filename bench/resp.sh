#!/usr/bin/env bash
# RESP (Redis protocol): evnet's resp server vs redis-server.
# Load: redis-benchmark -P $PIPELINE -c $CONNS -n $REQUESTS, SET and GET
# measured as separate runs (so each gets its own server CPU figure).
#
#   bench/resp.sh                        # 3 rounds, 1,000,000 requests per test
#   ROUNDS=1 REQUESTS=200000 bench/resp.sh
#   RESP_TESTS="set get incr lpush lpop sadd hset spop zadd lrange_100" \
#     SERVERS="evnet evnet-proactor redis" bench/resp.sh   # issue 16's set
#
# KEYSPACE=N passes -r N: keys, fields and scores drawn from N random values
# (without it every request names the same key, and ZADD's score is the
# literal "__rand_int__", an error reply on both servers).
#
# Env: EVNET ROUNDS REQUESTS CONNS PIPELINE WARMUP SERVERS SERVER_CPU CLIENT_CPU KEEP_TMP
#      RESP_TESTS KEYSPACE
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${REQUESTS:=1000000}"
: "${CONNS:=50}"
: "${PIPELINE:=16}"
: "${SERVERS:=evnet redis}"
: "${RESP_TESTS:=set get}"
# redis-benchmark gets this many seconds per run before it is killed (it
# spins forever, for one, when it cannot connect).
: "${LOAD_TIMEOUT:=120}"

bench_init resp

for tool in redis-benchmark redis-server; do
    if ! command -v "$tool" >/dev/null; then
        note "$tool not found (apt-get install redis-tools redis-server)"
        [[ $tool == redis-benchmark ]] && exit 1
    fi
done

# server_cmd NAME PORT: sets CMD to the server's command line, or fails.
server_cmd() {
    case $1 in
    evnet) CMD=("$EVNET" resp --addr "127.0.0.1:$2" --loops 0) ;;
    evnet-proactor) CMD=("$EVNET" resp --addr "127.0.0.1:$2" --loops 0 --poller proactor) ;;
    evnet-base) CMD=("$EVNET_BASE" resp --addr "127.0.0.1:$2" --loops 0) ;;
    redis) CMD=("$(command -v redis-server || echo /usr/bin/redis-server)" --port "$2" --bind 127.0.0.1
        --save '' --appendonly no --daemonize no --protected-mode no --logfile '') ;;
    *) return 1 ;;
    esac
}

check_servers

# load TEST PORT N: redis-benchmark on the client CPU, CSV output.
load() {
    timeout -k 2 "$LOAD_TIMEOUT" taskset -c "$CLIENT_CPU" \
        redis-benchmark -h 127.0.0.1 -p "$2" -P "$PIPELINE" -c "$CONNS" -t "$1" -n "$3" \
        ${KEYSPACE:+-r "$KEYSPACE"} --csv
}

# Warm-up requests: roughly WARMUP seconds at a guessed 100k requests/s.
WARM_N=$((WARMUP * 100000))

for ((round = 1; round <= ROUNDS; round++)); do
    for t in $RESP_TESTS; do
        T=$(tr '[:lower:]' '[:upper:]' <<<"$t")
        # shellcheck disable=SC2086 # word lists
        for s in $(rotate $((round - 1)) $SERVERS); do
            [[ -z ${SKIPPED[$s]:-} ]] || continue
            start_named "$s" || continue
            if ((WARM_N > 0)); then
                run_client /dev/null load "$t" "$port" "$WARM_N" 2>/dev/null
            fi
            t0=$(cpu_ticks "$SERVER_PID")
            w0=$(date +%s.%N)
            run_client "$BENCH_TMP/load.out" load "$t" "$port" "$REQUESTS" 2>"$BENCH_TMP/load.err"
            rc=$?
            out=$(<"$BENCH_TMP/load.out")
            w1=$(date +%s.%N)
            t1=$(cpu_ticks "$SERVER_PID")
            stop_server "$SERVER_PID"
            # CSV: "test","rps",... header, then e.g. "SET","173913.05",...
            rps=$(awk -F'"' -v t="$T" '$2 == t || index($2, t " ") == 1 { print $4; exit }' <<<"$out")
            if ((rc != 0)) || [[ -z $rps ]]; then
                note "$s $t round $round: redis-benchmark failed (rc $rc): $(tr '\n' ' ' <"$BENCH_TMP/load.err" | tail -c 300)"
                continue
            fi
            wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
            record "$t" "$s" "$round" "$rps" "$REQUESTS" $((t1 - t0)) "$wall"
        done
    done
done

{
    print_header "resp" "redis-benchmark -P $PIPELINE -c $CONNS -n $REQUESTS${KEYSPACE:+ -r $KEYSPACE} (+$WARM_N warm-up requests), one run per command ($RESP_TESTS); unit: commands"
    print_table "RESP" "ops" "$RESP_TESTS" "$SERVERS"
    print_notes
} | tee "$RESULT_MD"
