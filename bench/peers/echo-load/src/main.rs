//! Ping-pong echo load client on a tokio current-thread runtime.
//!
//! Opens `--conns` connections; once all are connected, each one repeatedly
//! sends a `--size`-byte message, waits for exactly `--size` bytes back,
//! checks they are the bytes it sent, and starts again, until `--secs` have
//! passed. Prints one JSON line: `{"messages":N,"secs":S,"rate":R}`.
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

/// Shared state of all connections (single-threaded runtime).
struct Shared {
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
        s.write_all(out).await?;
        s.read_exact(&mut back).await?;
        if back != out {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("connection {id}: echoed bytes differ from sent bytes"),
            ));
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
    let res: io::Result<(u64, f64)> = local.block_on(&rt, async {
        let mut streams = Vec::with_capacity(o.conns);
        for _ in 0..o.conns {
            let s = timeout(Duration::from_secs(5), TcpStream::connect(&o.addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            s.set_nodelay(true)?;
            streams.push(s);
        }
        let shared = Rc::new(Shared {
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
        Ok((total, secs))
    });
    match res {
        Ok((messages, secs)) => {
            let rate = if secs > 0.0 {
                messages as f64 / secs
            } else {
                0.0
            };
            println!("{{\"messages\":{messages},\"secs\":{secs:.3},\"rate\":{rate:.1}}}");
        }
        Err(e) => {
            eprintln!("echo-load: {e}");
            std::process::exit(1);
        }
    }
}
