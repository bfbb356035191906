#!/usr/bin/env bash
# The static `evnet`: build it with the one documented command, check that
# it is not a dynamic executable, and run it in an empty root (a chroot
# holding nothing but the binary: no libc, no loader, no /proc, no /etc)
# serving one HTTP request from outside. Run by .ci/run; needs root (chroot).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: tests/static_binary.sh needs root for chroot" >&2
    exit 0
fi

# The documented command (README.md, "A static binary").
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --target x86_64-unknown-linux-gnu --bin evnet
bin=target/x86_64-unknown-linux-gnu/release/evnet

fail() { echo "static_binary: FAIL: $*" >&2; exit 1; }

desc=$(file -b "$bin")
case "$desc" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) fail "file says: $desc" ;;
esac
# glibc's ldd says "not a dynamic executable" (static) or "statically
# linked" (static-pie); anything else lists libraries.
lddout=$(ldd "$bin" 2>&1 || true)
case "$lddout" in
    *"not a dynamic executable"*|*"statically linked"*) ;;
    *) fail "ldd lists shared libraries: $lddout" ;;
esac
if readelf -l "$bin" | grep -q 'INTERP'; then
    fail "the binary asks for a program interpreter"
fi

root=$(mktemp -d)
out=$(mktemp)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$root" "$out"
}
trap cleanup EXIT
cp "$bin" "$root/evnet"
# Nothing else in the root: a dynamic binary could not even start here.
[ "$(ls -A "$root")" = "evnet" ] || fail "root not empty"

chroot "$root" /evnet http --addr 127.0.0.1:0 --loops 0 >"$out" 2>/dev/null &
pid=$!
addr=
for _ in $(seq 1 100); do
    addr=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$out" | head -1 || true)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || fail "evnet exited in the empty root: $(cat "$out")"
    sleep 0.1
done
[ -n "$addr" ] || fail "no listening line: $(cat "$out")"

body=$(curl -sS --max-time 10 "${addr}echo" -d 'static and alone')
[ "$body" = "static and alone" ] || fail "POST /echo answered: $body"
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$addr")
[ "$code" = 200 ] || fail "GET / answered $code"

kill -TERM "$pid"
wait "$pid" || fail "evnet exited with $? after SIGTERM"
pid=
echo "static_binary: ok ($desc)"
