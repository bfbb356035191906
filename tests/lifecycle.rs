//! Connection lifecycle: timeouts, backpressure, graceful shutdown, offload.

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evnet::net::{AcceptMode, Buffer, CloseReason, Conn, EventHandler, ServerBuilder, WorkerPool};
use util::*;

type Log = Arc<Mutex<Vec<(String, CloseReason)>>>;

/// A line protocol: `tag NAME` names the connection, `flood N` writes N
/// bytes, anything else is echoed. Close reasons are logged by name.
#[derive(Clone)]
struct Lines {
    log: Log,
}

#[derive(Default)]
struct Named(String);

impl EventHandler for Lines {
    type Context = Named;

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        while let Some(pos) = input.as_slice().iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&input.as_slice()[..pos]).to_string();
            input.consume(pos + 1);
            if let Some(name) = line.strip_prefix("tag ") {
                conn.context().0 = name.to_string();
            } else if let Some(n) = line.strip_prefix("flood ") {
                let n: usize = n.parse().unwrap();
                let _ = conn.write_vec(vec![b'f'; n]);
            } else {
                let _ = conn.write(format!("{line}\n").as_bytes());
            }
        }
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        let name = conn.context().0.clone();
        self.log.lock().unwrap().push((name, reason.clone()));
    }
}

fn start(b: ServerBuilder) -> (evnet::net::Server, Log) {
    let log: Log = Default::default();
    let l = log.clone();
    let server = b
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(move |_| Lines { log: l.clone() })
        .unwrap();
    (server, log)
}

fn tagged(addr: SocketAddr, name: &str) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(format!("tag {name}\nhello\n").as_bytes())
        .unwrap();
    assert_eq!(read_exact(&mut s, 6), b"hello\n");
    s
}

fn reason_of(log: &Log, name: &str) -> Option<CloseReason> {
    reason_of_locked(&log.lock().unwrap(), name)
}

fn reason_of_locked(log: &[(String, CloseReason)], name: &str) -> Option<CloseReason> {
    log.iter().find(|(n, _)| n == name).map(|(_, r)| r.clone())
}

#[test]
fn idle_timeout_closes_only_the_idle_connection() {
    let (server, log) = start(ServerBuilder::new().idle_timeout(Duration::from_millis(300)));
    let addr = server.local_addr().unwrap();
    let t0 = Instant::now();
    let mut idle = tagged(addr, "idle");
    let mut busy = tagged(addr, "busy");
    // Keep `busy` talking until `idle` has been closed.
    while reason_of(&log, "idle").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "idle connection never timed out"
        );
        roundtrip(&mut busy, b"ping\n");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "closed before the timeout"
    );
    assert_eq!(reason_of(&log, "idle"), Some(CloseReason::IdleTimeout));
    assert!(read_to_eof(&mut idle).is_empty());
    roundtrip(&mut busy, b"still open\n");
    assert_eq!(reason_of(&log, "busy"), None);
}

#[test]
fn read_timeout_closes_an_incomplete_message_only() {
    let (server, log) = start(ServerBuilder::new().read_timeout(Duration::from_millis(300)));
    let addr = server.local_addr().unwrap();
    let mut partial = tagged(addr, "partial");
    let mut complete = tagged(addr, "complete");
    partial.write_all(b"no newline yet").unwrap();
    assert!(
        read_to_eof(&mut partial).is_empty(),
        "partial message connection must be closed"
    );
    assert!(wait_until(Duration::from_secs(5), || reason_of(
        &log, "partial"
    )
    .is_some()));
    assert_eq!(reason_of(&log, "partial"), Some(CloseReason::ReadTimeout));
    // A connection with nothing pending is not subject to the read timeout.
    roundtrip(&mut complete, b"fine\n");
    assert_eq!(reason_of(&log, "complete"), None);
}

#[test]
fn write_timeout_closes_a_reader_that_never_reads() {
    let (server, log) = start(ServerBuilder::new().write_timeout(Duration::from_millis(300)));
    let addr = server.local_addr().unwrap();
    let mut stuck = tagged(addr, "stuck");
    let mut other = tagged(addr, "other");
    stuck.write_all(b"flood 67108864\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || reason_of(
        &log, "stuck"
    )
    .is_some()));
    assert_eq!(reason_of(&log, "stuck"), Some(CloseReason::WriteTimeout));
    roundtrip(&mut other, b"unaffected\n");
    assert_eq!(reason_of(&log, "other"), None);
}

