//! The Connector against evnet servers on loopback: round trips, many
//! connections on one loop, refused, timed out, retried, source address,
//! Unix-domain targets.

mod util;

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evnet::echo::Echo;
use evnet::net::{
    Addr, Backoff, Buffer, Client, ClientService, Conn, Connector, EventHandler, ServerBuilder,
};
use evnet::reactor::{EventLoop, LoopConfig};
use util::*;

const LIMIT: Duration = Duration::from_secs(20);

/// Sends a per-connection message on open, checks the echo, closes.
#[derive(Clone, Default)]
struct Stats {
    opened: Arc<AtomicUsize>,
    ok: Arc<AtomicUsize>,
    bad: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<io::ErrorKind>>>,
    local_ips: Arc<Mutex<Vec<IpAddr>>>,
}

struct Pinger {
    stats: Stats,
    next: u64,
}

#[derive(Default)]
struct Ctx {
    want: Vec<u8>,
    got: Vec<u8>,
}

impl EventHandler for Pinger {
    type Context = Ctx;

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        self.stats.opened.fetch_add(1, Ordering::SeqCst);
        if let Ok(Addr::Tcp(a)) = conn.local_addr() {
            self.stats.local_ips.lock().unwrap().push(a.ip());
        }
        self.next += 1;
        let msg = pattern(self.next, 100 + (self.next as usize % 900));
        conn.write(&msg).unwrap();
        conn.context().want = msg;
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        let ctx = conn.context();
        ctx.got.extend_from_slice(input.as_slice());
        input.clear();
        if ctx.got.len() >= ctx.want.len() {
            let counter = if ctx.got == ctx.want {
                &self.stats.ok
            } else {
                &self.stats.bad
            };
            counter.fetch_add(1, Ordering::SeqCst);
            conn.close();
        }
    }
}

fn start_client(connector: Connector, n: usize) -> (Client, Stats) {
    let stats = Stats::default();
    let (s1, s2) = (stats.clone(), stats.clone());
    let client = Client::start(
        connector,
        n,
        move || Pinger { stats: s1, next: 0 },
        move |e| {
            s2.failed.lock().unwrap().push(e.kind());
        },
    )
    .expect("client start");
    (client, stats)
}

fn echo_server() -> evnet::net::Server {
    ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(|_| Echo)
        .unwrap()
}

