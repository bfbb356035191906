#!/usr/bin/env bash
# The measurement behind bench/results/udp-uring.md (issue 15): io_uring UDP
# echo variants (bench/udp/udp_uring.c) against evnet udp-echo and the plain
# recvfrom/sendto loop, with the server's context switches (datagrams per
# wake-up). Server on CPU 0, client (udp_blast, WINDOW 64) on CPU 1, both at
# nice -10 (the machine is shared with builds); one TSV line per run:
#   round  gro|nogro  size  server  datagrams  wall_s  server_cpu_ticks  ctx_switches
#
#   bench/udp/uring_cmp.sh OUT.tsv [SERVERS [SIZES [GROS [ROUNDS [SECS]]]]]
# A server is evnet-batch|evnet-mmsg|evnet-nobatch|plain|uring[-OPT...], the
# OPTs passed to udp_uring (uring-gso-coop: udp_uring PORT gso coop).
set -u
OUT=${1:?usage: uring_cmp.sh OUT.tsv [SERVERS [SIZES [GROS [ROUNDS [SECS]]]]]}
SERVERS=${2:-"uring uring-coop uring-gso uring-gso-coop uring-gso-defer evnet-batch evnet-nobatch plain"}
SIZES=${3:-"64 1200"}
GROS=${4:-"nogro gro"}
ROUNDS=${5:-3}
SECS=${6:-3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
EV=${EVNET:-$ROOT/target/release/evnet}
T=$(mktemp -d "${TMPDIR:-/tmp}/uring-cmp.XXXXXX")
trap 'rm -rf "$T"' EXIT
gcc -O2 -o "$T/udp_plain" "$HERE/udp_plain.c"
gcc -O2 -o "$T/udp_blast" "$HERE/udp_blast.c"
gcc -O2 -o "$T/udp_uring" "$HERE/udp_uring.c" -luring || { echo "liburing-dev missing" >&2; exit 1; }
[[ -x $EV ]] || (cd "$ROOT" && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --bin evnet)
cmd() {
    case $1 in
    evnet-batch) echo "$EV udp-echo --addr 127.0.0.1:$2 --loops 1 --batch auto" ;;
    evnet-mmsg) echo "$EV udp-echo --addr 127.0.0.1:$2 --loops 1 --batch mmsg" ;;
    evnet-nobatch) echo "$EV udp-echo --addr 127.0.0.1:$2 --loops 1 --batch off" ;;
    plain) echo "$T/udp_plain $2" ;;
    uring*) local a=${1#uring}; echo "$T/udp_uring $2 ${a//-/ }" ;;
    esac
}
ticks() { local s; read -r s <"/proc/$1/stat"; s=${s##*) }; set -- $s; echo $((${12} + ${13})); }
csw() { awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { n += $2 } END { print n }' /proc/"$1"/task/*/status; }
freeport() { python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for ((r = 1; r <= ROUNDS; r++)); do for g in $GROS; do for size in $SIZES; do for s in $SERVERS; do
    port=$(freeport)
    # shellcheck disable=SC2046
    nice -n -10 taskset -c 0 $(cmd "$s" "$port") </dev/null >"$T/$s.log" 2>&1 &
    P=$!
    for _ in $(seq 40); do ss -Hun "sport = :$port" | grep -q . && break; sleep 0.05; done
    gargs=()
    [[ $g == gro ]] && gargs=(gro)
    nice -n -10 taskset -c 1 "$T/udp_blast" "$port" "$size" 1 64 "${gargs[@]}" >/dev/null
    t0=$(ticks $P); c0=$(csw $P)
    read -r n wall < <(nice -n -10 taskset -c 1 "$T/udp_blast" "$port" "$size" "$SECS" 64 "${gargs[@]}")
    t1=$(ticks $P); c1=$(csw $P)
    kill $P; wait $P 2>/dev/null
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$g" "${size}B" "$s" "$n" "$wall" $((t1 - t0)) $((c1 - c0)) | tee -a "$OUT"
done; done; done; done
