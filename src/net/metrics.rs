//! Reading the loops' counters from any thread and writing them out: the
//! Prometheus text format (version 0.0.4), nginx's `stub_status` page, and
//! JSON for a status page.
//!
//! Every loop keeps its own counters ([`LoopStats`]), written only by its
//! thread; a [`Snapshot`] reads them all (relaxed loads, no lock, nothing
//! asked of the loops) and sums them. The counters are the loop's, not one
//! server's: a loop that serves two servers counts both.
//!
//! Safe to call from any thread.

use std::fmt::Write as _;
use std::io;
use std::sync::atomic::Ordering;

use crate::reactor::stats::{
    ACCEPT_ERROR_SLOTS, CLOSE_SLOTS, KCP_DROPPED_SLOTS, LATENCY_BOUNDS_NS, PROXY_REFUSED_SLOTS,
    STATUS_CLASSES,
};
use crate::reactor::{LoopHandle, LoopStats};

/// Label values of the close counters, by [`CloseReason::slot`](super::CloseReason::slot).
pub const CLOSE_REASONS: [&str; CLOSE_SLOTS] = [
    "peer_closed",
    "reset",
    "local",
    "aborted",
    "idle_timeout",
    "read_timeout",
    "write_timeout",
    "shutdown",
    "protocol",
    "error",
];

/// Label values of the accept error counters, by slot: out of fds for the
/// process, out of fds for the system, out of memory (ENOBUFS/ENOMEM), the
/// peer gave up first (ECONNABORTED/EPROTO/EPERM), anything else.
pub const ACCEPT_ERRORS: [&str; ACCEPT_ERROR_SLOTS] =
    ["emfile", "enfile", "enomem", "aborted", "other"];

/// Label values of the PROXY protocol refusals, by slot: the peer is not
/// in a trusted network, the header is malformed or too long, it did not
/// arrive in time, the peer closed (or the socket failed) before it ended.
pub const PROXY_REFUSED: [&str; PROXY_REFUSED_SLOTS] =
    ["untrusted", "malformed", "timeout", "closed"];

/// What a KCP server dropped, by slot: a malformed datagram or one of
/// another conversation; a new peer's first datagram refused because the
/// session table was full; a session evicted to make room for a new peer.
pub const KCP_DROPPED: [&str; KCP_DROPPED_SLOTS] = ["bad_datagram", "refused_full", "evicted"];

/// One loop's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopCounters {
    /// The loop's id.
    pub id: usize,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections ever accepted (or dialed) on the loop.
    pub connections_total: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes the sockets took.
    pub bytes_out: u64,
    /// Messages (requests, commands) handled.
    pub messages: u64,
    /// Connections closed, by [`CLOSE_REASONS`].
    pub closed: [u64; CLOSE_SLOTS],
    /// Failed accepts, by [`ACCEPT_ERRORS`].
    pub accept_errors: [u64; ACCEPT_ERROR_SLOTS],
    /// Sockets refused by the PROXY protocol stage, by [`PROXY_REFUSED`].
    pub proxy_refused: [u64; PROXY_REFUSED_SLOTS],
    /// KCP drops, by [`KCP_DROPPED`].
    pub kcp_dropped: [u64; KCP_DROPPED_SLOTS],
    /// Responses by status class (1xx at 0).
    pub responses: [u64; STATUS_CLASSES],
    /// Latency observations per bucket (not cumulative), the last past
    /// every bound of [`LATENCY_BOUNDS_NS`].
    pub latency: [u64; LATENCY_BOUNDS_NS.len() + 1],
    /// Sum of the latencies, in nanoseconds.
    pub latency_sum_ns: u64,
}

impl LoopCounters {
    /// Read one loop's counters.
    pub fn read(id: usize, s: &LoopStats) -> LoopCounters {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        LoopCounters {
            id,
            connections_open: s.connections_open.load(Ordering::Relaxed) as u64,
            connections_total: get(&s.connections_total),
            bytes_in: get(&s.bytes_in),
            bytes_out: get(&s.bytes_out),
            messages: get(&s.messages),
            closed: std::array::from_fn(|i| get(&s.closed[i])),
            accept_errors: std::array::from_fn(|i| get(&s.accept_errors[i])),
            proxy_refused: std::array::from_fn(|i| get(&s.proxy_refused[i])),
            kcp_dropped: std::array::from_fn(|i| get(&s.kcp_dropped[i])),
            responses: std::array::from_fn(|i| get(&s.responses[i])),
            latency: std::array::from_fn(|i| get(&s.latency.buckets[i])),
            latency_sum_ns: get(&s.latency.sum_ns),
        }
    }

