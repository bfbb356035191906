#!/usr/bin/env bash
# Build evnet, the peers and the Go servers, run echo.sh, http.sh and
# resp.sh, then print all their tables.
#
#   bench/compare.sh                  # full run: 3 rounds each
#   ROUNDS=1 SECS=2 REQUESTS=200000 bench/compare.sh
#   SKIP_BUILD=1 bench/compare.sh     # use the binaries as they are
#   ONLY="echo http" bench/compare.sh
#
# Builds use CARGO_BUILD_JOBS=1 unless set (the machine is shared).
# A build that fails is reported; the scripts then skip what is missing.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${ONLY:=echo http resp}"

if [[ -z ${SKIP_BUILD:-} ]]; then
    note "building evnet (cargo build --release --bin evnet, CARGO_BUILD_JOBS=$CARGO_BUILD_JOBS)"
    if ! (cd "$REPO_ROOT" && cargo build --release --bin evnet) >"$BENCH_TMP/build-evnet.log" 2>&1; then
        note "evnet build failed; its rows will be skipped: $(tail -n 5 "$BENCH_TMP/build-evnet.log" | tr '\n' ' ')"
    fi
    note "building peers (bench/peers)"
    if ! cargo build --release --manifest-path "$PEERS_DIR/Cargo.toml" \
        -p tokio-echo -p hyper-plain -p echo-load >"$BENCH_TMP/build-peers.log" 2>&1; then
        note "peer build failed: $(tail -n 5 "$BENCH_TMP/build-peers.log" | tr '\n' ' ')"
    fi
    # may_minihttp is built on its own so that a failure there costs only
    # the may column.
    if ! cargo build --release --manifest-path "$PEERS_DIR/Cargo.toml" \
        -p may-plain >"$BENCH_TMP/build-may.log" 2>&1; then
        note "may-plain build failed; may will be skipped: $(tail -n 5 "$BENCH_TMP/build-may.log" | tr '\n' ' ')"
    fi
    note "building Go servers"
    build_go echo http
fi

# The scripts below need not build again.
export NO_BUILD=1 EVNET

failed=()
for b in $ONLY; do
    note "running bench/$b.sh"
    rm -f "$RESULTS_DIR/$b.md" # never print a stale table
    if ! "$BENCH_DIR/$b.sh" >/dev/null; then
        failed+=("$b")
        note "bench/$b.sh failed"
    fi
done

echo
for b in $ONLY; do
    [[ -f $RESULTS_DIR/$b.md ]] && cat "$RESULTS_DIR/$b.md"
done
if ((${#failed[@]})); then
    note "failed: ${failed[*]}"
    exit 1
fi
