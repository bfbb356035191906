#!/usr/bin/env bash
# The loss lab: echo ping-pong at a fixed message rate over TCP (evnet echo)
# and KCP (evnet kcp-echo, normal and fast mode) between two network
# namespaces joined by a veth pair, with iptables dropping a share of the
# packets that arrive on each side (so both directions lose). For each loss
# rate: p50/p99/max/mean latency, bytes on the wire per delivered byte, and
# server CPU per message. Needs root, iproute2 and iptables (the kernel here
# has no netem; the statistic match does the dropping).
#
#   bench/kcp_loss.sh                            # SECS=20 LOSSES="0 1 5 10"
#   SECS=3 LOSSES="0 5" bench/kcp_loss.sh        # smoke run
#
# Writes bench/results/kcp_loss.{md,tsv} and kcp_loss.svg (latency vs loss),
# the chart drawn by bench/peers/plot-kcp-loss (plotters; built here).
set -uo pipefail # not -e: stop_server reaps servers killed by a signal
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${LOSSES:=0 1 5 10}"
: "${RATE:=100}"        # messages per second (one conversation/connection)
: "${SIZE:=256}"        # bytes per message
: "${TRANSPORTS:=tcp kcp-normal kcp-fast}"
NS_S=evk-srv NS_C=evk-cli
IP_S=10.77.0.1 IP_C=10.77.0.2

[[ $(id -u) -eq 0 ]] || { echo "kcp_loss.sh: needs root (network namespaces)" >&2; exit 1; }
command -v iptables >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
[[ -x $EVNET ]] || (cd "$REPO_ROOT" && cargo build --release --bin evnet >&2)
# Built before the lab, so a broken chart build shows in seconds, not after
# the runs; without it the script still writes the table, just no chart.
ensure_peers plot-kcp-loss
CHART=$PEERS_BIN/plot-kcp-loss
[[ -x $CHART ]] || note "plot-kcp-loss did not build: there will be no chart"

lab_down() {
    ip netns del "$NS_S" 2>/dev/null
    ip netns del "$NS_C" 2>/dev/null
    return 0
}
lab_up() {
    lab_down
    ip netns add "$NS_S" && ip netns add "$NS_C"
    ip link add vk-s netns "$NS_S" type veth peer name vk-c netns "$NS_C"
    ip -n "$NS_S" addr add "$IP_S/24" dev vk-s
    ip -n "$NS_C" addr add "$IP_C/24" dev vk-c
    for ns in "$NS_S" "$NS_C"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_S" link set vk-s up
    ip -n "$NS_C" link set vk-c up
}
set_loss() { # PERCENT
    local ns p
    p=$(awk -v l="$1" 'BEGIN { printf "%.4f", l / 100 }')
    for ns in "$NS_S" "$NS_C"; do
        ip netns exec "$ns" iptables -F INPUT
        if [[ $1 != 0 ]]; then
            ip netns exec "$ns" iptables -A INPUT -m statistic --mode random --probability "$p" -j DROP
        fi
    done
}
# wire_bytes: bytes sent by both ends of the veth (dropped ones included).
wire_bytes() {
    local a b
    a=$(ip netns exec "$NS_S" cat /sys/class/net/vk-s/statistics/tx_bytes)
    b=$(ip netns exec "$NS_C" cat /sys/class/net/vk-c/statistics/tx_bytes)
    echo $((a + b))
}
trap 'lab_down; bench_cleanup' EXIT
lab_up || { echo "kcp_loss.sh: cannot build the namespaces" >&2; exit 1; }

RAW=$RESULTS_DIR/${RESULT_NAME:-kcp_loss}.tsv
MD=$RESULTS_DIR/${RESULT_NAME:-kcp_loss}.md
SVG=$RESULTS_DIR/${RESULT_NAME:-kcp_loss}.svg
mkdir -p "$RESULTS_DIR"
printf 'transport\tloss\tround\tmessages\tp50_us\tp99_us\tmax_us\tmean_us\twire_per_byte\tcpu_us_per_msg\ttimeouts\n' >"$RAW"

