//! Shared helpers for the HTTP integration tests: a server fixture on
//! 127.0.0.1:0 serving the CLI's demo routes (`/`, `/plaintext`, `/json`,
//! `/stats`, `/echo`: `src/bin/evnet/http_demo.rs`, included below) behind
//! the test's own, and a raw-socket client that reads whole responses with
//! timeouts. Include with `#[path = "util/http.rs"] mod util;`.
//!
//! `EVNET_TEST_POLLER=epoll|uring|poll|select` and `EVNET_TEST_TRIGGER=level|edge`
//! run the same suite on another backend; `EVNET_TEST_TLS=1` runs it over
//! TLS (a self-signed certificate made once per test process; the client
//! trusts it).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use evnet::http::{HttpBuilder, HttpServer, Limits, Router, StaticFiles};
use evnet::net::ServerBuilder;
use evnet::poller::{PollerKind, Trigger};

/// Every wait in these tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn server_builder() -> ServerBuilder {
    let poller = std::env::var("EVNET_TEST_POLLER")
        .ok()
        .and_then(|p| p.parse::<PollerKind>().ok())
        .unwrap_or(PollerKind::Epoll);
    let trigger = match std::env::var("EVNET_TEST_TRIGGER").as_deref() {
        Ok("edge") => Trigger::Edge,
        _ => Trigger::Level,
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let b = ServerBuilder::new()
        .bind(addr)
        .loops(1)
        .poller(poller)
        .trigger(trigger);
    match tls() {
        Some((acceptor, _)) => b.tls(acceptor.clone()),
        None => b,
    }
}

/// With `EVNET_TEST_TLS=1`: the server's acceptor and a client
/// configuration that trusts its certificate.
pub fn tls() -> Option<&'static (evnet::net::tls::TlsAcceptor, Arc<rustls::ClientConfig>)> {
    static TLS: OnceLock<Option<(evnet::net::tls::TlsAcceptor, Arc<rustls::ClientConfig>)>> =
        OnceLock::new();
    TLS.get_or_init(|| {
        if std::env::var("EVNET_TEST_TLS").as_deref() != Ok("1") {
            return None;
        }
        let (b, cert) = evnet::net::tls::TlsServerBuilder::new()
            .self_signed(&["localhost"])
            .unwrap();
        let acceptor = b.alpn(&["http/1.1"]).build().unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Some((acceptor, Arc::new(client)))
    })
    .as_ref()
}

