//! The load generator against in-process evnet servers.

mod util;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use evnet::echo::Echo;
use evnet::load::{self, LoadConfig, Target};
use evnet::net::{Buffer, Conn, EventHandler, Server, ServerBuilder};

fn server<H: EventHandler, F: Fn(usize) -> H + Send + Sync + 'static>(f: F) -> Server {
    ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(1)
        .start(f)
        .unwrap()
}

fn echo_cfg(addr: SocketAddr) -> LoadConfig {
    let mut cfg = LoadConfig::new(addr, Target::Echo { size: 64 });
    cfg.connections = 20;
    cfg.threads = 2;
    cfg.duration = None;
    cfg.timeout = Duration::from_secs(10);
    cfg
}

#[test]
fn exact_request_count_no_errors() {
    let srv = server(|_| Echo);
    let mut cfg = echo_cfg(srv.local_addr().unwrap());
    cfg.requests = Some(10_000);
    cfg.pipeline = 4;
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.requests, 10_000);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert_eq!(r.latency.len(), 10_000);
    assert_eq!(r.bytes_received, 10_000 * 64);
}

/// Echoes, but closes every 100th connection as soon as it opens.
struct Flaky {
    n: u64,
}

impl EventHandler for Flaky {
    type Context = ();
    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        self.n += 1;
        if self.n.is_multiple_of(100) {
            conn.abort();
        }
    }
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        let _ = conn.write(input.as_slice());
        input.clear();
        // Every 50th message on a connection ends it (a reconnect follows).
        self.n += 1;
        if self.n % 100 == 50 {
            conn.abort();
        }
    }
}

#[test]
fn broken_connections_are_counted_and_replaced() {
    let srv = server(|_| Flaky { n: 0 });
    let mut cfg = echo_cfg(srv.local_addr().unwrap());
    cfg.requests = Some(5_000);
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.requests, 5_000, "{:?}", r.errors);
    assert!(r.errors.reset + r.errors.closed > 0, "{:?}", r.errors);
    assert_eq!(r.errors.bad_reply, 0, "{:?}", r.errors);
}

/// Answers each message 50 ms late.
struct Slow;

impl EventHandler for Slow {
    type Context = ();
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        let data = input.as_slice().to_vec();
        input.clear();
        conn.run_after(Duration::from_millis(50), move |_, c| {
            let _ = c.write(&data);
        });
    }
}

#[test]
fn delayed_replies_show_in_p50() {
    let srv = server(|_| Slow);
    let mut cfg = echo_cfg(srv.local_addr().unwrap());
    cfg.connections = 10;
    cfg.requests = Some(200);
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.requests, 200);
    let p50 = r.latency_at(0.5);
    assert!(
        p50 >= Duration::from_millis(45) && p50 <= Duration::from_millis(120),
        "p50 {p50:?}"
    );
}

#[test]
fn open_loop_rate_is_kept() {
    let srv = server(|_| Echo);
    let mut cfg = echo_cfg(srv.local_addr().unwrap());
    cfg.connections = 20;
    cfg.rate = Some(2_000.0);
    cfg.duration = Some(Duration::from_secs(2));
    let r = load::run(&cfg).unwrap();
    let n = r.requests as f64;
    assert!(
        (3_800.0..=4_200.0).contains(&n),
        "{} requests in {:?}",
        r.requests,
        r.elapsed
    );
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
}

#[test]
fn bind_spreads_over_source_addresses() {
    let srv = server(|_| Echo);
    let mut cfg = echo_cfg(srv.local_addr().unwrap());
    cfg.requests = Some(1_000);
    cfg.bind = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.requests, 1_000);
    assert_eq!(r.errors.total(), 0);
}

/// `"key":number` from flat JSON.
fn json_u64(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
        + pat.len();
    json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn cli_json_reports_exact_count() {
    let srv = server(|_| Echo);
    let addr = srv.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_evnet"))
        .args([
            "load",
            "echo",
            &addr,
            "--connections",
            "8",
            "--requests",
            "3000",
            "--size",
            "32",
            "--json",
        ])
        .output()
        .expect("run evnet load");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json_u64(&json, "requests"), 3000, "{json}");
    assert_eq!(json_u64(&json, "total"), 0, "{json}");
}

/// A canned HTTP server: answers every request (head ending in a blank
/// line) alternately with a Content-Length and a chunked body; every 10th
/// answer is a 404.
#[derive(Default)]
struct CannedHttp {
    n: u64,
}

impl EventHandler for CannedHttp {
    type Context = ();
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        while let Some(end) = input.as_slice().windows(4).position(|w| w == b"\r\n\r\n") {
            input.consume(end + 4);
            self.n += 1;
            let reply: &[u8] = if self.n.is_multiple_of(10) {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
            } else if self.n.is_multiple_of(2) {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            };
            let _ = conn.write(reply);
        }
    }
}

#[test]
fn http_target_pipelined_counts_non_2xx() {
    let srv = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(|_| CannedHttp::default())
        .unwrap();
    let target = Target::Http {
        method: "GET".into(),
        path: "/".into(),
        host: "localhost".into(),
        headers: vec![("X-Test".into(), "1".into())],
        body: Vec::new(),
    };
    let mut cfg = LoadConfig::new(srv.local_addr().unwrap(), target);
    cfg.connections = 1;
    cfg.duration = None;
    cfg.requests = Some(1_000);
    cfg.pipeline = 8;
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.requests, 1_000);
    assert_eq!(r.non_success, 100);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
}

/// A RESP server stub: `+OK` for SET, a bulk for GET.
struct RespStub(evnet::codec::resp::CommandDecoder);

impl EventHandler for RespStub {
    type Context = ();
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        use evnet::codec::Decoder;
        while let Ok(Some((cmd, n))) = self.0.decode(input.as_slice()) {
            input.consume(n);
            let reply: &[u8] = if cmd[0].eq_ignore_ascii_case(b"GET") {
                b"$3\r\nabc\r\n"
            } else {
                b"+OK\r\n"
            };
            let _ = conn.write(reply);
        }
    }
}

#[test]
fn resp_target_mix() {
    let srv = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(|_| RespStub(evnet::codec::resp::CommandDecoder::new()))
        .unwrap();
    let mut cfg = LoadConfig::new(
        srv.local_addr().unwrap(),
        Target::Resp {
            get_ratio: 0.5,
            keys: 100,
            value_size: 16,
        },
    );
    cfg.connections = 4;
    cfg.duration = None;
    cfg.requests = Some(2_000);
    cfg.pipeline = 16;
    let r = load::run(&cfg).unwrap();
    assert_eq!(r.requests, 2_000);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert_eq!(r.non_success, 0);
}
