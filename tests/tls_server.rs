//! TLS in the connection core: an echo handler behind a `TlsAcceptor` on
//! each kind of driver, driven by a blocking rustls client; and the
//! defences (garbage, 1-byte ClientHello, truncated and oversized records,
//! silent clients, missing close_notify, a flood of half-finished
//! handshakes). Every wait is bounded.

mod util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evnet::net::tls::TlsServerBuilder;
use evnet::net::{Buffer, CloseReason, Conn, EventHandler, Server};
use rustls::pki_types::{CertificateDer, ServerName};
use util::{pattern, wait_until, IO_TIMEOUT};

/// Echoes everything; records why each connection closed.
#[derive(Clone, Default)]
struct Recorder {
    reasons: Arc<Mutex<Vec<CloseReason>>>,
}

impl EventHandler for Recorder {
    type Context = ();

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        let _ = conn.write(input.as_slice());
        input.clear();
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, Self>) {
        conn.close();
    }

    fn on_close(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.reasons.lock().unwrap().push(reason.clone());
    }
}

struct Fixture {
    server: Option<Server>,
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    reasons: Arc<Mutex<Vec<CloseReason>>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = s.shutdown();
        }
    }
}

fn start(builder: evnet::net::ServerBuilder, handshake_timeout: Duration) -> Fixture {
    let (tls, cert) = TlsServerBuilder::new().self_signed(&["localhost"]).unwrap();
    let acceptor = tls.handshake_timeout(handshake_timeout).build().unwrap();
    let rec = Recorder::default();
    let reasons = rec.reasons.clone();
    let server = builder
        .tls(acceptor)
        .start(move |_| rec.clone())
        .expect("start server");
    let addr = server.addrs()[0].tcp().unwrap();
    Fixture {
        server: Some(server),
        addr,
        cert,
        reasons,
    }
}

fn start_default(handshake_timeout: Duration) -> Fixture {
    let b = evnet::net::ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(1);
    start(b, handshake_timeout)
}

fn client_config(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Tls<S> = rustls::StreamOwned<rustls::ClientConnection, S>;

fn tls_over<S: Read + Write>(f: &Fixture, sock: S) -> Tls<S> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(client_config(&f.cert), name).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

fn tls_connect(f: &Fixture) -> Tls<TcpStream> {
    let sock = util::connect(f.addr);
    let mut s = tls_over(f, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("handshake");
    }
    s
}

/// Reads until the peer's close: `Ok(bytes)` after a close_notify, the
/// error otherwise.
fn read_to_close<S: Read + Write>(s: &mut Tls<S>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e),
        }
    }
}

/// The server closed the raw socket: EOF or a reset, within the timeout.
fn expect_raw_close(sock: &mut TcpStream) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server did not close: {e}"),
        }
    }
}

fn wait_reason(f: &Fixture, want: impl Fn(&CloseReason) -> bool) -> Vec<CloseReason> {
    wait_until(IO_TIMEOUT, || f.reasons.lock().unwrap().iter().any(&want));
    f.reasons.lock().unwrap().clone()
}

