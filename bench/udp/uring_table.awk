# Markdown table of bench/udp/uring_cmp.sh samples: medians over rounds of
# datagrams/s, server CPU µs per datagram (ticks of 1/100 s), server CPU %,
# datagrams per server context switch, and the paired CPU/op ratio to
# evnet-batch (median of the per-round ratios), and the lowest CPU/dgram
# seen (a shared machine only adds cost). Several files pool their rounds
# (a round is FILE:ROUND, so pairs stay within one run).
#   awk -f bench/udp/uring_table.awk samples.tsv...
BEGIN { FS = "\t" }
function med(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    t = ($2 == "gro" ? "client GRO, " : "") $3
    k = t SUBSEP $4
    if (!(t in seen_t)) { seen_t[t] = 1; tests[++nt] = t }
    if (!($4 in seen_s)) { seen_s[$4] = 1; servers[++ns] = $4 }
    us = $5 > 0 ? $7 * 1e4 / $5 : 0
    R[k] = R[k] " " $5 / $6; U[k] = U[k] " " us; P[k] = P[k] " " $7 / $6
    C[k] = C[k] " " $5 / ($8 > 0 ? $8 : 1); N[k]++
    rd = FILENAME ":" $1
    us_of[t, $4, rd] = us
    rounds[rd] = 1
    if (!((k) in lo) || us < lo[k]) lo[k] = us
}
END {
    print "| test | server | dgrams/s | server CPU µs/dgram | lowest µs/dgram | server CPU % | dgrams per context switch | CPU/dgram vs evnet-batch (paired) | rounds |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nt; i++) for (j = 1; j <= ns; j++) {
        t = tests[i]; s = servers[j]; k = t SUBSEP s
        if (!(k in N)) continue
        ratios = ""
        for (r in rounds) if ((t, s, r) in us_of && (t, "evnet-batch", r) in us_of && us_of[t, "evnet-batch", r] > 0)
            ratios = ratios " " us_of[t, s, r] / us_of[t, "evnet-batch", r]
        printf "| %s | %s | %.0f | %.2f | %.2f | %.0f | %.0f | %s | %d |\n", t, s, med(R[k]), med(U[k]), lo[k], med(P[k]), med(C[k]),
            ratios == "" ? "n/a" : sprintf("%.2f", med(ratios)), N[k]
    }
}
