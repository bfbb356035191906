#!/usr/bin/env bash
# HTTP/1.1 GET /plaintext: evnet vs hyper, may_minihttp, nginx, Go net/http;
# and hyper on evnet tasks (hyper-evnet, no tokio runtime) vs hyper on tokio.
# Load: wrk -t1 -c$CONNS, once without pipelining, once with $PIPELINE
# requests per write (bench/pipeline.lua), and once with a new connection
# per request (close: -H 'Connection: close', the short-connection workload;
# server CPU per op is then CPU per connection).
#
#   bench/http.sh                        # 3 rounds, 5 s per run
#   ROUNDS=1 SECS=2 bench/http.sh
#   SERVERS="evnet nginx" bench/http.sh  # evnet is the reference, keep it first
#   SERVERS="evnet evnet-proactor hyper" bench/http.sh  # with the io_uring proactor
#   SERVERS="hyper hyper-evnet hyper-evnet-proactor" bench/http.sh  # hyper on evnet
#   TESTS=close SERVERS="evnet-defer nginx-defer evnet nginx" bench/http.sh  # TCP_DEFER_ACCEPT on both
#   TESTS=close SERVERS="evnet nginx hyper go" bench/http.sh  # short connections only
#
# Env: EVNET ROUNDS SECS WARMUP CONNS PIPELINE SERVERS TESTS SERVER_CPU CLIENT_CPU NO_BUILD KEEP_TMP
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${CONNS:=64}"
: "${PIPELINE:=16}"
: "${SERVERS:=evnet hyper may nginx go}"

bench_init http
ensure_peers hyper-plain hyper-evnet may-plain
build_go http

if ! command -v wrk >/dev/null; then
    note "wrk not found (apt-get install wrk)"
    exit 1
fi

NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# server_cmd NAME PORT: sets CMD to the server's command line, or fails.
server_cmd() {
    local addr=127.0.0.1:$2
    case $1 in
    evnet) CMD=("$EVNET" http --addr "$addr" --loops 0) ;;
    evnet-defer) CMD=("$EVNET" http --addr "$addr" --loops 0 --defer-accept 5s) ;;
    evnet-proactor) CMD=("$EVNET" http --addr "$addr" --loops 0 --poller proactor) ;;
    evnet-base) CMD=("$EVNET_BASE" http --addr "$addr" --loops 0) ;;
    evnet-base-proactor) CMD=("$EVNET_BASE" http --addr "$addr" --loops 0 --poller proactor) ;;
    hyper) CMD=("$PEERS_BIN/hyper-plain" --addr "$addr") ;;
    hyper-evnet) CMD=("$PEERS_BIN/hyper-evnet" --addr "$addr") ;;
    hyper-evnet-proactor) CMD=("$PEERS_BIN/hyper-evnet" --addr "$addr" --poller proactor) ;;
    may) CMD=("$PEERS_BIN/may-plain" --addr "$addr") ;;
    go) CMD=(env GOMAXPROCS=1 "$GO_BIN/http" -addr "$addr") ;;
    nginx | nginx-defer)
        local dir=$BENCH_TMP/nginx-$2
        if [[ $2 != 0 ]]; then # port 0: only asking for the command
            mkdir -p "$dir"
            chmod 755 "$dir"
            sed -e "s#@PORT@#$2#g" -e "s#@TMPDIR@#$dir#g" "$BENCH_DIR/nginx/nginx.conf" >"$dir/nginx.conf"
            # nginx-defer: its TCP_DEFER_ACCEPT (`listen ... deferred`), beside evnet-defer.
            [[ $1 == nginx ]] || sed -i 's/ reuseport backlog=/ reuseport deferred backlog=/' "$dir/nginx.conf"
        fi
        CMD=("$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log")
        ;;
    *) return 1 ;;
    esac
}

check_servers
if [[ -z ${SKIPPED[may]:-} && ! -x $PEERS_BIN/may-plain ]]; then
    skip may "may-plain did not build (see bench/README.md)"
fi

# load TEST PORT SECS: run wrk on the client CPU and print its output.
load() {
    local args=(-t1 -c"$CONNS" -d"$3"s --timeout 5s)
    case $1 in
    plain) ;;
    close) args+=(-H 'Connection: close') ;;
    *) args+=(-s "$BENCH_DIR/pipeline.lua") ;;
    esac
    args+=("http://127.0.0.1:$2/plaintext")
    [[ $1 == plain || $1 == close ]] || args+=(-- "$PIPELINE")
    timeout -k 2 $(($3 + 30)) taskset -c "$CLIENT_CPU" wrk "${args[@]}"
}

# close: a new connection per request (short connections).
: "${TESTS:=plain pipelined$PIPELINE close}"

for ((round = 1; round <= ROUNDS; round++)); do
    for t in $TESTS; do
        # shellcheck disable=SC2086 # word lists
        for s in $(rotate $((round - 1)) $SERVERS); do
            [[ -z ${SKIPPED[$s]:-} ]] || continue
            start_named "$s" || continue
            if ((WARMUP > 0)); then
                run_client /dev/null load "$t" "$port" "$WARMUP" 2>/dev/null
            fi
            measure_wrk "$t" "$s" "$round" load "$t" "$port" "$SECS"
        done
    done
done

{
    print_header "http" "wrk -t1 -c$CONNS -d${SECS}s (+${WARMUP}s warm-up) GET /plaintext; plain: one request per write; pipelined$PIPELINE: $PIPELINE requests per write (pipeline.lua); close: Connection: close, a new connection per request; unit: responses"
    print_table "HTTP/1.1 plaintext" "req" "$TESTS" "$SERVERS"
    print_notes
} | tee "$RESULT_MD"