/// A local port with nothing listening on it.
fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Dial once on a loop driven by this thread; the failure it reports (or
/// `None` if it connected) and how long that took.
fn dial_once(connector: Connector) -> (Option<io::Error>, Duration) {
    let mut el = EventLoop::new(LoopConfig::default()).unwrap();
    let stats = Stats::default();
    let svc = ClientService::new(
        &mut el,
        Pinger {
            stats: stats.clone(),
            next: 0,
        },
    );
    let result: Rc<RefCell<Option<io::Error>>> = Rc::default();
    let r = result.clone();
    let start = Instant::now();
    connector.connect_on(&mut el.ctx(), &svc, move |_, e| *r.borrow_mut() = Some(e));
    while start.elapsed() < LIMIT
        && result.borrow().is_none()
        && stats.opened.load(Ordering::SeqCst) == 0
    {
        el.turn(Some(Duration::from_millis(10))).unwrap();
    }
    let elapsed = start.elapsed();
    let e = result.borrow_mut().take();
    (e, elapsed)
}

#[test]
fn connect_and_round_trip() {
    let server = echo_server();
    let (client, stats) = start_client(Connector::new(server.local_addr().unwrap()), 1);
    assert!(
        wait_until(LIMIT, || stats.ok.load(Ordering::SeqCst) == 1),
        "no round trip"
    );
    assert_eq!(stats.bad.load(Ordering::SeqCst), 0);
    client.shutdown().unwrap();
}

#[test]
fn five_hundred_connections_on_one_loop() {
    let _ = evnet::sys::raise_nofile_limit();
    let server = echo_server();
    let (client, stats) = start_client(Connector::new(server.local_addr().unwrap()), 500);
    let ok = wait_until(LIMIT, || stats.ok.load(Ordering::SeqCst) == 500);
    assert!(
        ok,
        "round trips {} of 500 (opened {}, failed {:?})",
        stats.ok.load(Ordering::SeqCst),
        stats.opened.load(Ordering::SeqCst),
        stats.failed.lock().unwrap()
    );
    assert_eq!(stats.bad.load(Ordering::SeqCst), 0);
    client.shutdown().unwrap();
}

#[test]
fn refused_is_reported_quickly() {
    let (e, took) = dial_once(Connector::new(dead_port()));
    let e = e.expect("dial should fail");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn connect_timeout_when_accept_queue_is_full() {
    // A listener that never accepts, with the smallest queue the kernel
    // allows; once it is full, new SYNs are dropped.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                full = true;
                break;
            }
            Err(e) => panic!("filling the accept queue: {e}"),
        }
    }
    assert!(
        full,
        "accept queue never filled ({} connections)",
        held.len()
    );
    let (e, took) = dial_once(Connector::new(addr).connect_timeout(Duration::from_millis(300)));
    let e = e.expect("dial should time out");
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(
        took >= Duration::from_millis(300),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn retry_gets_through_once_the_server_appears() {
    let addr = dead_port();
    let failures = Arc::new(AtomicU32::new(0));
    let f = failures.clone();
    let connector = Connector::new(addr)
        .retry(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            multiplier: 2.0,
            jitter: true,
            max_attempts: Some(200),
        })
        .on_retry(move |_, e| {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
            f.fetch_add(1, Ordering::SeqCst);
        });
    let (client, stats) = start_client(connector, 1);
    assert!(
        wait_until(LIMIT, || failures.load(Ordering::SeqCst) >= 2),
        "no failed attempts seen"
    );
    let server = ServerBuilder::new()
        .bind(addr)
        .loops(0)
        .start(|_| Echo)
        .expect("bind the port late");
    assert!(
        wait_until(LIMIT, || stats.ok.load(Ordering::SeqCst) == 1),
        "never got through"
    );
    assert!(stats.failed.lock().unwrap().is_empty());
    client.shutdown().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn retry_gives_up_after_max_attempts() {
    let connector = Connector::new(dead_port()).retry(Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(20),
        multiplier: 2.0,
        jitter: false,
        max_attempts: Some(3),
    });
    let (e, _) = dial_once(connector);
    assert_eq!(
        e.expect("should give up").kind(),
        io::ErrorKind::ConnectionRefused
    );
}

#[test]
fn bind_source_address() {
    let server = echo_server();
    let src: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let (client, stats) = start_client(Connector::new(server.local_addr().unwrap()).bind(src), 3);
    assert!(
        wait_until(LIMIT, || stats.ok.load(Ordering::SeqCst) == 3),
        "no round trip"
    );
    let ips = stats.local_ips.lock().unwrap().clone();
    assert_eq!(ips, vec![src.ip(); 3]);
    client.shutdown().unwrap();
}

#[test]
fn unix_and_abstract_addresses_dial() {
    let path = std::env::temp_dir().join(format!("evnet-connector-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let name = format!("evnet-connector-{}", std::process::id()).into_bytes();
    for addr in [Addr::Unix(path.clone()), Addr::Abstract(name)] {
        let server = ServerBuilder::new()
            .bind(addr.clone())
            .loops(0)
            .start(|_| Echo)
            .unwrap();
        let (client, stats) = start_client(Connector::new(addr.clone()), 5);
        assert!(
            wait_until(LIMIT, || stats.ok.load(Ordering::SeqCst) == 5),
            "{addr}: no round trip"
        );
        client.shutdown().unwrap();
        server.shutdown().unwrap();
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_service_shares_one_handler_and_lends_it_outside_callbacks() {
    let mut el = EventLoop::new(LoopConfig::default()).unwrap();
    let stats = Stats::default();
    let a = ClientService::new(
        &mut el,
        Pinger {
            stats: stats.clone(),
            next: 7,
        },
    );
    let b = a.clone();
    assert_eq!(a.with(&mut el, |h| h.next += 1), Some(()));
    assert_eq!(b.with(&mut el, |h| h.next), Some(8));
}
