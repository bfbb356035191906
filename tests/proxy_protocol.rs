//! The PROXY protocol in front of the HTTP server: curl's v1 header, a real
//! HAProxy sending v2, and every way a header can be wrong, each over raw
//! sockets against a server that trusts 127.0.0.0/8. `/whoami` (a demo
//! route) answers with the client the server sees.

#[path = "util/http.rs"]
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use evnet::http::{HttpServer, Limits, Router};
use evnet::net::metrics::{Snapshot, PROXY_REFUSED};
use evnet::net::proxy::{Cidr, ProxyProtocol};
use util::*;

const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const WHOAMI: &[u8] = b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// A server expecting PROXY headers from `trusted`, giving up on a header
/// after `timeout`.
fn start_proxied(trusted: &str, timeout: Duration) -> HttpServer {
    let p = ProxyProtocol::new([trusted.parse::<Cidr>().unwrap()]).timeout(timeout);
    start_on(
        server_builder().proxy_protocol(p),
        Limits::default(),
        Router::new(),
        None,
    )
}

fn server() -> HttpServer {
    start_proxied("127.0.0.0/8", Duration::from_secs(5))
}

fn connect(a: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Everything until the server closes (a reset counts as a close).
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&out)),
        }
    }
}

/// The body of a `/whoami` response.
fn whoami_body(resp: &[u8]) -> String {
    let text = String::from_utf8_lossy(resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split_once("\r\n\r\n")
        .unwrap()
        .1
        .trim_end()
        .to_string()
}

/// Send `bytes` on a new connection and return what comes back.
fn exchange(a: SocketAddr, bytes: &[u8]) -> (Vec<u8>, SocketAddr) {
    let mut s = connect(a);
    let local = s.local_addr().unwrap();
    s.write_all(bytes).unwrap();
    (read_all(&mut s), local)
}

fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.push(0x20 | cmd);
    h.push(family);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v2_tcp4(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut body = src.to_vec();
    body.extend_from_slice(&[127, 0, 0, 1]);
    body.extend_from_slice(&sport.to_be_bytes());
    body.extend_from_slice(&80u16.to_be_bytes());
    v2(1, 0x11, &body)
}

/// How many sockets the server refused for `reason` (counted before the
/// socket is closed, so exact once the client has seen the close).
fn refused_count(s: &HttpServer, reason: &str) -> u64 {
    let slot = PROXY_REFUSED.iter().position(|r| *r == reason).unwrap();
    Snapshot::of(s.server().serving_loops()).total.proxy_refused[slot]
}

/// The server still serves a well-formed connection (the bad one cost
/// only itself).
fn still_serves(a: SocketAddr) {
    let mut req = b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 80\r\n".to_vec();
    req.extend_from_slice(WHOAMI);
    assert_eq!(whoami_body(&exchange(a, &req).0), "192.0.2.1:1000");
}

#[test]
fn v1_header_names_the_client() {
    let s = server();
    let mut req = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 80\r\n".to_vec();
    req.extend_from_slice(WHOAMI);
    assert_eq!(
        whoami_body(&exchange(addr(&s), &req).0),
        "203.0.113.7:51000"
    );
}

#[test]
fn v1_header_trickled_a_byte_at_a_time_then_the_request() {
    let s = server();
    let mut c = connect(addr(&s));
    c.set_nodelay(true).unwrap();
    for b in b"PROXY TCP6 2001:db8::7 ::1 4242 80\r\n" {
        c.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    c.write_all(WHOAMI).unwrap();
    assert_eq!(whoami_body(&read_all(&mut c)), "[2001:db8::7]:4242");
}

#[test]
fn v2_header_and_request_in_one_write() {
    let s = server();
    let mut req = v2_tcp4([198, 51, 100, 9], 4242);
    req.extend_from_slice(WHOAMI);
    assert_eq!(
        whoami_body(&exchange(addr(&s), &req).0),
        "198.51.100.9:4242"
    );
}

#[test]
fn v2_header_with_tlvs_split_across_writes() {
    let s = server();
    let mut body = [0u8; 16].to_vec();
    body[..16].copy_from_slice(
        &"2001:db8::9"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&[0x1f, 0x90, 0x00, 0x50]);
    body.extend_from_slice(&[0x02, 0x00, 0x03, b'a', b'b', b'c']); // PP2_TYPE_AUTHORITY
    let mut bytes = v2(1, 0x21, &body);
    bytes.extend_from_slice(WHOAMI);
    let mut c = connect(addr(&s));
    c.set_nodelay(true).unwrap();
    for piece in bytes.chunks(7) {
        c.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(whoami_body(&read_all(&mut c)), "[2001:db8::9]:8080");
}

#[test]
fn v2_local_keeps_the_real_address() {
    let s = server();
    let mut req = v2(0, 0x00, &[]);
    req.extend_from_slice(WHOAMI);
    let (resp, local) = exchange(addr(&s), &req);
    assert_eq!(whoami_body(&resp), local.to_string());
}

#[test]
fn v1_unknown_keeps_the_real_address() {
    let s = server();
    let mut req = b"PROXY UNKNOWN\r\n".to_vec();
    req.extend_from_slice(WHOAMI);
    let (resp, local) = exchange(addr(&s), &req);
    assert_eq!(whoami_body(&resp), local.to_string());
}

/// A connection that sends `bytes` is closed with no response, and the
/// server goes on serving.
fn refused(bytes: &[u8]) {
    let s = server();
    let (resp, _) = exchange(addr(&s), bytes);
    assert!(
        resp.is_empty(),
        "answered: {:?}",
        String::from_utf8_lossy(&resp)
    );
    assert_eq!(refused_count(&s, "malformed"), 1);
    still_serves(addr(&s));
}

macro_rules! refused {
    ($($name:ident: $bytes:expr;)*) => {$(
        #[test]
        fn $name() {
            refused(&$bytes[..]);
        }
    )*};
}

refused! {
    no_header_at_all_is_closed: *WHOAMI;
    v1_unknown_protocol_is_closed: [&b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n"[..], WHOAMI].concat();
    v1_missing_field_is_closed: [&b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n"[..], WHOAMI].concat();
    v1_bad_address_is_closed: [&b"PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n"[..], WHOAMI].concat();
    v1_port_out_of_range_is_closed: [&b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n"[..], WHOAMI].concat();
    v1_lf_without_cr_is_closed: [&b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n"[..], WHOAMI].concat();
    v1_longer_than_107_bytes_is_closed: [b"PROXY UNKNOWN ".to_vec(), vec![b'x'; 120], b"\r\n".to_vec()].concat();
    v2_wrong_version_is_closed: {
        let mut h = v2_tcp4([1, 2, 3, 4], 1);
        h[12] = 0x31;
        [h, WHOAMI.to_vec()].concat()
    };
    v2_unknown_command_is_closed: [v2(2, 0x11, &[0; 12]), WHOAMI.to_vec()].concat();
    v2_unknown_family_is_closed: [v2(1, 0x51, &[0; 12]), WHOAMI.to_vec()].concat();
    v2_addresses_longer_than_the_length_are_closed: [v2(1, 0x11, &[0; 8]), WHOAMI.to_vec()].concat();
    v2_length_over_the_cap_is_closed: [v2(1, 0x11, &[0; 2000]), WHOAMI.to_vec()].concat();
}

/// Regression: edge-triggered, the FIN behind the bytes of the first read
/// was never looked at, and the socket waited for the header timeout. The
/// timeout here is longer than the test's read timeout.
#[test]
fn header_cut_short_by_the_peer_is_closed() {
    let s = start_proxied("127.0.0.0/8", Duration::from_secs(60));
    let mut c = connect(addr(&s));
    c.write_all(b"PROXY TCP4 1.2.3.4").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_all(&mut c).is_empty());
    assert_eq!(refused_count(&s, "closed"), 1);
    still_serves(addr(&s));
}

#[test]
fn slow_header_is_closed_after_the_timeout() {
    let s = start_proxied("127.0.0.0/8", Duration::from_millis(300));
    let mut c = connect(addr(&s));
    let t0 = Instant::now();
    c.write_all(b"PROXY TCP4 1.2.3.4 ").unwrap();
    assert!(read_all(&mut c).is_empty());
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert_eq!(refused_count(&s, "timeout"), 1);
    still_serves(addr(&s));
}

#[test]
fn valid_header_from_an_untrusted_address_is_closed() {
    let s = start_proxied("10.0.0.0/8", Duration::from_secs(5));
    let mut req = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 80\r\n".to_vec();
    req.extend_from_slice(WHOAMI);
    let (resp, _) = exchange(addr(&s), &req);
    assert!(
        resp.is_empty(),
        "answered: {:?}",
        String::from_utf8_lossy(&resp)
    );
    assert_eq!(refused_count(&s, "untrusted"), 1);
}

#[test]
fn idle_header_wait_does_not_block_other_connections() {
    let s = server();
    // Ten sockets that never send a byte sit in the preamble stage...
    let idle: Vec<TcpStream> = (0..10).map(|_| connect(addr(&s))).collect();
    // ...while a real client is served at once.
    still_serves(addr(&s));
    drop(idle);
}

// ---- real clients -----------------------------------------------------

/// Run `prog args` under timeout(1); panics if it is missing.
fn run(secs: u32, prog: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .arg(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(127),
        "{prog} is not installed (.ci/run installs it)"
    );
    assert_ne!(out.status.code(), Some(124), "{prog} timed out");
    out
}

#[test]
fn curl_haproxy_protocol_v1_is_read_before_the_request() {
    let s = server();
    let out = run(
        20,
        "curl",
        &[
            "-s",
            "--haproxy-protocol",
            "-w",
            "%{local_ip}:%{local_port}",
            &format!("http://{}/whoami", addr(&s)),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // curl names its own socket in the header: body, then curl's address.
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, local) = text.split_once('\n').unwrap();
    assert_eq!(body, local);
    still_serves(addr(&s));
}

/// A free port on 127.0.0.1 for HAProxy's listener (it cannot report one
/// chosen by the kernel).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn haproxy_send_proxy_v2_gives_the_server_curls_address() {
    let s = server();
    let dir = std::env::temp_dir().join(format!("evnet-proxy-haproxy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 100\n\
             defaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
             backend be\n  server evnet {} send-proxy-v2\n",
            addr(&s)
        ),
    )
    .unwrap();
    let check = run(20, "haproxy", &["-c", "-f", cfg.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut haproxy = Command::new("haproxy")
        .args(["-db", "-f", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is not installed (.ci/run installs it)");
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = wait_until(TIMEOUT, || TcpStream::connect(front).is_ok());
    let out = up.then(|| {
        run(
            20,
            "curl",
            &[
                "-s",
                "-w",
                "%{local_ip}:%{local_port}",
                &format!("http://{front}/whoami"),
            ],
        )
    });
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("haproxy never listened");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server saw curl's address (HAProxy's own socket to it has
    // another port): the v2 header named the original client.
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, local) = text.split_once('\n').unwrap();
    assert_eq!(body, local, "{text}");
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
