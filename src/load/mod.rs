//! A wrk-like load generator on the [`Connector`]: echo, HTTP/1.1 and RESP
//! targets, closed loop (each connection keeps `pipeline` requests in
//! flight) or open loop at a fixed rate with coordinated-omission
//! correction (latency counts from the time a request was *scheduled*, so a
//! stalled server cannot hide its stall by delaying our sends).
//!
//! One event loop per thread; connections are spread over the threads and
//! over the source addresses in [`LoadConfig::bind`]. Each thread keeps its
//! own histogram; they are merged at the end. A connection that breaks is
//! counted by kind and replaced, and the requests it had in flight go back
//! to the budget, so `requests = N` always reports exactly N answered.

pub mod http;
pub mod kcp;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::codec::resp::{write_command, Reply, ReplyDecoder};
use crate::codec::Decoder;
use crate::net::{Addr, Buffer, ClientService, CloseReason, Conn, Connector, EventHandler};
use crate::reactor::{EventLoop, LoopConfig, LoopCtx, LoopGroup, LoopStart};

/// What to send and how to check the answer.
#[derive(Clone, Debug)]
pub enum Target {
    /// Fixed-size messages; every echoed byte is verified.
    Echo {
        /// Message size in bytes (must be > 0, or [`run`] fails with
        /// `InvalidInput`). One message is one request: it is answered when
        /// all of its bytes came back.
        size: usize,
    },
    /// HTTP/1.1 requests; non-2xx answers are counted.
    ///
    /// The request is built once and sent as is: request line, `Host`,
    /// `headers` in order, then `Content-Length` if `body` is not empty. A
    /// `HEAD` method makes the parser expect no body in the answers.
    Http {
        /// Request method, sent verbatim (`GET`, `POST`, `HEAD`...).
        method: String,
        /// Request target, e.g. `/` or `/index.html?x=1`, sent verbatim.
        path: String,
        /// Value of the `Host` header.
        host: String,
        /// Extra headers as (name, value), in order. Do not add
        /// `Content-Length`: it is derived from `body`.
        headers: Vec<(String, String)>,
        /// Request body (empty: none, and no `Content-Length`).
        body: Vec<u8>,
    },
    /// RESP GET/SET on `keys` keys; `get_ratio` of the commands are GETs.
    ///
    /// Keys are `key:0` .. `key:{keys-1}`, picked uniformly at random per
    /// command. RESP error replies count as [`Report::non_success`].
    Resp {
        /// Fraction of commands that are GET, 0.0..=1.0 (the rest are SET).
        get_ratio: f64,
        /// Size of the key space (0 is treated as 1).
        keys: u64,
        /// Size of each SET value in bytes.
        value_size: usize,
    },
}

