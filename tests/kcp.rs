//! KCP sessions on evnet (a `ServerBuilder` with `kcp` set, serving
//! ordinary `EventHandler`s): integrity through a lossy, duplicating,
//! reordering relay; dead-peer detection and a restarted client; bad
//! input; the session cap; message mode; backpressure against the window.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use evnet::echo::Echo;
use evnet::kcp::segment::{Cmd, Header};
use evnet::kcp::{KcpClient, KcpConfig, KcpMode};
use evnet::net::{Buffer, CloseReason, Conn, EventHandler, MaxConnections, Server, ServerBuilder};
use evnet::sys::fdset::{poll, PollFd, POLLIN};
use rand::{Rng, SeedableRng};

fn fast() -> KcpConfig {
    KcpConfig {
        mode: KcpMode::Fast,
        ..KcpConfig::default()
    }
}

/// A KCP server on a free loopback port, one loop.
fn serve<H: EventHandler>(
    cfg: KcpConfig,
    max: Option<usize>,
    factory: impl Fn(usize) -> H + Send + Sync + 'static,
) -> (Server, SocketAddr) {
    let mut b = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(1)
        .kcp(cfg);
    if let Some(n) = max {
        b = b.max_connections(MaxConnections::Max(n));
    }
    let server = b.start(factory).unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr)
}

/// A UDP relay between clients and a server: each client gets its own
/// upstream socket (so the server sees distinct peers); every datagram is
/// dropped with `loss`, sent twice with `dup`, or held back and sent after
/// the next one with `reorder`. Stops on drop.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Relay {
    fn start(server: SocketAddr, loss: f64, dup: f64, reorder: f64) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        front.set_nonblocking(true).unwrap();
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(99);
            let mut ups: Vec<(SocketAddr, UdpSocket)> = Vec::new();
            let mut by_client: HashMap<SocketAddr, usize> = HashMap::new();
            // One held-back datagram per direction and upstream: (to, bytes).
            let mut held: HashMap<(usize, bool), Vec<u8>> = HashMap::new();
            let mut buf = vec![0u8; 65_536];
            let mut fds: Vec<PollFd> = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                fds.clear();
                fds.push(PollFd {
                    fd: front.as_raw_fd(),
                    events: POLLIN,
                    revents: 0,
                });
                for (_, u) in &ups {
                    fds.push(PollFd {
                        fd: u.as_raw_fd(),
                        events: POLLIN,
                        revents: 0,
                    });
                }
                poll(&mut fds, 20).unwrap();
                // Client -> server.
                while let Ok((n, from)) = front.recv_from(&mut buf) {
                    let i = *by_client.entry(from).or_insert_with(|| {
                        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                        u.connect(server).unwrap();
                        u.set_nonblocking(true).unwrap();
                        ups.push((from, u));
                        ups.len() - 1
                    });
                    let d = &buf[..n];
                    let send = |d: &[u8]| {
                        let _ = ups[i].1.send(d);
                    };
                    forward(&mut rng, &mut held, (i, true), d, loss, dup, reorder, send);
                }
                // Server -> client.
                for (i, (to, up)) in ups.iter().enumerate() {
                    while let Ok(n) = up.recv(&mut buf) {
                        let to = *to;
                        let send = |d: &[u8]| {
                            let _ = front.send_to(d, to);
                        };
                        forward(
                            &mut rng,
                            &mut held,
                            (i, false),
                            &buf[..n],
                            loss,
                            dup,
                            reorder,
                            send,
                        );
                    }
                }
            }
        });
        Relay {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn forward(
    rng: &mut rand::rngs::StdRng,
    held: &mut HashMap<(usize, bool), Vec<u8>>,
    key: (usize, bool),
    d: &[u8],
    loss: f64,
    dup: f64,
    reorder: f64,
    send: impl Fn(&[u8]),
) {
    if rng.gen_bool(loss) {
        return;
    }
    if rng.gen_bool(reorder) && !held.contains_key(&key) {
        held.insert(key, d.to_vec());
        return;
    }
    send(d);
    if rng.gen_bool(dup) {
        send(d);
    }
    // A held datagram goes out after the one that overtook it.
    if let Some(h) = held.remove(&key) {
        send(&h);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen()).collect()
}

/// Drive many clients from one thread until each has `want[i]` bytes back.
fn drive(clients: &mut [KcpClient], want: &[usize], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut fds: Vec<PollFd> = Vec::new();
    loop {
        let mut done = 0;
        for (c, w) in clients.iter_mut().zip(want) {
            if c.received().len() >= *w {
                done += 1;
            }
        }
        if done == clients.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} sessions complete after {timeout:?}",
            clients.len()
        );
        fds.clear();
        fds.extend(clients.iter().map(|c| PollFd {
            fd: c.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        }));
        poll(&mut fds, 5).unwrap();
        for c in clients.iter_mut() {
            c.poll(Duration::ZERO).unwrap();
        }
    }
}

