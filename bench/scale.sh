#!/usr/bin/env bash
# Connection scale: (a) one evnet echo process holding 19,000 idle
# connections (its fd cap is 20,000 here), (b) 100,000 connections across
# worker processes (--processes). Reports server RSS per connection, the time
# to open them all, and checks a sample of connections still echoes.
#
#   bench/scale.sh            # both parts
#   ONE=19000 MANY=100000 PROCS=8 CLIENTS=6 bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ONE:=19000}" "${MANY:=100000}" "${PROCS:=8}" "${CLIENTS:=6}"
EVNET=${EVNET:-target/release/evnet}
[ -x "$EVNET" ] || cargo build --release
out=bench/results/scale.md
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_of() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' /proc/$p/status) * 1024)); done; echo $t; }

echo "## Connection scale ($(date -u +%FT%TZ), $(nproc) CPUs, kernel $(uname -r))" > "$out"

# (a) one process
port=$(free_port)
"$EVNET" echo --addr 127.0.0.1:$port --loops 0 --max-connections unlimited > "$tmp/one.log" 2>&1 &
spid=$!
for _ in $(seq 100); do grep -q listening "$tmp/one.log" && break; sleep 0.05; done
line=$(python3 bench/idle_conns.py --pid $spid --addr 127.0.0.1:$port --conns "$ONE" --sources 4)
echo "one process: $line"
{ echo; echo "### One process (epoll, single reactor)"; echo; echo '```'; echo "$line"; echo '```'; } >> "$out"
kill $spid; wait $spid 2>/dev/null || true

# (b) worker processes
port=$(free_port)
"$EVNET" echo --addr 127.0.0.1:$port --loops 0 --processes "$PROCS" --max-connections unlimited > "$tmp/many.log" 2>&1 &
master=$!
for _ in $(seq 200); do grep -q listening "$tmp/many.log" && break; sleep 0.05; done
workers=$(cat /proc/$master/task/*/children)
before=$(rss_of $workers)
per=$(( (MANY + CLIENTS - 1) / CLIENTS ))
start=$(date +%s.%N)
for c in $(seq 0 $((CLIENTS - 1))); do
    python3 bench/idle_conns.py --pid $master --addr 127.0.0.1:$port --conns $per \
        --sources 8 --source-base $((c * 8 + 10)) --hold-until "$tmp/release" > "$tmp/client$c.log" 2>&1 &
done
for c in $(seq 0 $((CLIENTS - 1))); do
    for _ in $(seq 1200); do grep -q -E "ready|Error|error" "$tmp/client$c.log" && break; sleep 0.1; done
done
opened=$(echo "$(date +%s.%N) - $start" | bc)
ready=$(grep -l ready "$tmp"/client*.log | wc -l)
after=$(rss_of $workers)
total=$((per * CLIENTS))
touch "$tmp/release"
wait $(jobs -p | grep -v "^$master$") 2>/dev/null || true
held=$(grep -l held_ok "$tmp"/client*.log | wc -l)
bpc=$(( (after - before) / total ))
summary="processes=$PROCS connections=$total clients_ready=$ready/$CLIENTS open_secs=$opened worker_rss_before=$before worker_rss_after=$after bytes_per_conn=$bpc sample_roundtrips_ok=$held/$CLIENTS"
echo "worker processes: $summary"
{ echo; echo "### $PROCS worker processes (SO_REUSEPORT), $CLIENTS client processes"; echo; echo '```'; echo "$summary"; echo '```'; } >> "$out"
kill -TERM $master; wait $master 2>/dev/null || true
cat "$out"