/// A load run. `requests` (exact count) or `duration` ends it.
///
/// Build one with [`LoadConfig::new`] (which fills in the defaults listed on
/// each field) and change the public fields; then pass it to [`run`].
#[derive(Clone)]
pub struct LoadConfig {
    /// The server to load (TCP or Unix socket address).
    pub addr: Addr,
    /// What to send and how to check the answers.
    pub target: Target,
    /// Concurrent connections, spread as evenly as possible over the
    /// threads. Default 10; 0 makes [`run`] fail with `InvalidInput`.
    pub connections: usize,
    /// Event-loop threads (one loop each). Default 1; clamped to
    /// `1..=connections`.
    pub threads: usize,
    /// How long to measure, after the warmup. Default 10 s. With
    /// `requests` set too, the run ends at whichever comes first; set it to
    /// `None` for a pure request-count run. At least one of `duration` and
    /// `requests` must be set, or [`run`] fails with `InvalidInput`.
    pub duration: Option<Duration>,
    /// Exact number of answers to collect (default `None`). Requests lost
    /// on broken connections are sent again, so the report counts exactly
    /// this many unless the run gives up: with no `duration`, it stops
    /// when nothing was answered for `timeout + connect_timeout`.
    pub requests: Option<u64>,
    /// Time spent sending before measurement starts: its answers,
    /// latencies and most errors are not recorded (dial failures always
    /// are). Default zero. Ignored when `requests` is set, so that the
    /// count stays exact.
    pub warmup: Duration,
    /// Requests per write (closed loop: a connection sends `pipeline`
    /// requests at once and waits for all answers before the next batch).
    pub pipeline: usize,
    /// Open loop: requests per second across all connections.
    pub rate: Option<f64>,
    /// Source addresses to spread connections over (empty: the kernel picks).
    pub bind: Vec<IpAddr>,
    /// Limit on one dial, counted as an [`Errors::timeout`] when hit.
    /// Default 5 s. A failed dial is retried after 100 ms.
    pub connect_timeout: Duration,
    /// A request unanswered this long counts as a timeout and its connection is replaced.
    /// Default 10 s; checked every `timeout / 4`, so a timeout is detected
    /// up to a quarter later.
    pub timeout: Duration,
    /// Called about every 250 ms with (elapsed, requests so far).
    /// Elapsed is counted from the end of the warmup (from the start while
    /// warming up); the count is of recorded answers, so it stays 0 during
    /// warmup. Called on the thread that called
    /// [`run`], so it must not block for long. Default `None`.
    pub progress: Option<Arc<dyn Fn(Duration, u64) + Send + Sync>>,
    /// Dial TLS (feature `tls`). Default `None`. Reconnections resume the
    /// session unless the connector turned resumption off
    /// ([`TlsConnector::without_resumption`](crate::net::tls::TlsConnector::without_resumption)).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::net::tls::TlsConnector>,
}

impl LoadConfig {
    /// A run against `addr` with the defaults: 10 connections on 1 thread,
    /// 10 s measured with no warmup, pipeline 1 (closed loop), no rate
    /// limit, no source addresses, 5 s connect timeout, 10 s request
    /// timeout, no progress callback.
    pub fn new(addr: impl Into<Addr>, target: Target) -> LoadConfig {
        LoadConfig {
            addr: addr.into(),
            target,
            connections: 10,
            threads: 1,
            duration: Some(Duration::from_secs(10)),
            requests: None,
            warmup: Duration::ZERO,
            pipeline: 1,
            rate: None,
            bind: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            progress: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Failures by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors {
    /// A dial failed (refused, unreachable...).
    pub connect: u64,
    /// A dial or a request timed out.
    pub timeout: u64,
    /// The peer reset the connection.
    pub reset: u64,
    /// The peer closed a connection with requests outstanding.
    pub closed: u64,
    /// An answer that does not parse or does not match (echo).
    pub bad_reply: u64,
    /// Anything else.
    pub other: u64,
}

impl Errors {
    /// The sum of all the kinds.
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.reset + self.closed + self.bad_reply + self.other
    }

    pub(crate) fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.reset += o.reset;
        self.closed += o.closed;
        self.bad_reply += o.bad_reply;
        self.other += o.other;
    }
}

/// The outcome of a run (after warmup).
#[derive(Clone, Debug)]
pub struct Report {
    /// Answers received and recorded (after warmup), successful or not
    /// (see `non_success`).
    pub requests: u64,
    /// Wall-clock time measured, from the end of the warmup to the end of
    /// the run.
    pub elapsed: Duration,
    /// Request bytes written to the sockets, warmup included.
    pub bytes_sent: u64,
    /// Answer bytes read from the sockets, warmup included.
    pub bytes_received: u64,
    /// Failures by kind (after warmup, except dial failures which are
    /// always counted).
    pub errors: Errors,
    /// HTTP answers outside 2xx, RESP error replies.
    pub non_success: u64,
    /// Latency in microseconds (1 us to 1 h, 3 significant digits): from
    /// when a request was sent (closed loop) or scheduled (open loop) to
    /// when its answer was complete.
    pub latency: Histogram<u64>,
}

impl Report {
    /// Answers per second over [`elapsed`](Report::elapsed).
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1).
    pub fn latency_at(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(q))
    }

    /// The report as one line of JSON: `requests`, `elapsed_s`,
    /// `throughput` (answers/s), `bytes_sent`, `bytes_received`,
    /// `bytes_per_s` (received), `non_success`, `errors` (each kind and
    /// `total`) and `latency_us` (`p50`, `p90`, `p99`, `p999`, `max`,
    /// `mean`, in microseconds).
    pub fn to_json(&self) -> String {
        let l = |q: f64| self.latency.value_at_quantile(q);
        let e = &self.errors;
        format!(
            concat!(
                "{{\"requests\":{},\"elapsed_s\":{:.6},\"throughput\":{:.3},\"bytes_sent\":{},",
                "\"bytes_received\":{},\"bytes_per_s\":{:.3},\"non_success\":{},",
                "\"errors\":{{\"connect\":{},\"timeout\":{},\"reset\":{},\"closed\":{},\"bad_reply\":{},\"other\":{},\"total\":{}}},",
                "\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{},\"mean\":{:.1}}}}}"
            ),
            self.requests,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.bytes_sent,
            self.bytes_received,
            self.bytes_received as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.non_success,
            e.connect,
            e.timeout,
            e.reset,
            e.closed,
            e.bad_reply,
            e.other,
            e.total(),
            l(0.5),
            l(0.9),
            l(0.99),
            l(0.999),
            self.latency.max(),
            self.latency.mean(),
        )
    }
}

