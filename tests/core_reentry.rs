//! A handler cannot re-enter the dispatch that is running it.
//!
//! Regression: a handler used to get `&mut EventLoop` from
//! `Conn::event_loop()`, and a graceful drain started from `on_message`
//! while another connection was open on the loop re-entered that other
//! connection's callbacks while the per-loop handler was still borrowed: the
//! loop thread died with a `RefCell` borrow error.

mod util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evnet::net::{Buffer, CloseReason, Conn, EventHandler, ServerBuilder};
use util::*;

type Log = Arc<Mutex<Vec<CloseReason>>>;

struct Drainer {
    log: Log,
}

impl EventHandler for Drainer {
    type Context = ();

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if input.as_slice().starts_with(b"drain") {
            input.clear();
            let _ = conn.write(b"draining\n");
            conn.loop_ctx().drain(Duration::from_secs(5));
        } else {
            let data = input.as_slice().to_vec();
            input.clear();
            let _ = conn.write(&data);
        }
    }

    fn on_close(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.log.lock().unwrap().push(reason.clone());
    }
}

#[test]
fn drain_from_a_callback_with_other_connections_open() {
    let log: Log = Default::default();
    let l = log.clone();
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(move |_| Drainer { log: l.clone() })
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut other = connect(addr);
    other.write_all(b"ping").unwrap();
    assert_eq!(read_exact(&mut other, 4), b"ping");
    let mut a = connect(addr);
    a.write_all(b"drain").unwrap();
    assert_eq!(read_exact(&mut a, 9), b"draining\n");
    // Both connections are closed by the drain: each sees EOF.
    let mut rest = Vec::new();
    a.read_to_end(&mut rest)
        .expect("drained connection ends with EOF");
    assert!(rest.is_empty());
    other
        .read_to_end(&mut rest)
        .expect("other connection ends with EOF");
    assert!(rest.is_empty());
    server
        .join()
        .expect("the loop ends cleanly, without a panic");
    let log = log.lock().unwrap();
    assert_eq!(*log, vec![CloseReason::Shutdown, CloseReason::Shutdown]);
}
