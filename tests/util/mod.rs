//! Shared helpers for integration tests: server configurations for every
//! backend, loopback clients with timeouts, deterministic payloads.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use evnet::net::ServerBuilder;
use evnet::poller::{PollerKind, Trigger};

/// Every client read waits at most this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One server configuration of the backend x trigger x loops matrix the core
/// suites run under; [`matrix_test!`] stamps out one module per configuration.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub poller: PollerKind,
    /// `None` for the backends with one mode only (busy-poll, sigio): the
    /// builder's default is left alone.
    pub trigger: Option<Trigger>,
    pub loops: usize,
}

impl Config {
    /// A server builder bound to 127.0.0.1:0 in this configuration.
    pub fn builder(self) -> ServerBuilder {
        let b = ServerBuilder::new()
            .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
            .poller(self.poller)
            .loops(self.loops);
        match self.trigger {
            Some(t) => b.trigger(t),
            None => b,
        }
    }

    /// `Epoll/Edge/loops=2`, for assertion messages.
    pub fn name(self) -> String {
        match self.trigger {
            Some(t) => format!("{:?}/{t:?}/loops={}", self.poller, self.loops),
            None => format!("{:?}/loops={}", self.poller, self.loops),
        }
    }
}

/// Stamps out the tests given to it once per server
/// configuration, each copy in a module named after its configuration, the
/// way tokio's `rt_test!` does for runtime flavours. A failure names its
/// configuration (`core_echo::epoll_edge_loops2::half_close_...`), the other
/// configurations still run, and they run in parallel. Run one backend with
/// a name filter: `cargo test --test core_echo uring_edge`.
///
/// Inside the macro, `CONFIG` is the module's [`Config`] and everything of
/// the enclosing file is in scope (`use super::*`).
///
/// The list below is the matrix: epoll and io_uring level and edge, the
/// io_uring proactor, poll and select, each with 0, 1 and 2 sub-reactors;
/// busy-poll and sigio (the teaching baselines) with 0 and 1 only, to keep
/// the suite's time down (busy polling spins a core per loop).
///
/// How many tests run at once is libtest's `--test-threads` (one per core by
/// default). No further limit: on 2 cores the whole file took as long as
/// when each test looped over the matrix, and two busy-poll servers side by
/// side (the names sort them together) were no slower than one at a time.
#[allow(unused_macros)] // by the files that have no matrix
macro_rules! matrix_test {
    (@configs $tests:tt $($module:ident: $poller:ident $trigger:tt $loops:literal,)*) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;

                const CONFIG: $crate::util::Config = $crate::util::Config {
                    poller: ::evnet::poller::PollerKind::$poller,
                    trigger: $crate::util::matrix_test!(@trigger $trigger),
                    loops: $loops,
                };

                $crate::util::matrix_test!(@tests $tests);
            }
        )*
    };
    (@trigger -) => { None };
    (@trigger $trigger:ident) => { Some(::evnet::poller::Trigger::$trigger) };
    (@tests { $($item:item)* }) => { $($item)* };
    ($($tests:tt)*) => {
        $crate::util::matrix_test! { @configs { $($tests)* }
            epoll_level_loops0: Epoll Level 0,
            epoll_level_loops1: Epoll Level 1,
            epoll_level_loops2: Epoll Level 2,
            epoll_edge_loops0: Epoll Edge 0,
            epoll_edge_loops1: Epoll Edge 1,
            epoll_edge_loops2: Epoll Edge 2,
            uring_level_loops0: Uring Level 0,
            uring_level_loops1: Uring Level 1,
            uring_level_loops2: Uring Level 2,
            uring_edge_loops0: Uring Edge 0,
            uring_edge_loops1: Uring Edge 1,
            uring_edge_loops2: Uring Edge 2,
            proactor_loops0: Proactor Level 0,
            proactor_loops1: Proactor Level 1,
            proactor_loops2: Proactor Level 2,
            poll_loops0: Poll Level 0,
            poll_loops1: Poll Level 1,
            poll_loops2: Poll Level 2,
            select_loops0: Select Level 0,
            select_loops1: Select Level 1,
            select_loops2: Select Level 2,
            busy_poll_loops0: BusyPoll - 0,
            busy_poll_loops1: BusyPoll - 1,
            sigio_loops0: SigIo - 0,
            sigio_loops1: SigIo - 1,
        }
    };
}
#[allow(unused_imports)] // by the files that have no matrix
pub(crate) use matrix_test;

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Deterministic payload: byte i of stream `seed` is a function of both.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The RESP command `SET key value`, binary-safe.
pub fn resp_set(key: &str, value: &[u8]) -> Vec<u8> {
    let mut c = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes();
    c.extend_from_slice(value);
    c.extend_from_slice(b"\r\n");
    c
}

/// Read exactly `n` bytes or fail with context.
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

/// Read until EOF (bounded by the socket's read timeout).
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF");
    out
}

/// Send one message and check it comes back intact.
pub fn roundtrip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("write");
    let back = read_exact(s, msg.len());
    assert!(back == msg, "echo mismatch ({} bytes)", msg.len());
}

/// Poll `cond` until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// utime + stime of a process, in clock ticks (from /proc/PID/stat).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the full line; `after` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Run a child `evnet` process and parse the address it prints (the
/// binary exists with the `cli` feature only).
#[cfg(feature = "cli")]
pub struct Child {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// The lines printed up to and including the address line.
    pub banner: String,
    /// Kept open so later lines the child prints do not hit a closed pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

#[cfg(feature = "cli")]
impl Child {
    pub fn spawn(args: &[&str]) -> Child {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_evnet"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn evnet");
        let stdout = child.stdout.take().unwrap();
        let mut reader = std::io::BufReader::new(stdout);
        // The banner may start with a description; the address line follows
        // (`... listening on 127.0.0.1:PORT` or `http://127.0.0.1:PORT/`).
        let mut seen = String::new();
        let mut addr = None;
        for _ in 0..8 {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read banner") == 0 {
                break;
            }
            addr = line.split_whitespace().find_map(|w| {
                w.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .parse::<SocketAddr>()
                    .ok()
            });
            seen.push_str(&line);
            if addr.is_some() {
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| panic!("no address in banner {seen:?}"));
        Child {
            child,
            addr,
            banner: seen,
            _stdout: reader,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

#[cfg(feature = "cli")]
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