#[test]
fn graceful_shutdown_delivers_in_flight_output_and_refuses_new_connections() {
    const BIG: usize = 32 << 20;
    let (server, log) = start(ServerBuilder::new());
    let addr = server.local_addr().unwrap();
    let mut big = tagged(addr, "big");
    let _idle = tagged(addr, "idle");
    big.write_all(format!("flood {BIG}\n").as_bytes()).unwrap();
    // The response is mid-flight: we have some of it, most is queued.
    let first = read_exact(&mut big, 1);
    let stopper = std::thread::spawn(move || server.shutdown_graceful(Duration::from_secs(20)));
    // New connections are refused from now on.
    assert!(
        wait_until(Duration::from_secs(5), || TcpStream::connect(addr).is_err()),
        "listener still accepting during the drain"
    );
    let rest = read_to_eof(&mut big);
    assert_eq!(
        first.len() + rest.len(),
        BIG,
        "in-flight response cut short"
    );
    assert!(rest.iter().all(|&b| b == b'f'));
    stopper.join().unwrap().unwrap();
    // Probe connections made before the listener closed are drained too.
    let log = log.lock().unwrap();
    assert_eq!(
        reason_of_locked(&log, "big"),
        Some(CloseReason::Shutdown),
        "{log:?}"
    );
    assert_eq!(
        reason_of_locked(&log, "idle"),
        Some(CloseReason::Shutdown),
        "{log:?}"
    );
    assert!(
        log.iter().all(|(_, r)| *r == CloseReason::Shutdown),
        "{log:?}"
    );
}