#[test]
fn two_hundred_sessions_arrive_whole_through_loss_duplication_and_reordering() {
    let (server, addr) = serve(fast(), None, |_| Echo);
    let relay = Relay::start(addr, 0.10, 0.05, 0.10);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut clients = Vec::new();
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let mut c = KcpClient::connect(relay.addr, 1000 + i, &fast()).unwrap();
        // Every tenth session sends up to 256 KiB; the rest a few small
        // messages (random sizes), so the run stays short.
        let mut all = Vec::new();
        let msgs = if i % 10 == 0 { 1 } else { 3 };
        for m in 0..msgs {
            let max = if i % 10 == 0 { 256 << 10 } else { 8 << 10 };
            let len = rng.gen_range(1..=max);
            let d = pattern(u64::from(i) << 8 | m, len);
            c.send(&d).unwrap();
            all.extend_from_slice(&d);
        }
        clients.push(c);
        sent.push(all);
    }
    let want: Vec<usize> = sent.iter().map(Vec::len).collect();
    drive(&mut clients, &want, Duration::from_secs(120));
    for (i, (c, s)) in clients.iter_mut().zip(&sent).enumerate() {
        let got = c.received();
        assert_eq!(got.len(), s.len(), "session {i}: length");
        assert!(
            got == s,
            "session {i}: bytes differ (order, loss or duplication)"
        );
    }
    drop(relay);
    server.shutdown().unwrap();
}

/// Reports opens and closes.
struct Watch(mpsc::Sender<(u32, Option<CloseReason>, Instant)>);

impl EventHandler for Watch {
    type Context = ();
    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        let _ = self
            .0
            .send((conn.kcp_conv().unwrap(), None, Instant::now()));
    }
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if conn.write(input.as_slice()).is_ok() {
            input.clear();
        }
    }
    fn on_close(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        let _ = self.0.send((
            conn.kcp_conv().unwrap(),
            Some(reason.clone()),
            Instant::now(),
        ));
    }
}

fn echo_once(c: &mut KcpClient, msg: &[u8]) {
    c.received().clear();
    c.send(msg).unwrap();
    c.wait_for(msg.len(), Duration::from_secs(10)).unwrap();
    assert_eq!(c.received().as_slice(), msg);
}

#[test]
fn vanished_client_is_detected_within_the_idle_bound_and_a_restart_gets_a_fresh_session() {
    let idle = Duration::from_millis(300);
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let cfg = KcpConfig {
        idle_timeout: idle,
        ..fast()
    };
    let (server, addr) = serve(cfg, None, move |_| Watch(tx.lock().unwrap().clone()));
    let recv = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no event: {what}"))
    };

    // A client talks, then goes silent (its socket stays open, as behind
    // a network that went away: no ICMP error tells the server).
    let mut c = KcpClient::connect(addr, 1, &fast()).unwrap();
    echo_once(&mut c, b"hello");
    assert_eq!(recv("open 1").0, 1);
    // Let our last ACKs out, then go silent.
    c.poll(Duration::from_millis(20)).unwrap();
    let silent_since = Instant::now();
    let (conv, reason, at) = recv("close 1");
    assert_eq!((conv, reason), (1, Some(CloseReason::IdleTimeout)));
    let took = at - silent_since;
    assert!(
        took >= idle / 2 && took <= idle + Duration::from_secs(1),
        "dead peer noticed after {took:?}, bound {idle:?}"
    );
    drop(c);

    // A client on one address restarts with a new conversation id: the old
    // session is replaced, the new one starts from scratch.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    sock.connect(addr).unwrap();
    let mut c = KcpClient::with_socket(sock, 2, &fast()).unwrap();
    echo_once(&mut c, b"first life");
    assert_eq!(recv("open 2").0, 2);
    drop(c);
    let sock = UdpSocket::bind(local).unwrap();
    sock.connect(addr).unwrap();
    let mut c = KcpClient::with_socket(sock, 3, &fast()).unwrap();
    echo_once(&mut c, b"second life");
    let (conv, reason, _) = recv("old session replaced");
    assert_eq!((conv, reason), (2, Some(CloseReason::Reset)));
    assert_eq!(recv("open 3").0, 3);
    drop(c);
    server.shutdown().unwrap();
}

