# shellcheck shell=bash
# Shared helpers for the scripts in bench/. Source this file; do not run it.
#
# What it gives the scripts:
#   free_port                      print a free TCP port on 127.0.0.1
#   start_server NAME PORT CMD...  start CMD pinned to $SERVER_CPU, wait
#                                  (bounded) until PORT accepts; sets SERVER_PID
#   stop_server PID                SIGTERM, bounded wait, then SIGKILL
#   run_client OUT CMD...          run a load client, interruptibly
#   cpu_ticks PID                  utime+stime of PID and its descendants
#   median N...                    median of numbers
#   check_servers / start_named S  with the script's server_cmd: drop unknown
#                                  servers; start one on a free port
#   measure_wrk TEST SERVER ROUND CMD...  run wrk, stop the server, record
#   record / print_table           raw samples -> markdown table with medians
# Every server started through start_server is killed when the script exits.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(git -C "$BENCH_DIR" rev-parse --show-toplevel 2>/dev/null || (cd "$BENCH_DIR/.." && pwd))
PEERS_DIR=$BENCH_DIR/peers
PEERS_BIN=$PEERS_DIR/target/release
GO_DIR=$BENCH_DIR/go
GO_BIN=$GO_DIR/bin
RESULTS_DIR=$BENCH_DIR/results

: "${EVNET:=$REPO_ROOT/target/release/evnet}"
# RESULT_NAME: write bench/results/RESULT_NAME.{md,tsv} instead of the
# script's own name (a before/after run kept apart from the peer tables).
# Another evnet build to compare against, side by side (servers named
# evnet-base*): e.g. a release build of the commit before a change.
: "${EVNET_BASE:=$REPO_ROOT/target/base/evnet}"
: "${ROUNDS:=3}"
: "${SECS:=5}"
: "${WARMUP:=1}"            # seconds of unmeasured load before each run (0: none)
: "${SERVER_CPU:=0}"
: "${CLIENT_CPU:=1}"
: "${START_TIMEOUT:=10}"    # seconds a server gets to start accepting
: "${CARGO_BUILD_JOBS:=1}"
export CARGO_BUILD_JOBS

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

if ! taskset -c "$SERVER_CPU" true 2>/dev/null || ! taskset -c "$CLIENT_CPU" true 2>/dev/null; then
    printf '# CPU %s or %s is not available here (%s CPUs): running without pinning\n' \
        "$SERVER_CPU" "$CLIENT_CPU" "$(nproc)" >&2
    SERVER_CPU=0-$(($(nproc) - 1))
    CLIENT_CPU=$SERVER_CPU
fi

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/evnet-bench.XXXXXX")
chmod 755 "$BENCH_TMP" # nginx workers drop root and still need to reach it
BENCH_PIDS=()
SERVER_PID=

# note MSG...: progress and diagnostics go to stderr, tables to stdout.
note() { printf '# %s\n' "$*" >&2; }

# ---------------------------------------------------------------- processes

# proc_alive PID: true while PID exists and is not a zombie.
proc_alive() {
    local s
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z ]]
}

# proc_ticks PID: utime+stime (clock ticks) of PID's threads, from /proc.
proc_ticks() {
    local s
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) } # drop "pid (comm) ": comm may hold spaces
    # shellcheck disable=SC2086
    set -- $s   # now $1 is field 3 (state); utime is field 14, stime 15,
    # and cutime, cstime (16, 17) what its reaped children used (a
    # process-per-connection server's finished children)
    echo $((${12} + ${13} + ${14} + ${15}))
}

# proc_tree PID: PID and all its descendants, one per line.
proc_tree() {
    local c
    echo "$1"
    for c in $(pgrep -P "$1" 2>/dev/null); do proc_tree "$c"; done
}

# cpu_ticks PID: CPU ticks used so far by PID and its live descendants
# (nginx's worker runs as a child of the master).
cpu_ticks() {
    local total=0 p t
    for p in $(proc_tree "$1"); do
        t=$(proc_ticks "$p") || t=0
        total=$((total + t))
    done
    echo "$total"
}

# ticks_to_us TICKS: microseconds.
ticks_to_us() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t * 1e6 / hz }'; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    if python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null; then
        return 0
    fi
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# port_open PORT: true if a TCP connect to 127.0.0.1:PORT succeeds.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID [TIMEOUT]: wait until PORT accepts, at most TIMEOUT
# seconds; fail early if PID dies.
wait_port() {
    local port=$1 pid=$2 timeout=${3:-$START_TIMEOUT} i
    for ((i = 0; i < timeout * 20; i++)); do
        proc_alive "$pid" || return 1
        port_open "$port" && return 0
        sleep 0.05
    done
    return 1
}

