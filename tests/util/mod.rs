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

/// Backend x trigger x loops, as the suite must cover: epoll LT, epoll ET,
/// io_uring LT and ET, the io_uring proactor, poll, select, each with loops
/// 0, 1 and 2; busy-poll and sigio with loops 0 and 1.
pub fn matrix() -> Vec<(String, ServerBuilder)> {
    let mut v = Vec::new();
    for (poller, trigger) in [
        (PollerKind::Epoll, Trigger::Level),
        (PollerKind::Epoll, Trigger::Edge),
        (PollerKind::Uring, Trigger::Level),
        (PollerKind::Uring, Trigger::Edge),
        (PollerKind::Proactor, Trigger::Level),
        (PollerKind::Poll, Trigger::Level),
        (PollerKind::Select, Trigger::Level),
    ] {
        for loops in [0, 1, 2] {
            let name = format!("{poller:?}/{trigger:?}/loops={loops}");
            let b = ServerBuilder::new()
                .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
                .poller(poller)
                .trigger(trigger)
                .loops(loops);
            v.push((name, b));
        }
    }
    // The teaching baselines: single reactor and one sub-reactor only, to
    // keep the suite's time down (busy-poll spins a core per loop).
    for poller in [PollerKind::BusyPoll, PollerKind::SigIo] {
        for loops in [0, 1] {
            let name = format!("{poller:?}/loops={loops}");
            let b = ServerBuilder::new()
                .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
                .poller(poller)
                .loops(loops);
            v.push((name, b));
        }
    }
    v
}

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

/// Run a child `evnet` process and parse the address it prints.
pub struct Child {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Kept open so later lines the child prints do not hit a closed pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

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
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(stdout);
        reader.read_line(&mut line).expect("read banner");
        let addr = line
            .split_whitespace()
            .find_map(|w| w.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("no address in banner {line:?}"));
        Child {
            child,
            addr,
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

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