for ((round = 1; round <= ROUNDS; round++)); do
    for loss in $LOSSES; do
        set_loss "$loss"
        for t in $TRANSPORTS; do
            port=$((20000 + RANDOM % 20000))
            case $t in
            tcp) srv=("$EVNET" echo --addr "$IP_S:$port" --loops 1)
                cli=(load echo "$IP_S:$port") ;;
            kcp-normal) srv=("$EVNET" kcp-echo --addr "$IP_S:$port" --mode normal)
                cli=(load kcp "$IP_S:$port" --mode normal) ;;
            kcp-fast) srv=("$EVNET" kcp-echo --addr "$IP_S:$port" --mode fast)
                cli=(load kcp "$IP_S:$port" --mode fast) ;;
            esac
            ip netns exec "$NS_S" taskset -c "$SERVER_CPU" "${srv[@]}" </dev/null >"$BENCH_TMP/srv.log" 2>&1 &
            SERVER_PID=$!
            BENCH_PIDS+=("$SERVER_PID")
            # Bounded wait for the server's banner.
            for ((i = 0; i < START_TIMEOUT * 20; i++)); do
                grep -q listening "$BENCH_TMP/srv.log" 2>/dev/null && break
                sleep 0.05
            done
            w0=$(wire_bytes)
            c0=$(cpu_ticks "$SERVER_PID")
            ip netns exec "$NS_C" taskset -c "$CLIENT_CPU" "$EVNET" "${cli[@]}" -c 1 \
                --rate "$RATE" --size "$SIZE" -d "${SECS}s" --warmup "${WARMUP}s" --timeout 30s --json \
                >"$BENCH_TMP/cli.json" 2>"$BENCH_TMP/cli.err"
            c1=$(cpu_ticks "$SERVER_PID")
            w1=$(wire_bytes)
            stop_server "$SERVER_PID"
            python3 - "$BENCH_TMP/cli.json" "$t" "$loss" "$round" $((w1 - w0)) $((c1 - c0)) "$CLK_TCK" "$SIZE" "$WARMUP" "$SECS" >>"$RAW" <<'PY'
import json, sys
path, t, loss, rnd, wire, ticks, hz, size, warm, secs = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    print(f"{t}\t{loss}\t{rnd}\t0\t\t\t\t\t\t\tfailed")
    sys.exit()
n = r["requests"]
lat = r["latency_us"]
# Wire bytes cover the warm-up too: scale delivered bytes by the share of
# time measured (the rate is fixed, so messages are spread evenly).
total_msgs = n * (float(warm) + float(secs)) / float(secs)
delivered = max(total_msgs * int(size) * 2, 1)
cpu = int(ticks) * 1e6 / int(hz) / max(total_msgs, 1)
print(f"{t}\t{loss}\t{rnd}\t{n}\t{lat['p50']}\t{lat['p99']}\t{lat['max']}\t{lat['mean']}"
      f"\t{int(wire) / delivered:.3f}\t{cpu:.1f}\t{r['errors']['timeout']}")
PY
            note "$t loss $loss% round $round: $(tail -n 1 "$RAW" | cut -f4-11)"
        done
    done
done
set_loss 0

python3 - "$RAW" "$MD" "$RATE" "$SIZE" "$SECS" "$ROUNDS" <<'PY'
import sys, statistics as st
raw, md, rate, size, secs, rounds = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(raw)][1:]
ok = [r for r in rows if r[3] not in ("", "0")]
keys = sorted({(r[0], float(r[1])) for r in ok}, key=lambda k: (k[0], k[1]))
def med(t, l, i):
    v = [float(r[i]) for r in ok if r[0] == t and float(r[1]) == l and r[i] != ""]
    return st.median(v) if v else float("nan")
out = ["## KCP loss lab", "",
       f"- echo ping-pong, one connection/conversation, {rate} messages/s of {size} B, {secs}s per run, {rounds} round(s); medians over rounds",
       "- loss: iptables statistic drop on the receiving side of each namespace (both directions)",
       "", "| transport | loss % | messages | p50 ms | p99 ms | max ms | mean ms | wire bytes / delivered byte | server CPU µs/msg |",
       "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for t, l in keys:
    out.append(f"| {t} | {l:g} | {med(t,l,3):.0f} | {med(t,l,4)/1e3:.2f} | {med(t,l,5)/1e3:.2f} | {med(t,l,6)/1e3:.2f} | {med(t,l,7)/1e3:.2f} | {med(t,l,8):.2f} | {med(t,l,9):.1f} |")
open(md, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY

# The chart: p50 (solid) and p99 (dashed) latency against loss, log scale.
if [[ -x $CHART ]]; then
    "$CHART" --title "Echo latency vs packet loss ($RATE msg/s, $SIZE B)" "$RAW" "$SVG" ||
        note "plot-kcp-loss failed: no chart"
else
    note "plot-kcp-loss is missing: no chart"
fi
