#!/usr/bin/env bash
# Run Redis's own protocol test suite (tests/unit/protocol.tcl from the
# Debian redis source package) against `evnet resp`.
#
#   tests/redis_protocol_suite.sh            # exits non-zero on any failure
#
# Environment:
#   EVNET_BIN          evnet binary to test (default: build target/release/evnet)
#   REDIS_SRC_CACHE    where the redis source is kept (default: target/redis-src)
#
# Needs: apt (to fetch the source once; deb-src lines are added if missing),
# tclsh (installed if missing).
#
# Skipped tests use data types or commands evnet resp does not implement
# (sets, lists, blocking ops, MULTI/EXEC, INCRBYFLOAT); tests tagged
# needs:debug (DEBUG PROTOCOL, RESP3 attributes) are excluded by tag.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${REDIS_SRC_CACHE:-$root/target/redis-src}"

log() { echo "redis-protocol-suite: $*" >&2; }

fetch_source() {
    if ! command -v tclsh >/dev/null; then
        log "installing tcl"
        apt-get update -q >/dev/null
        apt-get install -y -q tcl >/dev/null
    fi
    if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "adding deb-src entries"
        sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            > /etc/apt/sources.list.d/evnet-deb-src.sources
        apt-get update -q >/dev/null
    fi
    if ! compgen -G "$cache/redis_*.dsc" >/dev/null; then
        apt-get update -q >/dev/null || true
    fi
    mkdir -p "$cache"
    (cd "$cache" && { compgen -G "redis_*.dsc" >/dev/null || apt-get source -q --download-only redis >/dev/null; } \
        && rm -rf src.tmp && dpkg-source -x --no-check redis_*.dsc src.tmp >/dev/null && mv src.tmp src)
}

if [ ! -x "$cache/src/runtest" ]; then
    log "fetching the redis source into $cache"
    fetch_source
fi
command -v tclsh >/dev/null || { log "tclsh missing"; exit 1; }

bin="${EVNET_BIN:-}"
if [ -z "$bin" ]; then
    (cd "$root" && CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo build -q --release --bin evnet)
    bin="$root/target/release/evnet"
fi

out="$(mktemp)"
"$bin" resp --addr 127.0.0.1:0 --loops 2 >"$out" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 100); do
    port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out" | head -n1)"
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; log "evnet resp did not start"; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { cat "$out" >&2; log "no port reported"; exit 1; }
log "evnet resp on port $port"

skips=(
    "raw protocol response"                                # SADD/SRANDMEMBER: no sets
    "raw protocol response - deferred"                     # SRANDMEMBER: no sets
    "raw protocol response - multiline"                    # SADD/SRANDMEMBER: no sets
    "test argument rewriting - issue 9598"                 # INCRBYFLOAT, MULTI/EXEC
    "Regression for a crash with blocking ops and pipelining"  # BLPOP/RPUSH: no lists
)
args=()
for s in "${skips[@]}"; do args+=(--skiptest "$s"); done

cd "$cache/src"
status=0
timeout 600 ./runtest --host 127.0.0.1 --port "$port" --singledb --clients 1 \
    --single unit/protocol --tags -needs:debug "${args[@]}" 2>&1 \
    | sed -u 's/\x1b\[[0-9;]*m//g' | tee "$cache/last-run.log" || status=$?
if [ "$status" -ne 0 ] || grep -q '\[err\]\|\[exception\]' "$cache/last-run.log"; then
    log "FAILED (see $cache/last-run.log)"
    exit 1
fi
grep -q 'All tests passed without errors' "$cache/last-run.log" || { log "no pass summary"; exit 1; }
log "passed: $(grep -c '^\[ok\]' "$cache/last-run.log") ok, $(grep -c '^\[skip\]' "$cache/last-run.log") skipped, $(grep -c '^\[ignore\]' "$cache/last-run.log") excluded by tag"