// Runs the `evnet` binary.
#[cfg(feature = "cli")]
#[test]
fn backpressure_bounds_server_memory_and_loses_nothing() {
    const CONNS: usize = 16;
    const EACH: usize = 24 << 20;
    let mut server = Child::spawn(&[
        "echo",
        "--addr",
        "127.0.0.1:0",
        "--loops",
        "0",
        "--high-water",
        "1048576",
    ]);
    let addr = server.addr;
    let rss = |pid: u32| -> usize {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap()
            * 1024
    };
    let base = rss(server.pid());
    let written: Arc<Vec<std::sync::atomic::AtomicUsize>> =
        Arc::new((0..CONNS).map(|_| Default::default()).collect());
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for c in 0..CONNS {
        let s = connect(addr);
        let mut w = s.try_clone().unwrap();
        let wr = written.clone();
        writers.push(std::thread::spawn(move || {
            let chunk = pattern(c as u64, 1 << 20);
            for _ in 0..EACH / chunk.len() {
                w.write_all(&chunk).unwrap();
                wr[c].fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
            }
        }));
        readers.push(s);
    }
    // Nobody reads: every writer gets ahead by what the kernel buffers plus
    // the high-water mark, then blocks.
    assert!(wait_until(Duration::from_secs(30), || written.iter().all(
        |w| w.load(std::sync::atomic::Ordering::Relaxed) >= 2 << 20
    )));
    let grown = rss(server.pid()).saturating_sub(base);
    // Bound: per connection the high-water mark plus one read (64 KiB) of
    // overshoot, plus slack for allocator behaviour.
    let bound = CONNS * ((1 << 20) + (64 << 10)) + (16 << 20);
    assert!(
        grown < bound,
        "server RSS grew {grown} bytes (bound {bound}) with {CONNS} non-reading clients"
    );
    // Resume: every byte of every stream comes back intact.
    let checkers: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(c, mut s)| {
            std::thread::spawn(move || {
                let expect = pattern(c as u64, 1 << 20);
                let mut buf = vec![0u8; 1 << 20];
                for _ in 0..EACH / buf.len() {
                    std::io::Read::read_exact(&mut s, &mut buf).unwrap();
                    assert!(buf == expect, "conn {c}: echo differs");
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(checkers) {
        t.join().unwrap();
    }
    assert!(server.is_alive());
}

// Runs the `evnet` binary.
#[cfg(feature = "cli")]
#[test]
fn sigterm_drains_and_exits_zero_and_second_signal_forces_exit() {
    // Graceful: an idle connection is closed, the process exits 0.
    let mut server = Child::spawn(&["echo", "--addr", "127.0.0.1:0", "--loops", "1"]);
    let mut c = connect(server.addr);
    roundtrip(&mut c, b"hi");
    let kill = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
    };
    kill(server.pid());
    assert!(read_to_eof(&mut c).is_empty());
    let status = wait_exit(&mut server.child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));

    // Forced: output that cannot drain holds the drain open; a second
    // signal ends it at once with status 1.
    let mut server = Child::spawn(&[
        "echo",
        "--addr",
        "127.0.0.1:0",
        "--loops",
        "0",
        "--shutdown-timeout",
        "60s",
        // What the client sent beyond the high-water mark is still in the
        // sockets; if the server had not yet paused reading when the drain
        // began (a loaded machine), a closing connection reads and discards
        // it, and past the default 1 MiB budget that resets the connection
        // and ends the drain early. Here only the output holds it open.
        "--closing-discard",
        "1GiB",
    ]);
    let mut stuck = connect(server.addr);
    // As much as the server and both sockets take: echo pauses reading at
    // its high-water mark, so the rest would block.
    stuck.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let mut sent = 0;
    for _ in 0..1024 {
        match stuck.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(sent > 1 << 20, "the server took only {sent} bytes");
    kill(server.pid());
    // The first signal started the drain (the listener closes); now force it.
    assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(
        server.addr
    )
    .is_err()));
    let t = Instant::now();
    kill(server.pid());
    let status = wait_exit(&mut server.child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(15));
}

/// `--loops 0` runs the reactor on the main thread (signals come in through
/// a signalfd the loop watches): one thread in the process, which serves and
/// then drains on SIGTERM. `talk` checks one request on the connection.
#[cfg(feature = "cli")]
fn single_reactor_cli(kind: &str, talk: impl FnOnce(&mut TcpStream)) {
    let mut server = Child::spawn(&[kind, "--addr", "127.0.0.1:0", "--loops", "0"]);
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .count();
    assert_eq!(threads, 1, "{kind}: threads");
    let mut c = connect(server.addr);
    talk(&mut c);
    std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(read_to_eof(&mut c).is_empty(), "{kind}: closed after drain");
    let status = wait_exit(&mut server.child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{kind}");
}

// Runs the `evnet` binary.
#[cfg(feature = "cli")]
#[test]
fn single_reactor_echo_cli_is_one_thread_and_drains_on_sigterm() {
    single_reactor_cli("echo", |c| roundtrip(c, b"hi"));
}

// Runs the `evnet` binary.
#[cfg(feature = "cli")]
#[test]
fn single_reactor_resp_cli_is_one_thread_and_drains_on_sigterm() {
    single_reactor_cli("resp", |c| {
        c.write_all(b"PING\r\n").unwrap();
        let mut buf = [0u8; 7];
        std::io::Read::read_exact(c, &mut buf).unwrap();
        assert_eq!(&buf, b"+PONG\r\n");
    });
}

/// `evnet echo --model async` and `--model processes`: they serve, and on
/// SIGTERM close what is open and exit 0.
#[cfg(feature = "cli")]
#[test]
fn async_and_process_models_serve_and_stop_on_sigterm() {
    for args in [
        &["--model", "async", "--loops", "2"][..],
        &["--model", "async", "--loops", "1", "--poller", "proactor"][..],
        &["--model", "processes"][..],
    ] {
        let mut argv = vec!["echo", "--addr", "127.0.0.1:0"];
        argv.extend_from_slice(args);
        let mut server = Child::spawn(&argv);
        let mut c = connect(server.addr);
        roundtrip(&mut c, b"hello");
        roundtrip(&mut c, &pattern(5, 300_000));
        std::process::Command::new("kill")
            .args(["-TERM", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(read_to_eof(&mut c).is_empty(), "{args:?}: closed on stop");
        let status = wait_exit(&mut server.child, Duration::from_secs(15));
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
}

#[cfg(feature = "cli")]
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            start.elapsed() < limit,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Offloads every line to a pool that sleeps, replying `n*2`; `ping` is
/// answered on the loop directly.
struct Offloader {
    pool: Arc<WorkerPool>,
    /// Blocking jobs that have started on a worker.
    started: Arc<std::sync::atomic::AtomicUsize>,
}

impl EventHandler for Offloader {
    type Context = ();
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        while let Some(pos) = input.as_slice().iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&input.as_slice()[..pos]).to_string();
            input.consume(pos + 1);
            if line == "ping" {
                let _ = conn.write(b"pong\n");
                continue;
            }
            if let Some(ms) = line.strip_prefix("block ") {
                let ms: u64 = ms.parse().unwrap();
                let started = self.started.clone();
                let work = move || {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(ms))
                };
                let r = conn.offload(&self.pool, work, |_, c, ()| {
                    let _ = c.write(b"done\n");
                });
                if r.is_err() {
                    let _ = conn.write(b"busy\n");
                }
                continue;
            }
            let n: u64 = line.parse().unwrap();
            let r = conn.offload(
                &self.pool,
                move || {
                    std::thread::sleep(Duration::from_millis(1));
                    n * 2
                },
                |_, c, v| {
                    let _ = c.write(format!("{v}\n").as_bytes());
                },
            );
            if r.is_err() {
                let _ = conn.write(b"busy\n");
            }
        }
    }
}

#[test]
fn offload_keeps_per_connection_order_and_the_loop_responsive() {
    let pool = WorkerPool::new(4, 1024);
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(move |_| Offloader {
            pool: pool.clone(),
            started: Default::default(),
        })
        .unwrap();
    let addr = server.local_addr().unwrap();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..10)
        .map(|c| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let req: String = (0..100).map(|i| format!("{}\n", c * 1000 + i)).collect();
                s.write_all(req.as_bytes()).unwrap();
                let mut r = std::io::BufReader::new(s);
                for i in 0..100 {
                    let mut line = String::new();
                    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
                    assert_eq!(
                        line.trim(),
                        ((c * 1000 + i) * 2).to_string(),
                        "conn {c} out of order"
                    );
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    // While the pool works through 1000 sleeping jobs, the loop answers at once.
    let mut p = connect(addr);
    assert!(wait_until(Duration::from_secs(10), || done
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0));
    p.write_all(b"ping\n").unwrap();
    assert_eq!(read_exact(&mut p, 5), b"pong\n");
    assert!(
        done.load(std::sync::atomic::Ordering::Relaxed) < 1000,
        "the ping should have been answered while offloaded work was still running"
    );
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn full_pool_is_refused_not_waited_for() {
    let pool = WorkerPool::new(1, 1);
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let st = started.clone();
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(move |_| Offloader {
            pool: pool.clone(),
            started: st.clone(),
        })
        .unwrap();
    let mut s = connect(server.local_addr().unwrap());
    // One job runs (we wait until it has started), one waits in the queue,
    // the third is refused at once while the loop goes on answering.
    s.write_all(b"block 500\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || started
        .load(std::sync::atomic::Ordering::SeqCst)
        == 1));
    s.write_all(b"block 500\nblock 500\nping\n").unwrap();
    assert_eq!(read_exact(&mut s, 10), b"busy\npong\n");
    assert_eq!(read_exact(&mut s, 10), b"done\ndone\n");
}

/// Holds a reference until its loop is gone; slow to let go, so a loop
/// still winding down when `start` returned is caught.
struct Held {
    _alive: Arc<()>,
}

impl EventHandler for Held {
    type Context = ();
    fn on_message(&mut self, _conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        input.consume(input.len());
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `start` used to return the error of a loop that failed to start and
/// leave the loops started before it serving, detached and never stopped.
#[test]
fn a_loop_that_fails_to_start_stops_the_loops_already_started() {
    for mode in [AcceptMode::Acceptor, AcceptMode::ReusePort] {
        let held = Arc::new(());
        let h = held.clone();
        let err = ServerBuilder::new()
            .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
            .loops(4)
            .accept_mode(mode)
            .start(move |id| {
                if id == 2 {
                    std::thread::sleep(Duration::from_millis(20));
                    panic!("no handler for loop 2");
                }
                Held { _alive: h.clone() }
            })
            .err()
            .expect("loop 2 cannot start");
        assert!(
            err.to_string().contains("loop evnet-loop-2"),
            "{mode:?}: {err}"
        );
        assert!(
            err.to_string().contains("no handler for loop 2"),
            "{mode:?}: {err}"
        );
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "{mode:?}: a loop still holds its handler"
        );
    }
}

/// Every duration flag takes one syntax (`300ms`, `10s`, `2m`); the old
/// milliseconds spelling of the HTTP header timeout is still accepted.
#[cfg(feature = "cli")]
#[test]
fn duration_flags_take_one_syntax_and_the_old_ms_spelling_still_works() {
    for flags in [
        ["--header-timeout", "300ms"],
        ["--header-timeout-ms", "300"],
    ] {
        let server = Child::spawn(&[
            "http",
            "--addr",
            "127.0.0.1:0",
            "--loops",
            "0",
            flags[0],
            flags[1],
        ]);
        let mut c = connect(server.addr);
        let start = Instant::now();
        // Half a request head, then nothing: 408 after the header timeout.
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        let reply = read_to_eof(&mut c);
        let waited = start.elapsed();
        assert!(
            reply.starts_with(b"HTTP/1.1 408"),
            "{flags:?}: {}",
            String::from_utf8_lossy(&reply)
        );
        assert!(
            waited >= Duration::from_millis(250),
            "{flags:?}: 408 after {waited:?}, before the 300 ms deadline"
        );
        // The default is 10 s: an answer well before it shows the flag took.
        assert!(
            waited < Duration::from_secs(5),
            "{flags:?}: 408 after {waited:?}: the flag was not in force"
        );
    }
}
