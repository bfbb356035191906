//! A closing connection costs bounded work, on every driver: a peer that
//! never reads keeps the output from draining, and one that keeps sending
//! must not make the server read and discard forever.

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use evnet::net::{Buffer, CloseReason, Conn, EventHandler, Server, ServerBuilder};
use evnet::poller::{PollerKind, Trigger};
use util::wait_until;

/// On `close`, queues a reply far larger than the socket buffers, then
/// closes gracefully: the output cannot drain while the peer does not read.
struct BigThenClose {
    closed: mpsc::Sender<CloseReason>,
}

impl EventHandler for BigThenClose {
    type Context = ();
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if input.as_slice().starts_with(b"close") {
            let _ = conn.write_vec(vec![b'x'; 32 << 20]);
            conn.close();
        }
        input.clear();
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        let _ = self.closed.send(reason.clone());
    }
}

fn server(
    poller: PollerKind,
    trigger: Trigger,
    tune: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> (Server, mpsc::Receiver<CloseReason>) {
    let (tx, rx) = mpsc::channel();
    let tx = Arc::new(Mutex::new(tx));
    let b = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .poller(poller)
        .trigger(trigger)
        .loops(1)
        .recv_buffer(64 << 10);
    let server = tune(b)
        .start(move |_| BigThenClose {
            closed: tx.lock().unwrap().clone(),
        })
        .unwrap();
    (server, rx)
}

fn bytes_in(server: &Server) -> u64 {
    server
        .serving_loops()
        .iter()
        .map(|l| l.stats().bytes_in.load(Ordering::Relaxed))
        .sum()
}

/// Send without end and never read, until the connection is cut: returns
/// the bytes sent and whether it was cut. Bounded: 64 MiB or 20 s without a
/// cut returns uncut.
fn flood_until_cut(s: &mut TcpStream) -> (u64, bool) {
    let chunk = vec![b'g'; 16 << 10];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(20) && sent < 64 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (sent, true),
        }
    }
    (sent, false)
}

/// The never-reading flooder: after the close decision it keeps sending.
/// The server reads at most the discard budget (plus one read) and then
/// resets the connection; the sender sees its writes fail.
fn flooder_is_cut_off_after_the_discard_budget(poller: PollerKind, trigger: Trigger) {
    const BUDGET: u64 = 256 << 10;
    let (server, closed) = server(poller, trigger, |b| {
        b.closing_discard(BUDGET)
            .closing_time(Duration::from_secs(60))
    });
    let mut s = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"close").unwrap();
    let before = 5u64;
    let (sent, cut) = flood_until_cut(&mut s);
    assert!(
        cut,
        "{poller:?}: sent {sent} bytes and the connection was not reset"
    );
    let reason = closed
        .recv_timeout(Duration::from_secs(10))
        .expect("on_close ran");
    assert_eq!(reason, CloseReason::Local);
    let read = bytes_in(&server) - before;
    // The budget, plus at most one read past it, plus the read that carried
    // `close` (whatever came behind it in that read was handed to the
    // handler before the close decision). A read takes at most 64 KiB.
    assert!(
        read <= BUDGET + 2 * (64 << 10),
        "{poller:?}: read {read} bytes after the close decision (budget {BUDGET})"
    );
    server.shutdown().unwrap();
}

/// A closing connection whose output never drains (the peer neither reads
/// nor sends) ends at the closing time, not never.
fn stuck_output_ends_at_the_closing_time(poller: PollerKind, trigger: Trigger) {
    let (server, closed) = server(poller, trigger, |b| {
        b.closing_time(Duration::from_millis(300))
    });
    let mut s = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    s.write_all(b"close").unwrap();
    let reason = closed
        .recv_timeout(Duration::from_secs(10))
        .expect("the close ended within its time budget");
    assert_eq!(reason, CloseReason::Local);
    assert_eq!(
        server.serving_loops()[0]
            .stats()
            .connections_open
            .load(Ordering::Relaxed),
        0
    );
    drop(s);
    server.shutdown().unwrap();
}