# start_server NAME PORT CMD...: run CMD on CPU $SERVER_CPU with output to a
# log under $BENCH_TMP, and wait for PORT. Sets SERVER_PID and SERVER_LOG.
# On failure prints why, kills what was started and returns 1.
start_server() {
    local name=$1 port=$2
    shift 2
    SERVER_LOG=$BENCH_TMP/$name.$port.log
    # taskset and env exec the command, so $! is the server's own pid.
    taskset -c "$SERVER_CPU" "$@" </dev/null >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    if wait_port "$port" "$SERVER_PID" "$START_TIMEOUT"; then
        return 0
    fi
    local why="did not accept on port $port within ${START_TIMEOUT}s"
    proc_alive "$SERVER_PID" || why="exited"
    note "$name failed to start ($why): $(tail -n 3 "$SERVER_LOG" 2>/dev/null | tr '\n' ' ')"
    stop_server "$SERVER_PID"
    return 1
}

# stop_server PID: SIGTERM PID and its descendants, wait up to 3 s, then
# SIGKILL whatever is left; reap PID.
stop_server() {
    local pid=$1 p i procs
    [[ -n $pid ]] || return 0
    procs=$(proc_tree "$pid")
    # shellcheck disable=SC2086
    kill -TERM $procs 2>/dev/null
    for ((i = 0; i < 60; i++)); do
        local alive=0
        for p in $procs; do proc_alive "$p" && alive=1; done
        ((alive)) || break
        sleep 0.05
    done
    for p in $procs; do proc_alive "$p" && kill -KILL "$p" 2>/dev/null; done
    wait "$pid" 2>/dev/null
    local keep=() q
    for q in "${BENCH_PIDS[@]}"; do [[ $q == "$pid" ]] || keep+=("$q"); done
    BENCH_PIDS=("${keep[@]}")
    return 0
}

# run_client OUT CMD...: run CMD (a command or shell function) with stdout
# to the file OUT, in the background so that a signal to the script is acted
# on at once (bash runs traps only between foreground commands). Returns
# CMD's exit status.
CLIENT_PID=
run_client() {
    local out=$1 rc
    shift
    "$@" </dev/null >"$out" &
    CLIENT_PID=$!
    wait "$CLIENT_PID"
    rc=$?
    CLIENT_PID=
    return "$rc"
}

