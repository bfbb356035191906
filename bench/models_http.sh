#!/usr/bin/env bash
# I/O models on the HTTP plaintext workload: `evnet http --loops 0` with each
# poller, `wrk -t1 -cN` GET /plaintext, server on CPU 0 and wrk on CPU 1.
# (evnet http has no thread-per-connection model: that row is n/a.)
#
#   bench/models_http.sh                 # 2 rounds x 3 s per point
#   ROUNDS=1 CONNS_LIST="10 100" bench/models_http.sh
#
# Writes bench/results/models_http.md (medians) and models_http.tsv.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${ROUNDS:=2}" "${SECS:=3}" "${SERVER_CPU:=0}" "${CLIENT_CPU:=1}"
: "${MODELS:=select poll epoll-lt epoll-et uring-lt uring-et proactor busy-poll sigio}"
: "${CONNS_LIST:=10 100 1000 10000}"
EVNET=${EVNET:-target/release/evnet}
[ -x "$EVNET" ] || cargo build --release
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
tsv=bench/results/models_http.tsv
md=bench/results/models_http.md
hz=$(getconf CLK_TCK)
printf 'model\tconns\tround\treqs_per_sec\trequests\tcpu_us_per_req\tp99_ms\n' > "$tsv"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

args_for() {
    case $1 in
    select) echo "--poller select" ;;
    poll) echo "--poller poll" ;;
    epoll-lt) echo "--poller epoll --trigger level" ;;
    epoll-et) echo "--poller epoll --trigger edge" ;;
    uring-lt) echo "--poller uring --trigger level" ;;
    uring-et) echo "--poller uring --trigger edge" ;;
    proactor) echo "--poller proactor" ;;
    busy-poll) echo "--poller busy-poll" ;;
    sigio) echo "--poller sigio" ;;
    esac
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for round in $(seq "$ROUNDS"); do
    for conns in $CONNS_LIST; do
        for m in $MODELS; do
            if [ "$m" = select ] && [ $((conns + 16)) -gt 1024 ]; then
                printf '%s\t%s\t%s\tn/a (FD_SETSIZE)\t\t\t\n' "$m" "$conns" "$round" >> "$tsv"
                continue
            fi
            port=$(free_port)
            # shellcheck disable=SC2046
            taskset -c "$SERVER_CPU" "$EVNET" http --addr 127.0.0.1:$port --loops 0 $(args_for "$m") > /dev/null 2>&1 &
            spid=$!
            for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
            t0=$(ticks $spid)
            out=$(timeout $((SECS + 30)) taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${SECS}s" --latency "http://127.0.0.1:$port/plaintext" 2>&1)
            t1=$(ticks $spid)
            kill $spid; wait $spid 2>/dev/null
            rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
            reqs=$(awk '/requests in/{print $1}' <<<"$out")
            p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
            cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="${reqs:-0}" 'BEGIN{ if (n > 0) printf "%.2f", t * 1e6 / hz / n; }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$conns" "$round" "${rps:-fail}" "${reqs:-}" "$cpu" "$p99" >> "$tsv"
            echo "# $m $conns conns round $round: ${rps:-fail} req/s, ${cpu} us/req, p99 ${p99} ms" >&2
        done
    done
done

{
    echo "## I/O models, HTTP plaintext ($(date -u +%FT%TZ), $(nproc) CPUs)"
    echo
    echo "wrk -t1 -cN -d${SECS}s GET /plaintext against \`evnet http --loops 0\` per poller; medians of $ROUNDS rounds."
    echo "thread-per-connection: n/a (evnet http runs on reactors only)."
    echo
    echo "| model | connections | req/s | server CPU µs/req | p99 ms |"
    echo "|---|---:|---:|---:|---:|"
    python3 - "$tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
keys = []
for r in rows:
    k = (r["model"], int(r["conns"]))
    if k not in keys:
        keys.append(k)
def med(vals):
    vals = [float(v) for v in vals if v not in ("", "fail") and not v.startswith("n/a")]
    return statistics.median(vals) if vals else None
for m, c in keys:
    rs = [r for r in rows if (r["model"], int(r["conns"])) == (m, c)]
    if rs[0]["reqs_per_sec"].startswith("n/a"):
        print(f"| {m} | {c} | {rs[0]['reqs_per_sec']} | | |")
        continue
    rps, cpu, p99 = med(r["reqs_per_sec"] for r in rs), med(r["cpu_us_per_req"] for r in rs), med(r["p99_ms"] for r in rs)
    f = lambda v, d: "fail" if v is None else f"{v:.{d}f}"
    print(f"| {m} | {c} | {f(rps, 0)} | {f(cpu, 2)} | {f(p99, 2)} |")
PY
} > "$md"
cat "$md"