/// State shared by every thread of a run.
struct Control {
    /// Requests still to send (`requests` mode); i64 so a give-back after
    /// an over-take cannot wrap.
    budget: Option<AtomicI64>,
    /// Answers recorded (after warmup).
    done: AtomicU64,
    recording: AtomicBool,
    stopping: AtomicBool,
}

impl Control {
    fn take(&self) -> bool {
        match &self.budget {
            None => !self.stopping.load(Ordering::Relaxed),
            Some(b) => {
                // Never below zero: a failed take must not eat requests that
                // a broken connection gives back later.
                !self.stopping.load(Ordering::Relaxed)
                    && b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n > 0).then(|| n - 1)
                    })
                    .is_ok()
            }
        }
    }

    fn give_back(&self, n: u64) {
        if let Some(b) = &self.budget {
            b.fetch_add(n as i64, Ordering::Relaxed);
        }
    }
}

/// Per-thread tallies, merged into the report.
struct Tally {
    hist: Histogram<u64>,
    requests: u64,
    bytes_sent: u64,
    bytes_received: u64,
    errors: Errors,
    non_success: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds"),
            requests: 0,
            bytes_sent: 0,
            bytes_received: 0,
            errors: Errors::default(),
            non_success: 0,
        }
    }
}

/// Prebuilt requests for a target.
struct Requests {
    target: Target,
    /// Echo: the message; HTTP: the request.
    fixed: Vec<u8>,
    head: bool,
}

impl Requests {
    fn new(target: &Target) -> Requests {
        let mut fixed = Vec::new();
        let mut head = false;
        match target {
            Target::Echo { size } => {
                let mut x = 0x2545_F491_4F6C_DD1Du64;
                fixed = (0..*size)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
            }
            Target::Http {
                method,
                path,
                host,
                headers,
                body,
            } => {
                head = method.eq_ignore_ascii_case("HEAD");
                fixed.extend_from_slice(
                    format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes(),
                );
                for (k, v) in headers {
                    fixed.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                }
                if !body.is_empty() {
                    fixed.extend_from_slice(
                        format!("Content-Length: {}\r\n", body.len()).as_bytes(),
                    );
                }
                fixed.extend_from_slice(b"\r\n");
                fixed.extend_from_slice(body);
            }
            Target::Resp { .. } => {}
        }
        Requests {
            target: target.clone(),
            fixed,
            head,
        }
    }