/// The echo integrity run for one configuration: two clients at once,
/// 1 MiB each in uneven writes, every byte back in order; a close_notify
/// from the client is the EOF, and the server's close_notify ends the
/// stream cleanly.
fn echo_integrity(builder: evnet::net::ServerBuilder, name: &str) {
    let f = start(builder, Duration::from_secs(10));
    let threads: Vec<_> = (0..2u64)
        .map(|seed| {
            let addr = f.addr;
            let cfg = client_config(&f.cert);
            std::thread::spawn(move || {
                let sock = util::connect(addr);
                let name = ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(cfg, name).unwrap();
                let mut s = rustls::StreamOwned::new(conn, sock);
                let data = pattern(seed, 1 << 20);
                let mut reader = s.sock.try_clone().unwrap();
                let _ = &mut reader;
                let mut got = Vec::with_capacity(data.len());
                let mut buf = vec![0u8; 64 * 1024];
                let mut sent = 0;
                let mut step = 1usize;
                while got.len() < data.len() {
                    if sent < data.len() && sent < got.len() + (256 << 10) {
                        let n = step.min(data.len() - sent);
                        s.write_all(&data[sent..sent + n]).unwrap();
                        s.flush().unwrap();
                        sent += n;
                        step = step * 7 % 40_000 + 1;
                        continue;
                    }
                    let n = s.read(&mut buf).expect("echo read");
                    assert!(n > 0, "EOF before the echo finished");
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(got == data, "echo differs");
                s.conn.send_close_notify();
                s.flush().unwrap();
                let rest = read_to_close(&mut s).expect("a clean close_notify from the server");
                assert!(rest.is_empty());
            })
        })
        .collect();
    for t in threads {
        if t.join().is_err() {
            panic!(
                "{name}: a client failed; closes: {:?}",
                f.reasons.lock().unwrap()
            );
        }
    }
    let reasons = wait_reason(&f, |_| false);
    let _ = reasons;
    wait_until(IO_TIMEOUT, || f.reasons.lock().unwrap().len() == 2);
    let reasons = f.reasons.lock().unwrap().clone();
    assert_eq!(
        reasons,
        vec![CloseReason::PeerClosed, CloseReason::PeerClosed],
        "{name}"
    );
}

macro_rules! backends {
    ($($name:ident: $poller:ident $trigger:ident $loops:literal,)*) => {
        $(
            #[test]
            fn $name() {
                let b = evnet::net::ServerBuilder::new()
                    .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
                    .poller(evnet::poller::PollerKind::$poller)
                    .trigger(evnet::poller::Trigger::$trigger)
                    .loops($loops);
                echo_integrity(b, stringify!($name));
            }
        )*
    };
}

backends! {
    echo_integrity_epoll_level_loops0: Epoll Level 0,
    echo_integrity_epoll_edge_loops2: Epoll Edge 2,
    echo_integrity_uring_edge_loops1: Uring Edge 1,
    echo_integrity_poll_loops0: Poll Level 0,
    echo_integrity_select_loops1: Select Level 1,
    echo_integrity_proactor_loops0: Proactor Level 0,
    echo_integrity_proactor_loops2: Proactor Level 2,
}

/// Writes one byte per call: a ClientHello (and everything after) arrives
/// in 1-byte segments.
struct OneByte(TcpStream);

impl Read for OneByte {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for OneByte {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0.write(&buf[..1])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[test]
fn a_client_hello_in_one_byte_writes_completes() {
    let f = start_default(Duration::from_secs(10));
    let sock = util::connect(f.addr);
    sock.set_nodelay(true).unwrap();
    let mut s = tls_over(&f, OneByte(sock));
    s.write_all(b"byte by byte").unwrap();
    s.flush().unwrap();
    let mut got = [0u8; 12];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"byte by byte");
}

#[test]
fn garbage_instead_of_a_client_hello_closes_only_that_connection() {
    let f = start_default(Duration::from_secs(10));
    let mut bad = util::connect(f.addr);
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let got = expect_raw_close(&mut bad);
    // Whatever came back is a TLS alert record (content type 21), never a
    // plaintext answer.
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    let reasons = wait_reason(&f, |r| matches!(r, CloseReason::Protocol(_)));
    assert!(
        matches!(&reasons[0], CloseReason::Protocol(m) if m.starts_with("tls: ")),
        "{reasons:?}"
    );
    // A well-behaved client is served meanwhile.
    let mut good = tls_connect(&f);
    good.write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    good.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
}

/// A record header that promises more bytes than ever come, then EOF.
#[test]
fn a_truncated_record_closes_with_an_error() {
    let f = start_default(Duration::from_secs(10));
    let mut s = tls_connect(&f);
    s.sock.write_all(&[23, 3, 3, 0, 64]).unwrap();
    s.sock.write_all(&[0u8; 10]).unwrap();
    s.sock.shutdown(Shutdown::Write).unwrap();
    expect_raw_close(&mut s.sock);
    let reasons = wait_reason(&f, |r| matches!(r, CloseReason::Protocol(_)));
    assert!(
        matches!(&reasons[0], CloseReason::Protocol(m) if m.starts_with("tls: ")),
        "{reasons:?}"
    );
}

/// A record longer than TLS allows (2^14 + 2048 bytes of ciphertext) is
/// refused from its header, before its body is read.
#[test]
fn a_record_over_the_maximum_size_is_refused() {
    let f = start_default(Duration::from_secs(10));
    let mut s = tls_connect(&f);
    let len: u16 = (1 << 14) + 2048 + 1;
    let mut rec = vec![23, 3, 3];
    rec.extend_from_slice(&len.to_be_bytes());
    s.sock.write_all(&rec).unwrap();
    let got = expect_raw_close(&mut s.sock);
    let _ = got;
    let reasons = wait_reason(&f, |r| matches!(r, CloseReason::Protocol(_)));
    assert!(
        matches!(&reasons[0], CloseReason::Protocol(m) if m.starts_with("tls: ")),
        "{reasons:?}"
    );
}

#[test]
fn a_silent_client_hits_the_handshake_timeout() {
    let f = start_default(Duration::from_millis(300));
    let t0 = Instant::now();
    let mut silent = util::connect(f.addr);
    // And one that starts a ClientHello and stops halfway.
    let mut half = util::connect(f.addr);
    half.write_all(&[22, 3, 1, 0, 200, 1, 0, 0]).unwrap();
    expect_raw_close(&mut silent);
    expect_raw_close(&mut half);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    wait_until(IO_TIMEOUT, || f.reasons.lock().unwrap().len() == 2);
    let reasons = f.reasons.lock().unwrap().clone();
    let want = CloseReason::Protocol("tls: handshake timed out".into());
    assert_eq!(reasons, vec![want.clone(), want]);
}

#[test]
fn a_close_without_close_notify_is_an_error_reason() {
    let f = start_default(Duration::from_secs(10));
    let mut s = tls_connect(&f);
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).unwrap();
    // TCP FIN, no close_notify: the data may have been truncated.
    s.sock.shutdown(Shutdown::Write).unwrap();
    expect_raw_close(&mut s.sock);
    let reasons = wait_reason(&f, |r| matches!(r, CloseReason::Protocol(_)));
    assert_eq!(
        reasons,
        vec![CloseReason::Protocol(
            "tls: peer closed without close_notify".into()
        )]
    );
}

/// 300 connections sit in the middle of a handshake while well-behaved
/// clients keep being served; the handshake timeout then clears them all.
#[test]
fn a_flood_of_half_finished_handshakes_does_not_stop_good_clients() {
    let f = start_default(Duration::from_secs(2));
    // The first bytes of a real ClientHello.
    let mut hello = Vec::new();
    {
        let name = ServerName::try_from("localhost").unwrap();
        let mut c = rustls::ClientConnection::new(client_config(&f.cert), name).unwrap();
        c.write_tls(&mut hello).unwrap();
    }
    let mut flood: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = util::connect(f.addr);
            s.write_all(&hello[..hello.len() / 2]).unwrap();
            s
        })
        .collect();
    for i in 0..20u64 {
        let mut good = tls_connect(&f);
        let msg = pattern(i, 1000);
        good.write_all(&msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        good.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
        good.conn.send_close_notify();
        good.flush().unwrap();
    }
    for s in flood.iter_mut() {
        expect_raw_close(s);
    }
    wait_until(IO_TIMEOUT, || f.reasons.lock().unwrap().len() == 320);
    let reasons = f.reasons.lock().unwrap().clone();
    let timed_out = reasons
        .iter()
        .filter(|r| **r == CloseReason::Protocol("tls: handshake timed out".into()))
        .count();
    assert_eq!(timed_out, 300, "{reasons:?}");
}

