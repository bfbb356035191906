#!/usr/bin/env bash
# HTTPS: evnet vs nginx (one worker) and hyper on tokio-rustls, all with the
# same ECDSA P-256 certificate, TLS 1.3, the same plaintext route.
#
#   full:     a new connection and a full handshake per request
#             (openssl s_time -new: one GET /plaintext per connection)
#   resumed:  a new connection per request, resuming the session
#             (openssl s_time -reuse)
#   plain:    keep-alive requests, one per write (wrk -t1 -c$CONNS https://)
#   pipelined$PIPELINE: keep-alive, $PIPELINE requests per write
#
#   bench/tls.sh                          # 3 rounds, 5 s per run
#   ROUNDS=1 SECS=2 bench/tls.sh
#   SERVERS="evnet nginx" bench/tls.sh    # evnet first: it is the reference
#
# s_time runs one connection at a time, so the client is the bottleneck in
# the handshake tests: compare server CPU per handshake there.
#
# Env: EVNET ROUNDS SECS WARMUP CONNS PIPELINE SERVERS SERVER_CPU CLIENT_CPU NO_BUILD KEEP_TMP
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${CONNS:=64}"
: "${PIPELINE:=16}"
: "${SERVERS:=evnet nginx hyper-tls}"
: "${TESTS:=full resumed plain pipelined$PIPELINE}"

bench_init tls
ensure_peers hyper-tls

for tool in wrk openssl; do
    command -v $tool >/dev/null || { note "$tool not found (apt-get install $tool)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# One certificate for every server: ECDSA P-256, for 127.0.0.1 and localhost.
CERT=$BENCH_TMP/cert.pem
KEY=$BENCH_TMP/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$KEY" -out "$CERT" 2>/dev/null || { note "openssl req failed"; exit 1; }
chmod 644 "$KEY"

server_cmd() {
    local addr=127.0.0.1:$2
    case $1 in
    evnet) CMD=("$EVNET" http --addr "$addr" --loops 0 --tls-cert "$CERT" --tls-key "$KEY") ;;
    evnet-proactor) CMD=("$EVNET" http --addr "$addr" --loops 0 --poller proactor --tls-cert "$CERT" --tls-key "$KEY") ;;
    hyper-tls) CMD=("$PEERS_BIN/hyper-tls" --addr "$addr" --cert "$CERT" --key "$KEY") ;;
    nginx)
        local dir=$BENCH_TMP/nginx-$2
        if [[ $2 != 0 ]]; then
            mkdir -p "$dir"
            chmod 755 "$dir"
            sed -e "s#@PORT@#$2#g" -e "s#@TMPDIR@#$dir#g" -e "s#@CERT@#$CERT#g" -e "s#@KEY@#$KEY#g" \
                "$BENCH_DIR/nginx/tls.conf" >"$dir/nginx.conf"
        fi
        CMD=("$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log")
        ;;
    *) return 1 ;;
    esac
}

check_servers

# wrk_load TEST PORT SECS
wrk_load() {
    local args=(-t1 -c"$CONNS" -d"$3"s --timeout 5s)
    [[ $1 == plain ]] || args+=(-s "$BENCH_DIR/pipeline.lua")
    args+=("https://127.0.0.1:$2/plaintext")
    [[ $1 == plain ]] || args+=(-- "$PIPELINE")
    timeout -k 2 $(($3 + 30)) taskset -c "$CLIENT_CPU" wrk "${args[@]}"
}

# stime TEST PORT SECS: openssl s_time, TLS 1.3, one GET per connection.
stime() {
    local mode=-new
    [[ $1 == resumed ]] && mode=-reuse
    timeout -k 2 $(($3 + 30)) taskset -c "$CLIENT_CPU" \
        openssl s_time -connect "127.0.0.1:$2" -tls1_3 $mode -time "$3" -www /plaintext
}

# measure_stime TEST SERVER ROUND PORT SECS
measure_stime() {
    local t=$1 s=$2 round=$3 port=$4 secs=$5 t0 t1 w0 w1 out n real rate
    t0=$(cpu_ticks "$SERVER_PID")
    w0=$(date +%s.%N)
    run_client "$BENCH_TMP/load.out" stime "$t" "$port" "$secs" 2>"$BENCH_TMP/load.err"
    w1=$(date +%s.%N)
    t1=$(cpu_ticks "$SERVER_PID")
    stop_server "$SERVER_PID"
    out=$(cat "$BENCH_TMP/load.out")
    # "N connections in S real seconds, B bytes read per connection"
    read -r n real < <(awk '/connections in .* real seconds/ { print $1, $4; exit }' <<<"$out")
    if [[ -z ${n:-} || -z ${real:-} || $n == 0 ]]; then
        note "$s $t round $round: s_time failed: $(tail -n 3 "$BENCH_TMP/load.err" <<<"" | tr '\n' ' ')$(tail -n 3 <<<"$out" | tr '\n' ' ')"
        return 0
    fi
    rate=$(awk -v n="$n" -v r="$real" 'BEGIN { printf "%.1f", n / r }')
    record "$t" "$s" "$round" "$rate" "$n" $((t1 - t0)) "$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')"
}

for ((round = 1; round <= ROUNDS; round++)); do
    for t in $TESTS; do
        # shellcheck disable=SC2086
        for s in $(rotate $((round - 1)) $SERVERS); do
            [[ -z ${SKIPPED[$s]:-} ]] || continue
            start_named "$s" || continue
            case $t in
            full | resumed) measure_stime "$t" "$s" "$round" "$port" "$SECS" ;;
            *)
                if ((WARMUP > 0)); then
                    run_client /dev/null wrk_load "$t" "$port" "$WARMUP" 2>/dev/null
                fi
                measure_wrk "$t" "$s" "$round" wrk_load "$t" "$port" "$SECS"
                ;;
            esac
        done
    done
done

{
    print_header "tls" "same ECDSA P-256 certificate, TLS 1.3; full/resumed: openssl s_time -new/-reuse -www /plaintext for ${SECS}s (one connection at a time: the client is the bottleneck, compare server CPU per handshake); plain/pipelined$PIPELINE: wrk -t1 -c$CONNS -d${SECS}s (+${WARMUP}s warm-up) https:// GET /plaintext; unit: handshakes or responses"
    print_table "HTTPS" "op" "$TESTS" "$SERVERS"
    print_notes
} | tee "$RESULT_MD"