    fn write(&self, out: &mut Vec<u8>, rng: &mut u64) {
        match &self.target {
            Target::Resp {
                get_ratio,
                keys,
                value_size,
            } => {
                let r = xorshift(rng);
                let key = format!("key:{}", r % (*keys).max(1));
                if ((r >> 20) as f64 / (1u64 << 44) as f64) < *get_ratio {
                    write_command(out, &[b"GET".as_slice(), key.as_bytes()]);
                } else {
                    let value = vec![b'x'; *value_size];
                    write_command(out, &[b"SET".as_slice(), key.as_bytes(), &value]);
                }
            }
            _ => out.extend_from_slice(&self.fixed),
        }
    }
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Dials (and redials) this thread's connections. Holds no handler
/// borrow, so it can run from inside the handler's callbacks.
#[derive(Clone)]
struct Dialer {
    ctl: Arc<Control>,
    tally: Rc<RefCell<Tally>>,
    /// Connections open or being dialed on this loop.
    live: Rc<Cell<usize>>,
    connectors: Rc<Vec<Connector>>,
    next: Rc<Cell<usize>>,
    /// The loop's client service (set once, right after the dialer is made:
    /// the service's handler holds the dialer).
    svc: Rc<std::cell::OnceCell<ClientService<Loader>>>,
}

impl Dialer {
    /// Dial one connection; `counted`: it is already in `live` (a redial).
    fn dial(&self, lp: &mut LoopCtx<'_>, counted: bool) {
        if !counted {
            self.live.set(self.live.get() + 1);
        }
        let i = self.next.get();
        self.next.set(i + 1);
        let c = &self.connectors[i % self.connectors.len()];
        let svc = self.svc.get().expect("the loop's service is created first");
        let me = self.clone();
        c.connect_on(lp, svc, move |lp, e| {
            let kind = if e.kind() == io::ErrorKind::TimedOut {
                ErrKind::Timeout
            } else {
                ErrKind::Connect
            };
            count(&me.ctl, &me.tally, kind);
            if me.ctl.stopping.load(Ordering::Relaxed) {
                me.live.set(me.live.get() - 1);
            } else {
                // Do not hammer a server that refuses: try again a little later.
                lp.run_after(Duration::from_millis(100), move |lp| me.dial(lp, true));
            }
        });
    }
}

fn count(ctl: &Control, tally: &RefCell<Tally>, kind: ErrKind) {
    if !ctl.recording.load(Ordering::Relaxed) && kind != ErrKind::Connect {
        return;
    }
    let mut t = tally.borrow_mut();
    let e = &mut t.errors;
    match kind {
        ErrKind::Connect => e.connect += 1,
        ErrKind::Timeout => e.timeout += 1,
        ErrKind::Reset => e.reset += 1,
        ErrKind::Closed => e.closed += 1,
        ErrKind::BadReply => e.bad_reply += 1,
        ErrKind::Other => e.other += 1,
    }
}

/// One thread's handler (shared by its connections).
struct Loader {
    ctl: Arc<Control>,
    reqs: Rc<Requests>,
    tally: Rc<RefCell<Tally>>,
    dialer: Dialer,
    pipeline: usize,
    /// Open loop: time between sends on one connection.
    interval: Option<Duration>,
    timeout: Duration,
    rng: u64,
    scratch: Vec<u8>,
}

/// Per-connection protocol state.
#[derive(Default)]
struct Ctx {
    /// When each outstanding request was sent (or scheduled, open loop).
    pending: VecDeque<Instant>,
    /// Echo: offset into the message of the next expected byte.
    echo_off: usize,
    http: http::ResponseParser,
    resp: ReplyDecoder,
    /// Open loop: when the next request is due.
    next_due: Option<Instant>,
    failed: bool,
}

impl Loader {
    /// Send a batch of up to `n` requests (closed loop).
    fn send_batch(&mut self, conn: &mut Conn<'_, Self>, n: usize) {
        let now = Instant::now();
        self.scratch.clear();
        let mut sent = 0;
        for _ in 0..n {
            if !self.ctl.take() {
                break;
            }
            self.reqs.write(&mut self.scratch, &mut self.rng);
            conn.context().pending.push_back(now);
            sent += 1;
        }
        if sent > 0 {
            self.tally.borrow_mut().bytes_sent += self.scratch.len() as u64;
            let _ = conn.write(&self.scratch);
        } else if self.ctl.stopping.load(Ordering::Relaxed) || self.ctl.budget.is_some() {
            conn.close();
        }
    }