    fn add(&mut self, o: &LoopCounters) {
        fn sum<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x = x.wrapping_add(*y);
            }
        }
        self.connections_open += o.connections_open;
        self.connections_total = self.connections_total.wrapping_add(o.connections_total);
        self.bytes_in = self.bytes_in.wrapping_add(o.bytes_in);
        self.bytes_out = self.bytes_out.wrapping_add(o.bytes_out);
        self.messages = self.messages.wrapping_add(o.messages);
        sum(&mut self.closed, &o.closed);
        sum(&mut self.accept_errors, &o.accept_errors);
        sum(&mut self.proxy_refused, &o.proxy_refused);
        sum(&mut self.kcp_dropped, &o.kcp_dropped);
        sum(&mut self.responses, &o.responses);
        sum(&mut self.latency, &o.latency);
        self.latency_sum_ns = self.latency_sum_ns.wrapping_add(o.latency_sum_ns);
    }

    /// Responses counted (the latency observations).
    pub fn responses_total(&self) -> u64 {
        self.latency.iter().sum()
    }
}

/// The kernel's listen-queue counters (`TcpExt: ListenOverflows
/// ListenDrops` in `/proc/net/netstat`). They count for the whole network
/// namespace, not one listener: a SYN or final ACK dropped because some
/// accept queue was full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenQueue {
    /// Connections completed while the accept queue was full.
    pub overflows: u64,
    /// Connections dropped before the accept queue (overflows included).
    pub drops: u64,
}

impl ListenQueue {
    /// Read `/proc/net/netstat`.
    pub fn read() -> io::Result<ListenQueue> {
        let text = std::fs::read_to_string("/proc/net/netstat")
            .map_err(|e| io::Error::new(e.kind(), format!("read /proc/net/netstat: {e}")))?;
        ListenQueue::parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "/proc/net/netstat: no TcpExt ListenOverflows/ListenDrops",
            )
        })
    }

    /// Parse the text of `/proc/net/netstat`: a `TcpExt:` line of names
    /// followed by a `TcpExt:` line of values.
    pub fn parse(text: &str) -> Option<ListenQueue> {
        let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let names = lines.next()?.split_whitespace();
        let values = lines.next()?.split_whitespace();
        let (mut overflows, mut drops) = (None, None);
        for (n, v) in names.zip(values).skip(1) {
            match n {
                "ListenOverflows" => overflows = v.parse().ok(),
                "ListenDrops" => drops = v.parse().ok(),
                _ => {}
            }
        }
        Some(ListenQueue {
            overflows: overflows?,
            drops: drops?,
        })
    }
}

/// Every loop's counters at one moment, and their sum.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Per loop, in the order given.
    pub loops: Vec<LoopCounters>,
    /// The sum over the loops.
    pub total: LoopCounters,
}

impl Snapshot {
    /// Read the counters of `loops`.
    pub fn of(loops: &[LoopHandle]) -> Snapshot {
        let loops: Vec<LoopCounters> = loops
            .iter()
            .map(|l| LoopCounters::read(l.id(), l.stats()))
            .collect();
        let mut total = LoopCounters::default();
        for l in &loops {
            total.add(l);
        }
        Snapshot { loops, total }
    }

