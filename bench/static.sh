#!/usr/bin/env bash
# Static files: evnet http --root (epoll and proactor, open-file cache off
# and on) vs nginx (one worker, sendfile on, tcp_nopush on; open_file_cache
# off, and on as a second peer). Load: wrk -t1 -c$CONNS, keep-alive, one
# file per run; every response is checked for status 200 by wrk's count of
# non-2xx responses (a run with any is dropped).
#
#   bench/static.sh                                  # every size, 16 and 256 conns, 3 rounds
#   SIZES="4k" CONNS_LIST=16 ROUNDS=5 bench/static.sh
#   SERVERS="evnet evnet-base nginx" bench/static.sh # before/after (target/base/evnet)
#   STRACE=1 SIZES=4k bench/static.sh                # also: syscalls per request (strace -c)
#
# Env: EVNET ROUNDS SECS WARMUP SIZES CONNS_LIST SERVERS STRACE SERVER_CPU CLIENT_CPU KEEP_TMP
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${SIZES:=4k 64k 1m 64m}"
: "${CONNS_LIST:=16 256}"
: "${SERVERS:=evnet evnet-cache evnet-proactor nginx nginx-cache}"

bench_init static

if ! command -v wrk >/dev/null; then
    note "wrk not found (apt-get install wrk)"
    exit 1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

ROOT=$BENCH_TMP/www
mkdir -p "$ROOT"
chmod 755 "$ROOT"
for s in $SIZES; do
    head -c "$(numfmt --from=iec "${s^^}")" /dev/urandom >"$ROOT/$s.bin"
    chmod 644 "$ROOT/$s.bin"
done

# server_cmd NAME PORT: sets CMD to the server's command line, or fails.
server_cmd() {
    local addr=127.0.0.1:$2
    case $1 in
    evnet) CMD=("$EVNET" http --addr "$addr" --loops 0 --root "$ROOT" --open-file-cache 0) ;;
    evnet-cache) CMD=("$EVNET" http --addr "$addr" --loops 0 --root "$ROOT" --open-file-cache 1000) ;;
    evnet-proactor) CMD=("$EVNET" http --addr "$addr" --loops 0 --root "$ROOT" --poller proactor) ;;
    evnet-base) CMD=("$EVNET_BASE" http --addr "$addr" --loops 0 --root "$ROOT") ;;
    evnet-base-proactor) CMD=("$EVNET_BASE" http --addr "$addr" --loops 0 --root "$ROOT" --poller proactor) ;;
    nginx | nginx-cache)
        local dir=$BENCH_TMP/$1-$2 cache="open_file_cache off;"
        [[ $1 == nginx-cache ]] && cache="open_file_cache max=1000 inactive=60s; open_file_cache_valid 60s;"
        if [[ $2 != 0 ]]; then
            mkdir -p "$dir"
            chmod 755 "$dir"
            sed -e "s#@PORT@#$2#g" -e "s#@TMPDIR@#$dir#g" -e "s#@ROOT@#$ROOT#g" \
                -e "s#@CACHE@#$cache#g" "$BENCH_DIR/nginx/static.conf" >"$dir/nginx.conf"
        fi
        CMD=("$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log")
        ;;
    *) return 1 ;;
    esac
}

check_servers

# load SIZE CONNS PORT SECS: wrk on the client CPU.
load() {
    timeout -k 2 $(($4 + 30)) taskset -c "$CLIENT_CPU" \
        wrk -t1 -c"$2" -d"$4"s --timeout 5s "http://127.0.0.1:$3/$1.bin"
}

# syscalls SERVER SIZE PORT: strace -c the server (threads included) over
# 2,000 requests on one connection; prints calls per request.
syscalls() {
    local pids out
    pids=$(pgrep -P "$SERVER_PID" -d, || true)
    pids=${pids:+$pids,}$SERVER_PID
    timeout 60 strace -f -c -o "$BENCH_TMP/strace.out" -p "$pids" &
    local st=$!
    sleep 0.5
    taskset -c "$CLIENT_CPU" wrk -t1 -c1 -d2s "http://127.0.0.1:$3/$2.bin" >"$BENCH_TMP/strace-wrk.out"
    kill -INT "$st"
    wait "$st"
    local n
    n=$(awk '/ requests in / { print $1; exit }' "$BENCH_TMP/strace-wrk.out")
    note "syscalls per request, $1 $2 ($n requests):"
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { printf "#   %-16s %6.2f\n", $NF, $4 / n; t += $4 }
                   END { printf "#   %-16s %6.2f\n", "total", t / n }' "$BENCH_TMP/strace.out" >&2
}

TESTS=
for s in $SIZES; do for c in $CONNS_LIST; do TESTS+="$s-c$c "; done; done

for ((round = 1; round <= ROUNDS; round++)); do
    for t in $TESTS; do
        size=${t%-c*} conns=${t##*-c}
        # shellcheck disable=SC2046,SC2086
        for s in $(rotate $((round - 1)) $SERVERS); do
            [[ -z ${SKIPPED[$s]:-} ]] || continue
            start_named "$s" || continue
            if [[ -n ${STRACE:-} && $round == 1 && $conns == "${CONNS_LIST%% *}" ]]; then
                syscalls "$s" "$size" "$port"
            fi
            ((WARMUP > 0)) && run_client /dev/null load "$size" "$conns" "$port" "$WARMUP" 2>/dev/null
            measure_wrk "$t" "$s" "$round" load "$size" "$conns" "$port" "$SECS"
        done
    done
done

{
    print_header "static" "wrk -t1 -c{${CONNS_LIST// /,}} -d${SECS}s (+${WARMUP}s warm-up) GET /SIZE.bin, keep-alive; files in a tmpfs-or-disk temp dir, in the page cache; unit: responses"
    print_table "Static files" "req" "$TESTS" "$SERVERS"
    print_notes
} | tee "$RESULT_MD"