/// A test connection: plain TCP, or TLS over it (`EVNET_TEST_TLS=1`).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    pub fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(d)
    }

    /// Half-close: over TLS, close_notify first.
    pub fn shutdown(&mut self, how: Shutdown) -> std::io::Result<()> {
        if let Stream::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        self.tcp().shutdown(how)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            // A close without close_notify reads as the EOF it is here.
            Stream::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => {
                let n = s.write(buf)?;
                s.flush()?;
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

#[path = "../../src/bin/evnet/http_demo.rs"]
mod http_demo;

/// Start a server with these limits, routes (then the demo routes) and
/// optional document root.
pub fn start_with(limits: Limits, router: Router, root: Option<&Path>) -> HttpServer {
    start_on(server_builder(), limits, router, root)
}

/// [`start_with`] on the listeners and loops of `server`.
pub fn start_on(
    server: ServerBuilder,
    limits: Limits,
    router: Router,
    root: Option<&Path>,
) -> HttpServer {
    let files = root.map(|r| StaticFiles::new(r).expect("document root"));
    start_files(server, limits, router, files)
}

/// [`start_on`] with static files configured by the caller.
pub fn start_files(
    server: ServerBuilder,
    limits: Limits,
    router: Router,
    files: Option<StaticFiles>,
) -> HttpServer {
    let demo = http_demo::Demo::new(files.clone());
    let mut b = HttpBuilder::new(server)
        .limits(limits)
        .router(demo.routes(router));
    if let Some(f) = files {
        b = b.static_files(f);
    }
    let s = b.start().expect("start http server");
    demo.serving(s.server());
    s
}

pub fn start() -> HttpServer {
    start_with(Limits::default(), Router::new(), None)
}

pub fn addr(s: &HttpServer) -> SocketAddr {
    s.local_addr().expect("tcp address")
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("<binary>")
    }
}

/// A raw connection that keeps unparsed bytes between responses.
pub struct Client {
    pub stream: Stream,
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let stream = match tls() {
            Some((_, cfg)) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, stream)))
            }
            None => Stream::Plain(stream),
        };
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Read more; false on EOF. Panics on timeout.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut tmp = [0u8; 16 * 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                self.eof = true;
                false
            }
            Err(e) => panic!(
                "read timed out or failed waiting for the server: {e} (have {:?})",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    fn need(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            if !self.fill() {
                return false;
            }
        }
        true
    }

    fn find_crlf(&mut self, from: usize, pat: &[u8]) -> Option<usize> {
        loop {
            if let Some(i) = self.buf[from..].windows(pat.len()).position(|w| w == pat) {
                return Some(from + i);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Read one response (`head_request`: no body follows the head).
    /// `None` if the connection closed before a response started.
    pub fn read_response_for(&mut self, head_request: bool) -> Option<Resp> {
        let end = self.find_crlf(0, b"\r\n\r\n");
        let Some(end) = end else {
            assert!(
                self.buf.is_empty(),
                "connection closed mid-response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            return None;
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("ascii head");
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_string();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("field line");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let mut resp = Resp {
            status_line,
            headers,
            body: Vec::new(),
        };
        let status = resp.status();
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Some(resp);
        }
        if let Some(cl) = resp.header("content-length") {
            let n: usize = cl.parse().unwrap();
            assert!(self.need(n), "closed inside a body");
            resp.body = self.buf.drain(..n).collect();
        } else if resp.header("transfer-encoding").is_some() {
            loop {
                let e = self.find_crlf(0, b"\r\n").expect("chunk size");
                let size = usize::from_str_radix(std::str::from_utf8(&self.buf[..e]).unwrap(), 16)
                    .unwrap();
                self.buf.drain(..e + 2);
                assert!(self.need(size + 2));
                resp.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else {
            while self.fill() {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Some(resp)
    }

    pub fn read_response(&mut self) -> Option<Resp> {
        self.read_response_for(false)
    }

    /// Read until EOF, returning any extra bytes; panics if the server
    /// does not close within the timeout.
    pub fn expect_closed(&mut self) -> Vec<u8> {
        let start = Instant::now();
        while self.fill() {
            assert!(start.elapsed() < TIMEOUT, "server did not close");
        }
        std::mem::take(&mut self.buf)
    }

    /// Whether the server has not closed: nothing arrives within `wait`.
    pub fn still_open(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut tmp = [0u8; 64];
        let r = self.stream.read(&mut tmp);
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        match r {
            Ok(0) => false,
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&tmp[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(_) => false,
        }
    }
}

/// Send `bytes` on a fresh connection, half-close, and read every response
/// until the server closes.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<Resp> {
    let mut c = Client::connect(addr);
    c.send(bytes);
    c.shutdown_write();
    let mut out = Vec::new();
    while let Some(r) = c.read_response() {
        out.push(r);
    }
    out
}

/// Send `bytes` and expect exactly one response with `status_line`, after
/// which the server closes the connection by itself (no half-close sent).
pub fn expect_status_then_close(addr: SocketAddr, bytes: &[u8], status_line: &str) -> Resp {
    let mut c = Client::connect(addr);
    c.send(bytes);
    let r = c.read_response().expect("a response");
    assert_eq!(
        r.status_line,
        status_line,
        "for request {:?}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "error responses announce the close"
    );
    let rest = c.expect_closed();
    assert!(
        rest.is_empty(),
        "nothing may follow the error: {:?}",
        String::from_utf8_lossy(&rest)
    );
    r
}
