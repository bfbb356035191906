//! Short-lived connections: a request that asks for the close is answered
//! and the socket closed at once (no FIN-and-wait), a request the client
//! pipelined after it is not answered and the close stays clean; accepted sockets
//! get TCP_NODELAY from their listener, not from a setsockopt each.

#[path = "util/http.rs"]
mod util;

use std::io::{Read, Write};
use std::net::TcpStream;

use evnet::net::{AcceptMode, Buffer, Conn, EventHandler, ServerBuilder};
use util::*;

fn read_all(s: &mut TcpStream) -> std::io::Result<String> {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn a_close_request_gets_its_whole_response_then_eof() {
    let server = start();
    for i in 0..200 {
        let mut s = TcpStream::connect(addr(&server)).unwrap();
        let req: &[u8] = if i % 2 == 0 {
            b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        } else {
            b"GET /plaintext HTTP/1.0\r\n\r\n"
        };
        s.write_all(req).unwrap();
        let text = read_all(&mut s).expect("response then a clean EOF");
        assert!(text.starts_with("HTTP/1."), "{text}");
        assert!(text.contains(" 200 "), "{text}");
        assert!(text.ends_with("Hello, World!"), "{text}");
        assert_eq!(text.matches("HTTP/1.").count(), 1, "{text}");
    }
}

/// The client asked for the close but pipelined another request behind
/// it: only the first is answered, and the connection ends with a clean
/// EOF, not a reset. (Bytes still in the kernel when the response goes are
/// the case `close_done` guards by keeping the lingering close for any
/// unconsumed input; their arrival cannot be timed from a test.)
#[test]
fn a_request_pipelined_after_a_close_request_is_not_answered_and_not_reset() {
    let server = start();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr(&server)).unwrap();
        s.write_all(
            b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n\
              GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .unwrap();
        let text = read_all(&mut s).expect("no reset after the response");
        assert_eq!(text.matches("HTTP/1.1 200").count(), 1, "{text}");
        assert!(text.ends_with("Hello, World!"), "{text}");
    }
}

/// Writes "1" if the accepted socket has TCP_NODELAY, "0" if not.
struct NoDelayProbe;

impl EventHandler for NoDelayProbe {
    type Context = ();
    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        let on = evnet::sys::socket::with_sock(conn.fd(), |s| s.nodelay()).unwrap();
        let _ = conn.write(if on { b"1" } else { b"0" });
        conn.close();
    }
    fn on_message(&mut self, _conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        input.clear();
    }
}

fn probe(builder: ServerBuilder) -> String {
    let server = builder.start(|_| NoDelayProbe).unwrap();
    let mut got = String::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        got.push_str(&read_all(&mut s).unwrap());
    }
    got
}

#[test]
fn accepted_sockets_inherit_tcp_nodelay_from_the_listener() {
    let base = || ServerBuilder::new().bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap());
    assert_eq!(probe(base().loops(0)), "1111");
    assert_eq!(probe(base().loops(2)), "1111");
    assert_eq!(
        probe(base().loops(2).accept_mode(AcceptMode::ReusePort)),
        "1111"
    );
    assert_eq!(probe(base().loops(1).nodelay(false)), "0000");
}

/// With `defer_accept`, a client that connects and says nothing is not
/// accepted (it costs the server nothing), and one that sends its request
/// is accepted and answered at once.
#[test]
fn defer_accept_holds_silent_clients_in_the_kernel() {
    use evnet::echo::Echo;
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .loops(0)
        .defer_accept(std::time::Duration::from_secs(5))
        .start(|_| Echo)
        .unwrap();
    let a = server.addrs()[0].tcp().unwrap();
    let silent = TcpStream::connect(a).unwrap();
    let mut talker = TcpStream::connect(a).unwrap();
    talker.set_read_timeout(Some(TIMEOUT)).unwrap();
    talker.write_all(b"first words").unwrap();
    let mut back = [0u8; 11];
    talker.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"first words");
    // The talker is the only connection the server has: the silent one
    // (connected before it) still waits in the kernel.
    assert_eq!(server.connections_open(), 1);
    drop(silent);
    server.shutdown().unwrap();
}