/// Output counts as ciphertext queued: a handler that writes to a peer
/// that does not read crosses the high-water mark with its records.
#[test]
fn backpressure_counts_the_ciphertext_queued() {
    #[derive(Clone)]
    struct Flooder(Arc<Mutex<Vec<usize>>>);
    impl EventHandler for Flooder {
        type Context = ();
        fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
            input.clear();
            // 16 MiB in 64 KiB writes, to a client that does not read yet.
            let block = vec![b'x'; 64 * 1024];
            for _ in 0..256 {
                let _ = conn.write(&block);
            }
        }
        fn on_high_water(&mut self, conn: &mut Conn<'_, Self>, queued: usize) {
            self.0.lock().unwrap().push(queued.max(conn.queued()));
        }
    }
    let (tls, cert) = TlsServerBuilder::new().self_signed(&["localhost"]).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = Flooder(seen.clone());
    let server = evnet::net::ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .high_water(256 * 1024)
        .send_buffer(32 * 1024)
        .tls(tls.build().unwrap())
        .start(move |_| h.clone())
        .unwrap();
    let f = Fixture {
        addr: server.addrs()[0].tcp().unwrap(),
        server: Some(server),
        cert,
        reasons: Arc::default(),
    };
    let mut s = tls_connect(&f);
    s.sock.set_nodelay(true).unwrap();
    s.write_all(b"go").unwrap();
    s.flush().unwrap();
    assert!(wait_until(IO_TIMEOUT, || !seen.lock().unwrap().is_empty()));
    let queued = seen.lock().unwrap()[0];
    // What waits is records: more than the high-water mark, less than the
    // 16 MiB written (the kernel took some) plus record overhead.
    assert!(queued >= 256 * 1024, "{queued}");
    assert!(queued <= (16 << 20) + (16 << 20) / 16384 * 40, "{queued}");
    // Reading resumes: every byte arrives, decrypted.
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < 16 << 20 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        assert!(buf[..n].iter().all(|&b| b == b'x'));
        got += n;
    }
    assert_eq!(got, 16 << 20);
}