    /// Append the Prometheus text exposition (format 0.0.4) to `out`, every
    /// name prefixed with `prefix` (e.g. `evnet`). `listen`: the kernel's
    /// listen-queue counters, if they could be read. `http`: include the
    /// request counters by status class and the latency histogram.
    pub fn write_prometheus(
        &self,
        out: &mut String,
        prefix: &str,
        listen: Option<ListenQueue>,
        http: bool,
    ) {
        let t = &self.total;
        fn head(out: &mut String, prefix: &str, name: &str, kind: &str, help: &str) {
            let _ = write!(
                out,
                "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} {kind}\n"
            );
        }
        head(
            out,
            prefix,
            "connections_accepted_total",
            "counter",
            "Connections accepted.",
        );
        let _ = writeln!(
            out,
            "{prefix}_connections_accepted_total {}",
            t.connections_total
        );
        head(
            out,
            prefix,
            "connections_active",
            "gauge",
            "Connections open now.",
        );
        let _ = writeln!(out, "{prefix}_connections_active {}", t.connections_open);
        head(
            out,
            prefix,
            "connections_closed_total",
            "counter",
            "Connections closed, by reason.",
        );
        for (i, r) in CLOSE_REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{prefix}_connections_closed_total{{reason=\"{r}\"}} {}",
                t.closed[i]
            );
        }
        head(
            out,
            prefix,
            "accept_errors_total",
            "counter",
            "Failed accept calls, by error.",
        );
        for (i, e) in ACCEPT_ERRORS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{prefix}_accept_errors_total{{error=\"{e}\"}} {}",
                t.accept_errors[i]
            );
        }
        head(
            out,
            prefix,
            "proxy_refused_total",
            "counter",
            "Accepted sockets closed by the PROXY protocol stage, by reason.",
        );
        for (i, r) in PROXY_REFUSED.iter().enumerate() {
            let _ = writeln!(
                out,
                "{prefix}_proxy_refused_total{{reason=\"{r}\"}} {}",
                t.proxy_refused[i]
            );
        }
        head(
            out,
            prefix,
            "kcp_dropped_total",
            "counter",
            "KCP datagrams dropped and sessions evicted, by cause.",
        );
        for (i, r) in KCP_DROPPED.iter().enumerate() {
            let _ = writeln!(
                out,
                "{prefix}_kcp_dropped_total{{cause=\"{r}\"}} {}",
                t.kcp_dropped[i]
            );
        }
        head(
            out,
            prefix,
            "received_bytes_total",
            "counter",
            "Bytes read from sockets.",
        );
        let _ = writeln!(out, "{prefix}_received_bytes_total {}", t.bytes_in);
        head(
            out,
            prefix,
            "sent_bytes_total",
            "counter",
            "Bytes written to sockets.",
        );
        let _ = writeln!(out, "{prefix}_sent_bytes_total {}", t.bytes_out);
        head(
            out,
            prefix,
            "messages_total",
            "counter",
            "Messages handled (HTTP requests, RESP commands).",
        );
        let _ = writeln!(out, "{prefix}_messages_total {}", t.messages);
        if http {
            self.write_http(out, prefix);
        }
        if let Some(q) = listen {
            head(
            out,
            prefix,
                "tcp_listen_overflows_total",
                "counter",
                "Connections completed while an accept queue was full (TcpExt ListenOverflows, whole network namespace).",
            );
            let _ = writeln!(out, "{prefix}_tcp_listen_overflows_total {}", q.overflows);
            head(
            out,
            prefix,
                "tcp_listen_drops_total",
                "counter",
                "Connections dropped before an accept queue (TcpExt ListenDrops, whole network namespace).",
            );
            let _ = writeln!(out, "{prefix}_tcp_listen_drops_total {}", q.drops);
        }
        self.write_loops(out, prefix);
    }