/// Writes `len` bytes of a pattern when the first byte arrives, notes how
/// much waited in the queue behind the window, then closes.
struct Flood {
    len: usize,
    queued: mpsc::Sender<usize>,
    closed: mpsc::Sender<(CloseReason, Instant)>,
}

impl EventHandler for Flood {
    type Context = ();
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        input.clear();
        if conn.is_closing() {
            return;
        }
        conn.write_vec(pattern(99, self.len)).unwrap();
        conn.flush();
        let _ = self.queued.send(conn.queued());
        conn.close();
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        let _ = self.closed.send((reason.clone(), Instant::now()));
    }
}

#[test]
fn a_large_write_waits_behind_the_window_arrives_whole_and_the_close_waits_for_it() {
    const LEN: usize = 4 << 20;
    let (qtx, qrx) = mpsc::channel();
    let (ctx, crx) = mpsc::channel();
    let (qtx, ctx) = (std::sync::Mutex::new(qtx), std::sync::Mutex::new(ctx));
    let (server, addr) = serve(fast(), None, move |_| Flood {
        len: LEN,
        queued: qtx.lock().unwrap().clone(),
        closed: ctx.lock().unwrap().clone(),
    });
    let mut c = KcpClient::connect(addr, 77, &fast()).unwrap();
    c.send(b"go").unwrap();
    // The window (128 segments of at most 1,376 bytes) takes a fraction:
    // the rest waits in the connection's queue.
    let queued = loop {
        c.poll(Duration::from_millis(5)).unwrap();
        if let Ok(q) = qrx.try_recv() {
            break q;
        }
    };
    let window = 128 * 1376;
    assert!(
        queued >= LEN - window && queued < LEN,
        "{queued} bytes queued of {LEN}"
    );
    c.wait_for(LEN, Duration::from_secs(60)).unwrap();
    let got_all = Instant::now();
    assert!(
        c.received().as_slice() == pattern(99, LEN).as_slice(),
        "bytes differ"
    );
    // The close waited for the last acknowledgement, then ended at once
    // (no FIN to linger for).
    let (reason, at) = loop {
        c.poll(Duration::from_millis(5)).unwrap();
        if let Ok(r) = crx.try_recv() {
            break r;
        }
        assert!(
            got_all.elapsed() < Duration::from_secs(10),
            "session not closed after its data was acknowledged"
        );
    };
    assert_eq!(reason, CloseReason::Local);
    assert!(
        at + Duration::from_millis(5) >= got_all,
        "closed before the data was through"
    );
    server.shutdown().unwrap();
}

/// Counts sessions open at once and the most ever open.
#[derive(Default)]
struct Count {
    open: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl EventHandler for Count {
    type Context = ();
    fn on_open(&mut self, _conn: &mut Conn<'_, Self>) {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if conn.write(input.as_slice()).is_ok() {
            input.clear();
        }
    }
    fn on_close(&mut self, _conn: &mut Conn<'_, Self>, _reason: &CloseReason) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn segment(conv: u32, cmd: u8, sn: u32, len_field: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    Header {
        conv,
        cmd: Cmd::Push,
        frg: 0,
        wnd: 128,
        ts: 0,
        sn,
        una: 0,
        len: len_field,
    }
    .encode(&mut b);
    b[4] = cmd;
    b.extend_from_slice(data);
    b
}