    /// Open loop: send every request due by now, stamped with its due time.
    fn send_due(&mut self, conn: &mut Conn<'_, Self>) {
        let Some(interval) = self.interval else {
            return;
        };
        if conn.context().http.closing() {
            if conn.context().pending.is_empty() {
                conn.close();
            }
            return;
        }
        let now = Instant::now();
        self.scratch.clear();
        let mut due = conn.context().next_due.unwrap_or(now);
        while due <= now {
            if !self.ctl.take() {
                if self.scratch.is_empty() && conn.context().pending.is_empty() {
                    conn.close();
                    return;
                }
                break;
            }
            self.reqs.write(&mut self.scratch, &mut self.rng);
            conn.context().pending.push_back(due);
            due += interval;
        }
        conn.context().next_due = Some(due);
        if !self.scratch.is_empty() {
            self.tally.borrow_mut().bytes_sent += self.scratch.len() as u64;
            let _ = conn.write(&self.scratch);
        }
        let wait = due.saturating_duration_since(Instant::now());
        conn.run_after(wait, |h, c| h.send_due(c));
    }

    fn answered(&mut self, conn: &mut Conn<'_, Self>, success: bool) {
        let Some(t0) = conn.context().pending.pop_front() else {
            self.fail(conn, ErrKind::BadReply);
            return;
        };
        if self.ctl.recording.load(Ordering::Relaxed) {
            let mut t = self.tally.borrow_mut();
            let us = t0.elapsed().as_micros().max(1) as u64;
            t.hist.saturating_record(us);
            t.requests += 1;
            if !success {
                t.non_success += 1;
            }
            self.ctl.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fail(&mut self, conn: &mut Conn<'_, Self>, kind: ErrKind) {
        if conn.context().failed {
            return;
        }
        conn.context().failed = true;
        count(&self.ctl, &self.tally, kind);
        conn.abort();
    }

    /// Parse what arrived; returns answers completed.
    fn parse(
        &mut self,
        conn: &mut Conn<'_, Self>,
        input: &mut Buffer,
    ) -> Result<(usize, usize), ()> {
        let (mut ok, mut bad) = (0, 0);
        match &self.reqs.target {
            Target::Echo { .. } => {
                let msg = &self.reqs.fixed;
                let data = input.as_slice();
                let ctx = conn.context();
                let mut i = 0;
                while i < data.len() {
                    let take = (msg.len() - ctx.echo_off).min(data.len() - i);
                    if data[i..i + take] != msg[ctx.echo_off..ctx.echo_off + take] {
                        return Err(());
                    }
                    i += take;
                    ctx.echo_off += take;
                    if ctx.echo_off == msg.len() {
                        ctx.echo_off = 0;
                        ok += 1;
                    }
                }
                input.clear();
            }
            Target::Http { .. } => loop {
                let head = self.reqs.head;
                let (n, status) = conn
                    .context()
                    .http
                    .parse(input.as_slice(), head)
                    .map_err(|_| ())?;
                input.consume(n);
                match status {
                    Some(s) if (200..300).contains(&s) => ok += 1,
                    Some(_) => bad += 1,
                    None => break,
                }
                if input.is_empty() {
                    break;
                }
            },
            Target::Resp { .. } => loop {
                match conn.context().resp.decode(input.as_slice()) {
                    Ok(Some((reply, n))) => {
                        input.consume(n);
                        if matches!(reply, Reply::Error(_)) {
                            bad += 1;
                        } else {
                            ok += 1;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return Err(()),
                }
            },
        }
        Ok((ok, bad))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ErrKind {
    Connect,
    Timeout,
    Reset,
    Closed,
    BadReply,
    Other,
}

impl EventHandler for Loader {
    type Context = Ctx;

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        if let Some(interval) = self.interval {
            // Spread the connections' schedules over one interval.
            let offset = interval.mul_f64(unit(&mut self.rng));
            conn.context().next_due = Some(Instant::now() + offset);
            conn.run_after(offset, |h, c| h.send_due(c));
        } else {
            self.send_batch(conn, self.pipeline);
        }
        let every = self.timeout / 4;
        let limit = self.timeout;
        fn check(h: &mut Loader, c: &mut Conn<'_, Loader>, every: Duration, limit: Duration) {
            if c.context()
                .pending
                .front()
                .is_some_and(|t| t.elapsed() > limit)
            {
                h.fail(c, ErrKind::Timeout);
                return;
            }
            c.run_after(every, move |h, c| check(h, c, every, limit));
        }
        conn.run_after(every, move |h, c| check(h, c, every, limit));
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if conn.context().failed {
            input.clear();
            return;
        }
        self.tally.borrow_mut().bytes_received += input.len() as u64;
        match self.parse(conn, input) {
            Ok((ok, bad)) => {
                for _ in 0..ok {
                    self.answered(conn, true);
                }
                for _ in 0..bad {
                    self.answered(conn, false);
                }
            }
            Err(()) => return self.fail(conn, ErrKind::BadReply),
        }
        if conn.context().http.closing() {
            // The server closes after this response (`Connection: close`,
            // or it is draining): a request sent now would be lost. Close
            // once the answers are in; the connection is dialed again.
            if conn.context().pending.is_empty() {
                conn.close();
            }
            return;
        }
        if self.interval.is_none() && conn.context().pending.is_empty() {
            self.send_batch(conn, self.pipeline);
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.dialer.live.set(self.dialer.live.get() - 1);
        let outstanding = conn.context().pending.len() as u64;
        self.ctl.give_back(outstanding);
        let stopping = self.ctl.stopping.load(Ordering::Relaxed);
        if !conn.context().failed && outstanding > 0 && !stopping {
            count(
                &self.ctl,
                &self.tally,
                match reason {
                    CloseReason::Reset => ErrKind::Reset,
                    CloseReason::PeerClosed => ErrKind::Closed,
                    _ => ErrKind::Other,
                },
            );
        }
        let budget_left = self
            .ctl
            .budget
            .as_ref()
            .is_none_or(|b| b.load(Ordering::Relaxed) > 0);
        if !stopping && budget_left && *reason != CloseReason::Shutdown {
            self.dialer.dial(conn.loop_ctx(), false);
        }
    }
}

fn unit(state: &mut u64) -> f64 {
    (xorshift(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// Run a load test and return the merged report. Blocks the calling thread.
pub fn run(cfg: &LoadConfig) -> io::Result<Report> {
    if cfg.connections == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "need at least one connection",
        ));
    }
    if cfg.requests.is_none() && cfg.duration.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "need a duration or a request count",
        ));
    }
    if let Target::Echo { size: 0 } = cfg.target {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "echo size must be > 0",
        ));
    }
    let threads = cfg.threads.clamp(1, cfg.connections);
    let ctl = Arc::new(Control {
        budget: cfg.requests.map(|n| AtomicI64::new(n as i64)),
        done: AtomicU64::new(0),
        recording: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
    });
    // Warmup requests do not count against an exact budget.
    let warmup = if cfg.requests.is_some() {
        Duration::ZERO
    } else {
        cfg.warmup
    };
    if warmup.is_zero() {
        ctl.recording.store(true, Ordering::Relaxed);
    }
    let connector = |bind: Option<&IpAddr>| {
        let mut c = Connector::new(cfg.addr.clone()).connect_timeout(cfg.connect_timeout);
        if let Some(ip) = bind {
            c = c.bind(SocketAddr::new(*ip, 0));
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &cfg.tls {
            c = c.tls(t.clone());
        }
        c
    };
    let connectors: Vec<Connector> = if cfg.bind.is_empty() {
        vec![connector(None)]
    } else {
        cfg.bind.iter().map(|ip| connector(Some(ip))).collect()
    };
    let interval = cfg.rate.map(|r| {
        Duration::from_secs_f64(cfg.connections as f64 / r.max(1e-3)).max(Duration::from_micros(1))
    });

    // One loop per thread; each run gives back its thread's tally.
    let bodies = (0..threads).map(|t| {
        let n = cfg.connections / threads + usize::from(t < cfg.connections % threads);
        let ctl = ctl.clone();
        let target = cfg.target.clone();
        let connectors = connectors.clone();
        let (pipeline, timeout) = (cfg.pipeline.max(1), cfg.timeout);
        move |start: LoopStart| -> io::Result<Tally> {
            let mut el = EventLoop::new(LoopConfig {
                id: t,
                ..LoopConfig::default()
            })?;
            let tally = Rc::new(RefCell::new(Tally::new()));
            let live = Rc::new(Cell::new(0));
            let dialer = Dialer {
                ctl: ctl.clone(),
                tally: tally.clone(),
                live: live.clone(),
                connectors: Rc::new(connectors),
                next: Rc::new(Cell::new(t)),
                svc: Rc::new(std::cell::OnceCell::new()),
            };
            let loader = Loader {
                ctl: ctl.clone(),
                reqs: Rc::new(Requests::new(&target)),
                tally: tally.clone(),
                dialer: dialer.clone(),
                pipeline,
                interval,
                timeout,
                rng: (0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) << 32)) | 1,
                scratch: Vec::new(),
            };
            let svc = ClientService::new(&mut el, loader);
            let _ = dialer.svc.set(svc);
            for _ in 0..n {
                dialer.dial(&mut el.ctx(), false);
            }
            // In `requests` mode a loop whose connections have all finished stops by itself.
            let ctl2 = ctl.clone();
            let live2 = live.clone();
            el.run_every(Duration::from_millis(5), move |el| {
                if live2.get() == 0
                    && (ctl2.stopping.load(Ordering::Relaxed) || ctl2.budget.is_some())
                {
                    el.stop();
                }
            });
            start.run(&mut el)?;
            let t = std::mem::replace(&mut *tally.borrow_mut(), Tally::new());
            Ok(t)
        }
    });
    let group = LoopGroup::builder().name("evnet-load").spawn(bodies)?;
    let handles = group.handles();