/// The flooder against a protocol server: `trigger` is a malformed message
/// the server answers with an error and a close; the client then sends
/// without end and never reads. The server reads at most the discard budget
/// (plus a read or two) after the close decision, then resets.
fn protocol_flooder_is_cut_off(
    poller: PollerKind,
    trigger: Trigger,
    what: &str,
    malformed: &[u8],
    start: impl FnOnce(ServerBuilder) -> Server,
) {
    const BUDGET: u64 = 256 << 10;
    let b = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .poller(poller)
        .trigger(trigger)
        .loops(1)
        .recv_buffer(64 << 10)
        .closing_discard(BUDGET)
        .closing_time(Duration::from_secs(60));
    let server = start(b);
    let mut s = TcpStream::connect(server.local_addr().unwrap()).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(malformed).unwrap();
    let (sent, cut) = flood_until_cut(&mut s);
    assert!(
        cut,
        "{what} on {poller:?}: sent {sent} bytes and the connection was not reset"
    );
    assert!(wait_until(Duration::from_secs(10), || server
        .serving_loops()[0]
        .stats()
        .connections_open
        .load(Ordering::Relaxed)
        == 0));
    let read = bytes_in(&server) - malformed.len() as u64;
    // The budget, one read past it, and what came behind the malformed
    // bytes in their read (handed to the handler before the decision).
    assert!(
        read <= BUDGET + 2 * (64 << 10),
        "{what} on {poller:?}: read {read} bytes after the close decision (budget {BUDGET})"
    );
    server.shutdown().unwrap();
}

fn resp_flooder(poller: PollerKind, trigger: Trigger) {
    use evnet::resp::server::{handler_factory, ActiveExpiry};
    // An array length that is not a number: a protocol error.
    protocol_flooder_is_cut_off(poller, trigger, "RESP", b"*x\r\n", |b| {
        let store = Arc::new(evnet::resp::Store::new());
        b.start(handler_factory(store, ActiveExpiry::default()))
            .unwrap()
    });
}

fn http_flooder(poller: PollerKind, trigger: Trigger) {
    let malformed = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n";
    protocol_flooder_is_cut_off(poller, trigger, "HTTP", malformed, |b| {
        evnet::http::HttpBuilder::new(b)
            .start()
            .unwrap()
            .into_server()
    });
}

/// The echo server of the codecs: lines echoed back; a line longer than
/// the codec's limit is a decode error.
struct LineEcho;

impl evnet::codec::framed::FrameHandler for LineEcho {
    type Codec = evnet::codec::line::LineCodec;
    type Context = ();
    fn on_frame(&mut self, conn: &mut Conn<'_, evnet::codec::framed::Framed<Self>>, line: Vec<u8>) {
        let _ = conn.write(&line);
        let _ = conn.write(b"\n");
    }
}

fn line_codec_flooder(poller: PollerKind, trigger: Trigger) {
    // Longer than the default 64 KiB line limit, without a newline.
    let malformed = vec![b'l'; 80 << 10];
    protocol_flooder_is_cut_off(poller, trigger, "line codec", &malformed, |b| {
        b.start(|_| evnet::codec::framed::Framed::new(LineEcho))
            .unwrap()
    });
}

macro_rules! per_driver {
    ($($name:ident: $poller:expr, $trigger:expr;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn flooder_is_cut_off_after_the_discard_budget() {
                super::flooder_is_cut_off_after_the_discard_budget($poller, $trigger);
            }
            #[test]
            fn stuck_output_ends_at_the_closing_time() {
                super::stuck_output_ends_at_the_closing_time($poller, $trigger);
            }
            #[test]
            fn resp_flooder_is_cut_off() {
                super::resp_flooder($poller, $trigger);
            }
            #[test]
            fn http_flooder_is_cut_off() {
                super::http_flooder($poller, $trigger);
            }
            #[test]
            fn line_codec_flooder_is_cut_off() {
                super::line_codec_flooder($poller, $trigger);
            }
        }
    )*};
}

per_driver! {
    epoll_level: PollerKind::Epoll, Trigger::Level;
    epoll_edge: PollerKind::Epoll, Trigger::Edge;
    uring_level: PollerKind::Uring, Trigger::Level;
    proactor: PollerKind::Proactor, Trigger::Level;
    poll: PollerKind::Poll, Trigger::Level;
}