bench_cleanup() {
    local p
    [[ -z $CLIENT_PID ]] || stop_server "$CLIENT_PID"
    for p in "${BENCH_PIDS[@]}"; do stop_server "$p"; done
    if [[ -n ${KEEP_TMP:-} ]]; then
        note "logs kept in $BENCH_TMP"
    else
        rm -rf "$BENCH_TMP"
    fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# check_servers: leave out of the run every server in $SERVERS that the
# script's server_cmd does not know or whose binary is missing.
check_servers() {
    local s bin
    for s in $SERVERS; do
        server_cmd "$s" 0 || { skip "$s" "unknown server"; continue; }
        bin=${CMD[0]}
        [[ $bin == env ]] && bin=${CMD[2]}
        [[ -x $bin ]] || skip "$s" "binary $bin not found"
    done
}

# start_named SERVER: start the script's server_cmd SERVER on a free port
# (sets port and SERVER_PID); on failure leaves SERVER out and returns 1.
start_named() {
    port=$(free_port) || { note "no free port"; exit 1; }
    server_cmd "$1" "$port"
    if ! start_server "$1" "$port" "${CMD[@]}"; then
        skip "$1" "failed to start (\`${CMD[*]}\`)"
        return 1
    fi
}

# measure_wrk TEST SERVER ROUND CMD...: run the wrk command CMD (through
# run_client) against the server SERVER_PID, stop the server, and record the
# sample: wrk's rate and request count, the server's CPU ticks and the wall
# time. A failed run, or one with any non-2xx/3xx response, is noted and
# dropped.
measure_wrk() {
    local t=$1 s=$2 round=$3
    shift 3
    local t0 t1 w0 w1 rc out reqs rps bad errs wall
    t0=$(cpu_ticks "$SERVER_PID")
    w0=$(date +%s.%N)
    run_client "$BENCH_TMP/load.out" "$@" 2>"$BENCH_TMP/load.err"
    rc=$?
    out=$(cat "$BENCH_TMP/load.out" "$BENCH_TMP/load.err")
    w1=$(date +%s.%N)
    t1=$(cpu_ticks "$SERVER_PID")
    stop_server "$SERVER_PID"
    reqs=$(awk '/ requests in / { print $1; exit }' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ { print $2; exit }' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF; exit }' <<<"$out")
    errs=$(grep 'Socket errors:' <<<"$out")
    if ((rc != 0)) || [[ -z $reqs || -z $rps || $reqs == 0 ]]; then
        note "$s $t round $round: wrk failed (rc $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
        return 0
    fi
    if [[ -n $bad && $bad != 0 ]]; then
        note "$s $t round $round: $bad non-2xx responses; sample dropped"
        return 0
    fi
    [[ -z $errs ]] || note "$s $t round $round: wrk $errs"
    wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')
    record "$t" "$s" "$round" "$rps" "$reqs" $((t1 - t0)) "$wall"
}

# ---------------------------------------------------------------- numbers

# median N...: median of the arguments (empty ones ignored); prints nothing
# for no input.
median() {
    printf '%s\n' "$@" | grep -E '^-?[0-9.eE+-]+$' | sort -g |
        awk '{ a[NR] = $1 }
             END { if (NR == 0) exit
                   if (NR % 2) printf "%.6f\n", a[(NR + 1) / 2]
                   else printf "%.6f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# rotate K WORD...: the words rotated left by K (interleaves server order
# across rounds so no server always runs first or last).
rotate() {
    local k=$1
    shift
    local n=$# i res=()
    local -a w=("$@")
    for ((i = 0; i < n; i++)); do res+=("${w[(i + k) % n]}"); done
    echo "${res[@]}"
}

# ---------------------------------------------------------------- results

declare -A SKIPPED=() # server -> reason

# bench_init NAME: set RAW (raw samples, TSV) and RESULT_MD for a script.
bench_init() {
    BENCH_NAME=${RESULT_NAME:-$1}
    mkdir -p "$RESULTS_DIR"
    RAW=$RESULTS_DIR/$BENCH_NAME.tsv
    # shellcheck disable=SC2034 # used by the scripts
    RESULT_MD=$RESULTS_DIR/$BENCH_NAME.md
    printf 'test\tserver\tround\trate\tops\tcpu_ticks\twall_secs\n' >"$RAW"
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
}

# skip SERVER REASON: leave SERVER out of the rest of the run.
skip() {
    if [[ -z ${SKIPPED[$1]:-} ]]; then
        SKIPPED[$1]=$2
        note "skipping $1: $2"
    fi
}

# record TEST SERVER ROUND RATE OPS CPU_TICKS WALL_SECS
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"
    local us
    us=$(awk -v t="$6" -v o="$5" -v hz="$CLK_TCK" 'BEGIN { if (o > 0) printf "%.3f", t * 1e6 / hz / o; else print "n/a" }')
    note "$1 $2 round $3: rate $(printf '%.0f' "$4")/s, ops $5, server CPU ${us} us/op"
}

# column TEST SERVER FIELD: the FIELD values of the raw samples.
# Fields: rate, cpu_us (server CPU us per op), cpu_pct (server CPU % of wall).
column() {
    awk -F'\t' -v t="$1" -v s="$2" -v f="$3" -v hz="$CLK_TCK" '
        NR > 1 && $1 == t && $2 == s {
            if (f == "rate") print $4
            else if (f == "cpu_us" && $5 > 0) printf "%.6f\n", $6 * 1e6 / hz / $5
            else if (f == "cpu_pct" && $7 > 0) printf "%.3f\n", $6 * 100 / hz / $7
        }' "$RAW"
}

# paired TEST REF PEER FIELD: the median over rounds of REF/PEER for FIELD
# (rate or cpu_us), each ratio taken within one round. A round runs every
# server back to back, so a drift of the machine's speed between rounds
# cancels out of these ratios, where it does not out of a ratio of medians.
paired() {
    # shellcheck disable=SC2046
    median $(awk -F'\t' -v t="$1" -v a="$2" -v b="$3" -v f="$4" '
        function val() { return f == "rate" ? $4 : ($5 > 0 ? $6 / $5 : "") }
        NR > 1 && $1 == t && $2 == a { x[$3] = val() }
        NR > 1 && $1 == t && $2 == b { y[$3] = val() }
        END { for (r in x) if ((r in y) && x[r] != "" && y[r] != "" && y[r] + 0 != 0) printf "%.6f\n", x[r] / y[r] }' "$RAW")
}

# ratio A B [FMT]: A/B, or n/a.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

# print_table TITLE UNIT "TESTS" "SERVERS" [WHO]: markdown table of medians.
# The first server in SERVERS is the reference ("evnet") for the ratios.
# WHO names the measured process in the headings (default "server").
print_table() {
    local title=$1 unit=$2 tests=$3 servers=$4 who=${5:-server} ref t s
    ref=${servers%% *}
    echo "### $title"
    echo
    echo "| test | $who | $unit/s (median) | $who CPU µs/op | $who CPU % | $ref/peer throughput | $ref/peer CPU/op | paired throughput | paired CPU/op | rounds |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in $tests; do
        local ref_rate ref_cpu
        # shellcheck disable=SC2046
        ref_rate=$(median $(column "$t" "$ref" rate))
        # shellcheck disable=SC2046
        ref_cpu=$(median $(column "$t" "$ref" cpu_us))
        for s in $servers; do
            local rates rate cpu pct n
            rates=$(column "$t" "$s" rate)
            n=$(printf '%s' "$rates" | grep -c . || true)
            if ((n == 0)); then
                echo "| $t | $s | — | — | — | — | — | — | — | 0 |"
                continue
            fi
            # shellcheck disable=SC2086
            rate=$(median $rates)
            # shellcheck disable=SC2046
            cpu=$(median $(column "$t" "$s" cpu_us))
            # shellcheck disable=SC2046
            pct=$(median $(column "$t" "$s" cpu_pct))
            local r1 r2 p1 p2
            if [[ $s == "$ref" ]]; then
                r1="1.00" r2="1.00" p1="1.00" p2="1.00"
            else
                r1=$(ratio "$ref_rate" "$rate")
                r2=$(ratio "$ref_cpu" "$cpu")
                p1=$(ratio "$(paired "$t" "$ref" "$s" rate)" 1)
                p2=$(ratio "$(paired "$t" "$ref" "$s" cpu_us)" 1)
            fi
            printf '| %s | %s | %.0f | %.3f | %.0f | %s | %s | %s | %s | %d |\n' \
                "$t" "$s" "$rate" "${cpu:-0}" "${pct:-0}" "$r1" "$r2" "$p1" "$p2" "$n"
        done
    done
    echo
}

# print_header NAME PARAMS: the lines above a script's tables.
print_header() {
    local rev
    rev=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo unknown)
    echo "## $1"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%SZ'), evnet commit: $rev, host: $(uname -r), $(nproc) CPUs"
    echo "- $2"
    echo "- rounds: $ROUNDS (interleaved), server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU; load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
}

# print_notes: skipped servers and the legend, below the tables.
print_notes() {
    local s
    if ((${#SKIPPED[@]})); then
        echo "Skipped:"
        echo
        for s in "${!SKIPPED[@]}"; do echo "- $s: ${SKIPPED[$s]}"; done
        echo
    fi
    echo "Throughput ratio > 1: evnet faster. CPU/op ratio < 1: evnet cheaper per operation."
    echo "Paired: the median of the ratios taken within each round (every server runs back to back in a round, so the machine's drift between rounds cancels out)."
    echo "Server CPU % is the server's CPU time over the run's wall time (100 = one core saturated)."
    echo
}

# ---------------------------------------------------------------- builds

# ensure_peers PKG...: build missing peer binaries (NO_BUILD=1: don't).
# Prints nothing on success; a failed build is only noted (callers check
# for the binary).
ensure_peers() {
    local p missing=()
    # hyper-evnet is built from this checkout's evnet: always brought up to
    # date (a no-op build when nothing changed).
    for p in "$@"; do [[ -x $PEERS_BIN/$p && $p != hyper-evnet ]] || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    [[ -z ${NO_BUILD:-} ]] || return 0
    for p in "${missing[@]}"; do
        note "building peer $p (cargo build --release -p $p)"
        if ! cargo build --release --quiet --manifest-path "$PEERS_DIR/Cargo.toml" -p "$p" >"$BENCH_TMP/build-$p.log" 2>&1; then
            note "build of $p failed: $(tail -n 5 "$BENCH_TMP/build-$p.log" | tr '\n' ' ')"
        fi
    done
}

# build_go NAME...: go build bench/go/NAME.go into bench/go/bin/NAME.
build_go() {
    local n
    if ! command -v go >/dev/null; then
        note "go not found: Go peers unavailable"
        return 0
    fi
    mkdir -p "$GO_BIN"
    for n in "$@"; do
        if [[ -n ${NO_BUILD:-} && -x $GO_BIN/$n ]]; then continue; fi
        (cd "$GO_DIR" && GO111MODULE=off go build -o "bin/$n" "$n.go") >"$BENCH_TMP/build-go-$n.log" 2>&1 ||
            note "go build $n.go failed: $(tail -n 5 "$BENCH_TMP/build-go-$n.log" | tr '\n' ' ')"
    done
}