/// With a client CA configured, a client without a certificate is refused
/// and one with a certificate the CA signed is served.
#[test]
fn client_certificates_are_checked_against_the_ca() {
    let dir = std::env::temp_dir().join(format!("evnet-tls-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = rcgen::CertificateParams::new(vec!["client.test".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();

    let (tls, cert) = TlsServerBuilder::new().self_signed(&["localhost"]).unwrap();
    let acceptor = tls.client_ca_file(&ca_file).build().unwrap();
    let rec = Recorder::default();
    let reasons = rec.reasons.clone();
    let server = evnet::net::ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .tls(acceptor)
        .start(move |_| rec.clone())
        .unwrap();
    let f = Fixture {
        addr: server.addrs()[0].tcp().unwrap(),
        server: Some(server),
        cert,
        reasons,
    };

    // No certificate: the server refuses (TLS 1.3 reports it on the read).
    let mut anon = tls_over(&f, util::connect(f.addr));
    let _ = anon.write_all(b"anon");
    let _ = anon.flush();
    let mut buf = [0u8; 4];
    assert!(
        anon.read_exact(&mut buf).is_err(),
        "served without a certificate"
    );

    // A certificate the CA signed: served.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(f.cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![client_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(client_key.serialize_der().into()),
        )
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut ok = rustls::StreamOwned::new(conn, util::connect(f.addr));
    ok.write_all(b"mine").unwrap();
    ok.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"mine");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two certificates: the client that asks for a name gets the one for it
/// (it trusts only that one, so the handshake proves the choice).
#[test]
fn sni_chooses_the_certificate_for_the_name_asked() {
    let (b, one) = TlsServerBuilder::new().self_signed(&["one.test"]).unwrap();
    let (b, two) = b.self_signed(&["two.test"]).unwrap();
    let rec = Recorder::default();
    let server = evnet::net::ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .tls(b.build().unwrap())
        .start(move |_| rec.clone())
        .unwrap();
    let addr = server.addrs()[0].tcp().unwrap();
    for (name, cert) in [("two.test", &two), ("one.test", &one)] {
        let sni = ServerName::try_from(name.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(client_config(cert), sni).unwrap();
        let mut s = rustls::StreamOwned::new(conn, util::connect(addr));
        s.write_all(name.as_bytes()).unwrap();
        let mut back = vec![0u8; name.len()];
        s.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, name.as_bytes());
    }
    let _ = server.shutdown();
}