    let start = Instant::now();
    let mut measured_from = start;
    let mut last_progress = start;
    let mut last_done = 0;
    let mut last_change = start;
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let now = Instant::now();
        if !ctl.recording.load(Ordering::Relaxed) && now - start >= warmup {
            measured_from = now;
            ctl.recording.store(true, Ordering::Relaxed);
        }
        let done = ctl.done.load(Ordering::Relaxed);
        if done != last_done {
            last_done = done;
            last_change = now;
        }
        if let Some(p) = &cfg.progress {
            if now - last_progress >= Duration::from_millis(250) {
                last_progress = now;
                p(now - measured_from, done);
            }
        }
        let finished = match (cfg.requests, cfg.duration) {
            (Some(n), _) if done >= n => true,
            (_, Some(d)) if ctl.recording.load(Ordering::Relaxed) && now - measured_from >= d => {
                true
            }
            // Nothing answered for a long while with a request budget: give up.
            (Some(_), None) => now - last_change > cfg.timeout + cfg.connect_timeout,
            _ => false,
        };
        if finished || handles.iter().all(|h| h.is_stopped()) {
            break;
        }
    }
    let elapsed = measured_from.elapsed();
    ctl.stopping.store(true, Ordering::Relaxed);
    group.stop();
    let mut report = Report {
        requests: 0,
        elapsed,
        bytes_sent: 0,
        bytes_received: 0,
        errors: Errors::default(),
        non_success: 0,
        latency: Tally::new().hist,
    };
    for t in group.join()? {
        report.requests += t.requests;
        report.bytes_sent += t.bytes_sent;
        report.bytes_received += t.bytes_received;
        report.errors.add(&t.errors);
        report.non_success += t.non_success;
        report
            .latency
            .add(&t.hist)
            .map_err(|e| io::Error::other(format!("merging histograms: {e}")))?;
    }
    Ok(report)
}
