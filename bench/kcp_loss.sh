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
# Writes bench/results/kcp_loss.{md,tsv} and kcp_loss.svg (latency vs loss).
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

python3 - "$RAW" "$MD" "$SVG" "$RATE" "$SIZE" "$SECS" "$ROUNDS" <<'PY'
import sys, statistics as st
raw, md, svg, rate, size, secs, rounds = sys.argv[1:]
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
# The chart: p50 (solid) and p99 (dashed) latency against loss, log scale.
import math
W, H, L, B, T, R = 720, 420, 70, 50, 30, 150
trans = sorted({k[0] for k in keys})
losses = sorted({k[1] for k in keys})
vals = [med(t, l, i) / 1e3 for t in trans for l in losses for i in (4, 5) if not math.isnan(med(t, l, i))]
if not vals:
    sys.exit()
lo = 10 ** math.floor(math.log10(max(min(vals), 0.01)))
hi = 10 ** math.ceil(math.log10(max(vals)))
if hi <= lo: hi = lo * 10
def x(l): return L + (losses.index(l) / max(len(losses) - 1, 1)) * (W - L - R)
def y(v): return T + (1 - (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))) * (H - T - B)
colors = {"tcp": "#c0392b", "kcp-normal": "#2980b9", "kcp-fast": "#27ae60"}
s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{L}" y="18" font-size="14">Echo latency vs packet loss ({rate} msg/s, {size} B)</text>']
d = lo
while d <= hi * 1.001:
    s.append(f'<line x1="{L}" x2="{W-R}" y1="{y(d):.1f}" y2="{y(d):.1f}" stroke="#ddd"/>')
    s.append(f'<text x="{L-6}" y="{y(d)+4:.1f}" text-anchor="end">{d:g} ms</text>')
    d *= 10
for l in losses:
    s.append(f'<text x="{x(l):.1f}" y="{H-B+18}" text-anchor="middle">{l:g}%</text>')
s.append(f'<text x="{(L+W-R)/2}" y="{H-10}" text-anchor="middle">packet loss (each direction)</text>')
for i, t in enumerate(trans):
    c = colors.get(t, "#555")
    for col, dash, name in ((4, "", "p50"), (5, ' stroke-dasharray="6 4"', "p99")):
        pts = [(x(l), y(med(t, l, col) / 1e3)) for l in losses if not math.isnan(med(t, l, col))]
        if pts:
            s.append(f'<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        ly = T + 20 + i * 40 + (0 if name == "p50" else 16)
        s.append(f'<line x1="{W-R+10}" x2="{W-R+40}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/>')
        s.append(f'<text x="{W-R+46}" y="{ly+4}">{t} {name}</text>')
s.append("</svg>")
open(svg, "w").write("\n".join(s) + "\n")
PY