    fn write_http(&self, out: &mut String, prefix: &str) {
        let t = &self.total;
        let _ = write!(
            out,
            "# HELP {prefix}_http_responses_total HTTP responses, by status class.\n\
             # TYPE {prefix}_http_responses_total counter\n"
        );
        for (i, n) in t.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "{prefix}_http_responses_total{{class=\"{}xx\"}} {n}",
                i + 1
            );
        }
        let _ = write!(
            out,
            "# HELP {prefix}_http_request_duration_seconds From the start of the loop turn that completed a request until its response was produced.\n\
             # TYPE {prefix}_http_request_duration_seconds histogram\n"
        );
        let mut cumulative = 0u64;
        for (i, bound) in LATENCY_BOUNDS_NS.iter().enumerate() {
            cumulative += t.latency[i];
            let _ = writeln!(
                out,
                "{prefix}_http_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e9
            );
        }
        cumulative += t.latency[LATENCY_BOUNDS_NS.len()];
        let _ = writeln!(
            out,
            "{prefix}_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
             {prefix}_http_request_duration_seconds_sum {}\n\
             {prefix}_http_request_duration_seconds_count {cumulative}",
            t.latency_sum_ns as f64 / 1e9
        );
    }

    fn write_loops(&self, out: &mut String, prefix: &str) {
        type Field = fn(&LoopCounters) -> u64;
        let per: [(&str, &str, &str, Field); 5] = [
            (
                "loop_connections_active",
                "gauge",
                "Connections open now, per loop.",
                |l| l.connections_open,
            ),
            (
                "loop_connections_accepted_total",
                "counter",
                "Connections accepted, per loop.",
                |l| l.connections_total,
            ),
            (
                "loop_messages_total",
                "counter",
                "Messages handled, per loop.",
                |l| l.messages,
            ),
            (
                "loop_received_bytes_total",
                "counter",
                "Bytes read from sockets, per loop.",
                |l| l.bytes_in,
            ),
            (
                "loop_sent_bytes_total",
                "counter",
                "Bytes written to sockets, per loop.",
                |l| l.bytes_out,
            ),
        ];
        for (name, kind, help, f) in per {
            let _ = write!(
                out,
                "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} {kind}\n"
            );
            for l in &self.loops {
                let _ = writeln!(out, "{prefix}_{name}{{loop=\"{}\"}} {}", l.id, f(l));
            }
        }
    }

    /// Append nginx's `stub_status` page to `out`, so nginx exporters and
    /// dashboards read it unchanged. evnet keeps no per-connection phase
    /// counts: Reading and Writing are 0 and every open connection is
    /// reported Waiting; `accepts` and `handled` are both the connections
    /// accepted (evnet drops none it accepted).
    pub fn write_stub_status(&self, out: &mut String) {
        let t = &self.total;
        let _ = write!(
            out,
            "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: 0 Writing: 0 Waiting: {} \n",
            t.connections_open, t.connections_total, t.connections_total, t.messages, t.connections_open
        );
    }

    /// Append the counters as one JSON object to `out` (for a status page):
    /// the totals, closes by reason, and per loop.
    pub fn write_json(&self, out: &mut String) {
        fn counters(out: &mut String, l: &LoopCounters) {
            let _ = write!(
                out,
                "\"connections_open\":{},\"connections_total\":{},\"requests\":{},\"bytes_in\":{},\"bytes_out\":{}",
                l.connections_open, l.connections_total, l.messages, l.bytes_in, l.bytes_out
            );
        }
        let t = &self.total;
        out.push('{');
        counters(out, t);
        out.push_str(",\"closed\":{");
        for (i, r) in CLOSE_REASONS.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{r}\":{}", t.closed[i]);
        }
        out.push_str("},\"responses\":{");
        for (i, n) in t.responses.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{}xx\":{n}", i + 1);
        }
        out.push_str("},\"loops\":[");
        for (i, l) in self.loops.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"id\":{},", l.id);
            counters(out, l);
            out.push('}');
        }
        out.push_str("]}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_queue_counters_are_read_from_the_tcpext_lines() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n\
                    TcpExt: 0 7 9 100\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(
            ListenQueue::parse(text),
            Some(ListenQueue {
                overflows: 7,
                drops: 9
            })
        );
        assert_eq!(ListenQueue::parse("IpExt: A\nIpExt: 1\n"), None);
        assert_eq!(ListenQueue::parse("TcpExt: ListenDrops\nTcpExt: 3\n"), None);
    }

    #[test]
    fn stub_status_has_nginx_layout() {
        let mut s = Snapshot::default();
        s.total.connections_open = 3;
        s.total.connections_total = 10;
        s.total.messages = 42;
        let mut out = String::new();
        s.write_stub_status(&mut out);
        assert_eq!(
            out,
            "Active connections: 3 \nserver accepts handled requests\n 10 10 42 \nReading: 0 Writing: 0 Waiting: 3 \n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let mut s = Snapshot::default();
        s.total.latency[0] = 2;
        s.total.latency[3] = 1;
        s.total.latency[LATENCY_BOUNDS_NS.len()] = 1;
        s.total.latency_sum_ns = 1_500_000_000;
        let mut out = String::new();
        s.write_prometheus(&mut out, "evnet", None, true);
        assert!(out.contains("evnet_http_request_duration_seconds_bucket{le=\"0.0001\"} 2\n"));
        assert!(out.contains("evnet_http_request_duration_seconds_bucket{le=\"0.001\"} 3\n"));
        assert!(out.contains("evnet_http_request_duration_seconds_bucket{le=\"10\"} 3\n"));
        assert!(out.contains("evnet_http_request_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(out.contains("evnet_http_request_duration_seconds_count 4\n"));
        assert!(out.contains("evnet_http_request_duration_seconds_sum 1.5\n"));
    }
}
