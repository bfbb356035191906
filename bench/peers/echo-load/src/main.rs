//! Ping-pong echo load client on a tokio current-thread runtime.
//!
//! Opens `--conns` connections; once all are connected, each one repeatedly
//! sends a `--size`-byte message, waits for exactly `--size` bytes back,
//! checks they are the bytes it sent, and starts again, until `--secs` have
//! passed. Prints one JSON line:
//! `{"messages":N,"secs":S,"rate":R,"p50_us":A,"p99_us":B}` — the latency
//! percentiles are of per-message round trips (send to last echoed byte),
//! from a log-linear histogram (buckets within ~3% of their value).
//! An exchange still in flight at the deadline is not counted; connections
//! still waiting 2 s after it are dropped.
//!
//! Exits 1 if a connection fails or an echo does not match.
//!
//! Usage: echo-load --addr HOST:PORT [--conns 50] [--size 64] [--secs 5]

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

struct Opts {
    addr: String,
    conns: usize,
    size: usize,
    secs: f64,
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("echo-load: {msg}");
    }
    eprintln!("usage: echo-load --addr HOST:PORT [--conns 50] [--size 64] [--secs 5]");
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        addr: String::from("127.0.0.1:7000"),
        conns: 50,
        size: 64,
        secs: 5.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--addr" => o.addr = val("--addr"),
            "--conns" => {
                o.conns = val("--conns")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --conns"))
            }
            "--size" => {
                o.size = val("--size")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --size"))
            }
            "--secs" => {
                o.secs = val("--secs")
                    .parse()
                    .unwrap_or_else(|_| usage("bad --secs"))
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if o.conns == 0 || o.size == 0 || !o.secs.is_finite() || o.secs <= 0.0 {
        usage("--conns, --size and --secs must be positive");
    }
    o
}

/// Round-trip times in nanoseconds: 64 power-of-two ranges split into 32
/// linear sub-buckets each, so every bucket is within 1/32 of its value;
/// fixed size, no allocation per sample.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BITS: u32 = 5;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; 64 << SUB_BITS],
            total: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < (1 << SUB_BITS) {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - SUB_BITS;
        let sub = (v >> shift) as usize & ((1 << SUB_BITS) - 1);
        (((shift + 1) as usize) << SUB_BITS) | sub
    }

    /// The upper end of bucket `i`.
    fn value(i: usize) -> u64 {
        let range = (i >> SUB_BITS) as u32;
        let sub = (i & ((1 << SUB_BITS) - 1)) as u64;
        if range == 0 {
            return sub;
        }
        let shift = range - 1;
        (((1u64 << SUB_BITS) | sub) << shift) + (1u64 << shift) - 1
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
    }

    /// The value at quantile `q` (0..=1), or 0 with no samples.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i);
            }
        }
        Self::value(self.counts.len() - 1)
    }
}

/// Shared state of all connections (single-threaded runtime).
struct Shared {
    /// Round trips of the exchanges counted in `done`.
    rtt: std::cell::RefCell<Histogram>,
    /// Exchanges completed so far, all connections together.
    done: Cell<u64>,
    /// Set at the deadline: connections stop after their current exchange.
    stop: Cell<bool>,
    /// First error seen before the deadline.
    error: Cell<Option<String>>,
}

/// Bytes to send: a fixed pseudo-random pattern; each exchange sends a
/// window of it at a different offset, so a server answering with stale or
/// foreign bytes is caught without generating data on the hot path.
const PATTERN_SLACK: usize = 251;

fn pattern(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..size + PATTERN_SLACK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One connection's ping-pong loop, until `shared.stop` is set.
async fn run_conn(
    mut s: TcpStream,
    id: usize,
    size: usize,
    pat: Rc<Vec<u8>>,
    shared: Rc<Shared>,
) -> io::Result<()> {
    let mut back = vec![0u8; size];
    let mut off = id % PATTERN_SLACK;
    while !shared.stop.get() {
        let out = &pat[off..off + size];
        let t0 = std::time::Instant::now();
        s.write_all(out).await?;
        s.read_exact(&mut back).await?;
        let rtt = t0.elapsed().as_nanos() as u64;
        if back != out {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("connection {id}: echoed bytes differ from sent bytes"),
            ));
        }
        if !shared.stop.get() {
            shared.rtt.borrow_mut().record(rtt);
        }
        shared.done.set(shared.done.get() + 1);
        off += 1;
        if off == PATTERN_SLACK {
            off = 0;
        }
    }
    Ok(())
}

fn main() {
    let o = parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let res: io::Result<(u64, f64, u64, u64)> = local.block_on(&rt, async {
        let mut streams = Vec::with_capacity(o.conns);
        for _ in 0..o.conns {
            let s = timeout(Duration::from_secs(5), TcpStream::connect(&o.addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            s.set_nodelay(true)?;
            streams.push(s);
        }
        let shared = Rc::new(Shared {
            rtt: std::cell::RefCell::new(Histogram::new()),
            done: Cell::new(0),
            stop: Cell::new(false),
            error: Cell::new(None),
        });
        let pat = Rc::new(pattern(o.size));
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(o.secs);
        let mut tasks = Vec::with_capacity(o.conns);
        for (id, s) in streams.into_iter().enumerate() {
            let (shared, pat, size) = (shared.clone(), pat.clone(), o.size);
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(e) = run_conn(s, id, size, pat, shared.clone()).await {
                    if !shared.stop.get() {
                        let prev = shared.error.take();
                        shared.error.set(prev.or(Some(e.to_string())));
                    }
                }
            }));
        }
        // Count what completed by the deadline; exchanges still in flight
        // then are not counted.
        tokio::time::sleep_until(deadline).await;
        let total = shared.done.get();
        let secs = start.elapsed().as_secs_f64();
        shared.stop.set(true);
        let (p50, p99) = {
            let h = shared.rtt.borrow();
            (h.quantile(0.50), h.quantile(0.99))
        };
        // Let in-flight exchanges finish, but never wait long for a server
        // that stopped answering.
        let grace = Instant::now() + Duration::from_secs(2);
        for t in tasks {
            let abort = t.abort_handle();
            if timeout_at(grace, t).await.is_err() {
                abort.abort();
            }
        }
        if let Some(e) = shared.error.take() {
            return Err(io::Error::other(e));
        }
        Ok((total, secs, p50, p99))
    });
    match res {
        Ok((messages, secs, p50, p99)) => {
            let rate = if secs > 0.0 {
                messages as f64 / secs
            } else {
                0.0
            };
            println!(
                "{{\"messages\":{messages},\"secs\":{secs:.3},\"rate\":{rate:.1},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
                p50 as f64 / 1e3,
                p99 as f64 / 1e3
            );
        }
        Err(e) => {
            eprintln!("echo-load: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn buckets_hold_their_values_within_3_percent() {
        for v in [
            0u64,
            1,
            31,
            32,
            33,
            100,
            1_000,
            12_345,
            1_000_000,
            987_654_321,
        ] {
            let i = Histogram::index(v);
            let hi = Histogram::value(i);
            assert!(hi >= v, "{v}: bucket top {hi}");
            assert!(
                (hi - v) as f64 <= v as f64 / 32.0 + 1.0,
                "{v}: bucket top {hi}"
            );
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p99 = h.quantile(0.99);
        assert!((990_000..=1_022_000).contains(&p99), "{p99}");
        assert!((500_000..=516_000).contains(&h.quantile(0.5)));
    }
}
