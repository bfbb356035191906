#!/usr/bin/env bash
# RESP memory per key: evnet resp vs redis-server, loaded with the same data
# through `redis-cli --pipe`.
#
#   bench/resp_memory.sh                 # 1,000,000 keys per data set
#   KEYS=200000 bench/resp_memory.sh
#
# Data sets: `strings` (SET key:NNNNNNN <100 bytes>) and `hashes` (HSET
# user:NNNNNNN with four short fields: name, age, city, score). For each
# server and set: the RSS growth over the load divided by the keys (what the
# process really holds), and INFO's used_memory growth per key (what its
# allocator counts). Servers run one at a time, each pinned to CPU 0.
#
# Env: EVNET KEYS SERVER_CPU SERVERS
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
: "${EVNET:=$root/target/release/evnet}"
: "${KEYS:=1000000}"
: "${SERVER_CPU:=0}"
: "${SERVERS:=evnet redis}"
results="$root/bench/results"
mkdir -p "$results"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for tool in redis-cli redis-server python3; do
    command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install redis-tools redis-server)" >&2; exit 1; }
done
[ -x "$EVNET" ] || (cd "$root" && cargo build --release --bin evnet)

# The RESP commands of each data set, generated once.
python3 - "$tmp" "$KEYS" <<'EOF'
import sys
out, n = sys.argv[1], int(sys.argv[2])
def cmd(*a):
    b = b'*%d\r\n' % len(a)
    for x in a:
        b += b'$%d\r\n%s\r\n' % (len(x), x)
    return b
with open(f'{out}/strings.resp', 'wb') as f:
    v = b'x' * 100
    for i in range(n):
        f.write(cmd(b'SET', b'key:%07d' % i, v))
with open(f'{out}/hashes.resp', 'wb') as f:
    for i in range(n):
        f.write(cmd(b'HSET', b'user:%07d' % i, b'name', b'user%d' % i, b'age', b'%d' % (i % 90),
                    b'city', b'paris', b'score', b'%d' % (i * 7 % 1000)))
EOF

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
used() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '/^used_memory:/ { print $2 }'; }

table="| data set | server | keys | RSS bytes/key | used_memory bytes/key |"$'\n'"|---|---|---:|---:|---:|"
for set in strings hashes; do
    for s in $SERVERS; do
        port=$(free_port)
        case $s in
        evnet) taskset -c "$SERVER_CPU" "$EVNET" resp --addr "127.0.0.1:$port" --loops 1 >/dev/null 2>&1 & ;;
        redis) taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & ;;
        *) echo "unknown server $s" >&2; exit 1 ;;
        esac
        pid=$!
        for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
        rss0=$(rss_kb "$pid"); used0=$(used "$port")
        redis-cli -p "$port" --pipe <"$tmp/$set.resp" >/dev/null
        rss1=$(rss_kb "$pid"); used1=$(used "$port")
        n=$(redis-cli -p "$port" dbsize)
        kill "$pid"; wait "$pid" 2>/dev/null || true
        [ "$n" -eq "$KEYS" ] || { echo "$s $set: $n keys, not $KEYS" >&2; exit 1; }
        table+=$'\n'"| $set | $s | $n | $(( (rss1 - rss0) * 1024 / n )) | $(( (used1 - used0) / n )) |"
    done
done
{
    echo "## resp memory"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%SZ'), evnet commit: $(git -C "$root" rev-parse --short HEAD), host: $(uname -r)"
    echo "- loaded with redis-cli --pipe; per key: growth over the load / keys"
    echo
    echo "$table"
} | tee "$results/resp-memory.md"