#[test]
fn bad_datagrams_and_a_flood_of_conversations_cost_only_themselves() {
    const CAP: usize = 16;
    let open = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (o, m) = (open.clone(), max.clone());
    let (server, addr) = serve(fast(), Some(CAP), move |_| Count {
        open: o.clone(),
        max: m.clone(),
    });
    // A good client, in the middle of a conversation.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(addr).unwrap();
    // The same port, to send garbage as the good client.
    let raw = sock.try_clone().unwrap();
    let mut good = KcpClient::with_socket(sock, 42, &fast()).unwrap();
    echo_once(&mut good, b"before");

    // Garbage from the good client's own address and from a stranger:
    // an empty datagram, truncated headers, a len past the end, an unknown
    // command, an ACK for nothing sent, a PUSH far outside the window.
    // None may end or stall the session.
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![42, 0, 0],
        segment(42, 81, 0, 0, b"")[..23].to_vec(),
        segment(42, 81, 5, 100, b"short"),
        segment(42, 81, 5, u32::MAX, b"x"),
        segment(42, 99, 5, 1, b"x"),
        segment(42, 82, 1_000_000, 0, b""),
        segment(42, 81, u32::MAX, 3, b"abc"),
    ];
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in &bad {
        raw.send(d).unwrap();
        stranger.send_to(d, addr).unwrap();
    }
    echo_once(&mut good, b"after garbage");

    // A flood of new conversations with random ids from 64 addresses, and
    // garbage of random length from them too.
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let flooders: Vec<UdpSocket> = (0..64)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for round in 0..20 {
        for f in &flooders {
            let conv: u32 = rng.gen();
            let d = if round % 2 == 0 {
                segment(conv, 81, 0, 4, b"ping")
            } else {
                let len = rng.gen_range(0..200);
                (0..len).map(|_| rng.gen()).collect()
            };
            f.send_to(&d, addr).unwrap();
        }
    }
    echo_once(&mut good, b"after the flood");
    assert!(
        max.load(Ordering::SeqCst) <= CAP,
        "{} sessions open at once, cap {CAP}",
        max.load(Ordering::SeqCst)
    );
    assert!(open.load(Ordering::SeqCst) >= 1, "the good session is open");
    server.shutdown().unwrap();
}

#[test]
fn heartbeat_keeps_a_live_quiet_peer_and_closes_a_silent_or_gone_one() {
    use evnet::net::heartbeat::HeartbeatConfig;
    let hb = HeartbeatConfig {
        idle: Duration::from_millis(200),
        interval: Duration::from_millis(100),
        max_missed: 3,
    };
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let cfg = KcpConfig {
        // Far beyond the heartbeat's bound: only the heartbeat can close.
        idle_timeout: Duration::from_secs(60),
        heartbeat: Some(hb),
        ..fast()
    };
    let (server, addr) = serve(cfg, None, move |_| Watch(tx.lock().unwrap().clone()));
    let mut c = KcpClient::connect(addr, 9, &fast()).unwrap();
    echo_once(&mut c, b"hi");
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().0, 9);
    // Quiet but alive: the client sends no data, yet its engine answers
    // the server's window probes, so the session stays open well past the
    // heartbeat's bound (200 ms + 3 x 100 ms).
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        c.poll(Duration::from_millis(10)).unwrap();
        assert!(
            rx.try_recv().is_err(),
            "a live peer's session was closed by the heartbeat"
        );
    }
    // Now it stops answering (its socket open, the probes unread).
    let silent = Instant::now();
    let (conv, reason, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((conv, reason), (9, Some(CloseReason::IdleTimeout)));
    let took = at - silent;
    assert!(
        took <= Duration::from_millis(500) + Duration::from_secs(1),
        "silent peer noticed after {took:?}"
    );
    drop(c);

    // A peer whose socket is gone: the first probe comes back as an ICMP
    // port-unreachable, which ends the session as a reset, before the
    // heartbeat's bound.
    let mut c = KcpClient::connect(addr, 10, &fast()).unwrap();
    echo_once(&mut c, b"hi");
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().0, 10);
    c.poll(Duration::from_millis(20)).unwrap();
    let gone = Instant::now();
    drop(c);
    let (conv, reason, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((conv, reason), (10, Some(CloseReason::Reset)));
    assert!(
        at - gone < Duration::from_millis(200 + 300),
        "gone peer noticed after {:?}",
        at - gone
    );
    server.shutdown().unwrap();
}

/// Message mode: answers each message with its length, so the test sees
/// where the handler's message boundaries fell.
struct Lengths;

impl EventHandler for Lengths {
    type Context = ();
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        let n = input.len() as u32;
        input.clear();
        conn.write(&n.to_be_bytes()).unwrap();
    }
}

#[test]
fn message_mode_hands_over_whole_messages_one_at_a_time() {
    let cfg = KcpConfig {
        stream: false,
        ..fast()
    };
    let (server, addr) = serve(cfg, None, |_| Lengths);
    let mut c = KcpClient::connect(addr, 5, &cfg).unwrap();
    // One byte, exactly one segment, several fragments, and a burst of
    // small ones sent back to back (they must not be merged).
    let sizes = [1usize, 1376, 1377, 50_000, 3, 3, 3, 100_000];
    for &n in &sizes {
        c.send(&vec![7u8; n]).unwrap();
    }
    c.wait_for(4 * sizes.len(), Duration::from_secs(20))
        .unwrap();
    let got: Vec<usize> = c
        .received()
        .chunks(4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize)
        .collect();
    assert_eq!(got, sizes);
    server.shutdown().unwrap();
}

#[test]
fn a_full_table_evicts_a_session_idle_a_second_and_refuses_when_all_are_fresh() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let (server, addr) = serve(fast(), Some(2), move |_| Watch(tx.lock().unwrap().clone()));
    let event = || rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut a = KcpClient::connect(addr, 1, &fast()).unwrap();
    echo_once(&mut a, b"a");
    let mut b = KcpClient::connect(addr, 2, &fast()).unwrap();
    echo_once(&mut b, b"b");
    assert_eq!((event().0, event().0), (1, 2));
    // The eviction rule needs a second of silence: that is what is tested.
    thread::sleep(Duration::from_millis(1100));
    let mut c = KcpClient::connect(addr, 3, &fast()).unwrap();
    echo_once(&mut c, b"c");
    let (conv, reason, _) = event();
    assert_eq!(
        (conv, reason),
        (1, Some(CloseReason::IdleTimeout)),
        "a, idle longest, evicted"
    );
    assert_eq!(event().0, 3);
    let mut d = KcpClient::connect(addr, 4, &fast()).unwrap();
    echo_once(&mut d, b"d");
    let (conv, reason, _) = event();
    assert_eq!(
        (conv, reason),
        (2, Some(CloseReason::IdleTimeout)),
        "b evicted"
    );
    assert_eq!(event().0, 4);
    // c and d are fresh: e is refused, its data never echoed.
    let mut e = KcpClient::connect(addr, 5, &fast()).unwrap();
    e.send(b"e").unwrap();
    let err = e.wait_for(1, Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(rx.try_recv().is_err(), "no session opened or closed for e");
    echo_once(&mut c, b"c still served");
    server.shutdown().unwrap();
}

/// Answers the first message with the session's socket addresses.
struct Addrs;

impl EventHandler for Addrs {
    type Context = ();
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        input.clear();
        let line = format!(
            "{} {}",
            conn.peer_addr().unwrap(),
            conn.local_addr().unwrap()
        );
        conn.write(line.as_bytes()).unwrap();
    }
}

#[test]
fn a_session_has_a_socket_of_its_own_connected_to_its_peer() {
    let (server, addr) = serve(fast(), None, |_| Addrs);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    sock.connect(addr).unwrap();
    let mut c = KcpClient::with_socket(sock, 1, &fast()).unwrap();
    c.send(b"?").unwrap();
    let want = format!("{me} {addr}");
    c.wait_for(want.len(), Duration::from_secs(10)).unwrap();
    assert_eq!(String::from_utf8_lossy(c.received()), want);
    server.shutdown().unwrap();
}

/// Counts the sessions each loop opened.
struct PerLoop(Arc<AtomicUsize>);

impl EventHandler for PerLoop {
    type Context = ();
    fn on_open(&mut self, _conn: &mut Conn<'_, Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if conn.write(input.as_slice()).is_ok() {
            input.clear();
        }
    }
}

#[test]
fn two_loops_share_the_port_and_every_session_is_served_whole() {
    let counts: Arc<Vec<Arc<AtomicUsize>>> =
        Arc::new((0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect());
    let c2 = counts.clone();
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(2)
        .kcp(fast())
        .start(move |id| PerLoop(c2[id].clone()))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut clients: Vec<KcpClient> = (0..40u32)
        .map(|i| KcpClient::connect(addr, 500 + i, &fast()).unwrap())
        .collect();
    let mut sent = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let d = pattern(i as u64, 20_000 + i * 1000);
        c.send(&d).unwrap();
        sent.push(d);
    }
    let want: Vec<usize> = sent.iter().map(Vec::len).collect();
    drive(&mut clients, &want, Duration::from_secs(60));
    for (i, (c, s)) in clients.iter_mut().zip(&sent).enumerate() {
        assert!(c.received() == s, "session {i}: bytes differ");
    }
    let per: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(
        per.iter().sum::<usize>(),
        40,
        "one session per client: {per:?}"
    );
    // SO_REUSEPORT spreads 40 peers over both loops (by a hash of the
    // address pair: both get some unless the hash is very uneven).
    assert!(per.iter().all(|&n| n > 0), "sessions per loop: {per:?}");
    server.shutdown().unwrap();
}
