//! The core reactor over real loopback sockets, for every poller backend,
//! trigger mode and thread model: `matrix_test!` stamps out one module per
//! configuration (`core_echo::epoll_edge_loops2::...`).

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use evnet::echo::Echo;
use evnet::net::blocking::{self, ThreadServer};
use evnet::net::{Buffer, Conn, ConnHandle, EventHandler};
use rand::{Rng, SeedableRng};
use util::*;

/// 1 byte to 1 MiB, log-uniform: mostly small messages, some huge.
fn random_size(rng: &mut impl Rng) -> usize {
    let bits = rng.gen_range(0..=20);
    rng.gen_range((1usize << bits) / 2..=(1usize << bits))
        .max(1)
}

/// `conns` concurrent clients, each sending `msgs` random-size messages in
/// random-size pieces and checking every byte comes back in order.
fn integrity(addr: std::net::SocketAddr, conns: usize, msgs: usize) {
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(c as u64);
                let mut s = connect(addr);
                for m in 0..msgs {
                    let msg = pattern((c * 1000 + m) as u64, random_size(&mut rng));
                    // Write in random pieces while a reader thread is not
                    // needed: the server queues what we do not read yet.
                    let mut off = 0;
                    while off < msg.len() {
                        let piece = rng.gen_range(1..=msg.len() - off).min(256 * 1024);
                        s.write_all(&msg[off..off + piece]).expect("write piece");
                        off += piece;
                    }
                    let back = read_exact(&mut s, msg.len());
                    assert!(back == msg, "conn {c} msg {m}: echo differs");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

/// A client writes 64 MiB without reading until the server must have
/// stopped reading (it may not buffer it all), then reads it all back.
fn slow_reader_gets_all_64_mib(addr: std::net::SocketAddr, name: &str) {
    const TOTAL: usize = 64 << 20;
    let mut s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let wr = written.clone();
    let writer = std::thread::spawn(move || {
        let chunk = pattern(7, 1 << 20);
        for _ in 0..TOTAL / chunk.len() {
            w.write_all(&chunk).expect("writer");
            wr.fetch_add(chunk.len(), Ordering::Relaxed);
        }
    });
    // Not reading: the writer gets some MiB ahead and then blocks, because
    // the server stopped reading once its output queue passed high water.
    assert!(wait_until(Duration::from_secs(30), || written
        .load(Ordering::Relaxed)
        >= 4 << 20));
    let mut got = 0usize;
    let expect = pattern(7, 1 << 20);
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0usize;
    while got < TOTAL {
        let n = s.read(&mut buf).expect("read echo");
        assert!(n > 0, "{name}: EOF after {got} bytes");
        for &b in &buf[..n] {
            assert_eq!(b, expect[pos], "{name}: byte {got} differs");
            pos = (pos + 1) % expect.len();
            got += 1;
        }
    }
    writer.join().unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut s).is_empty(), "{name}: extra bytes");
}

/// The client sends, then half-closes: the whole echo, then EOF.
fn half_close_gets_whole_echo_then_eof(addr: std::net::SocketAddr, name: &str) {
    let mut s = connect(addr);
    let msg = pattern(3, 300_000);
    let mut w = s.try_clone().unwrap();
    let m2 = msg.clone();
    let t = std::thread::spawn(move || {
        w.write_all(&m2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let back = read_to_eof(&mut s);
    t.join().unwrap();
    assert_eq!(back.len(), msg.len(), "{name}");
    assert!(back == msg, "{name}: echo differs");
}

/// A peer resets mid-transfer; a client before it and one after are served.
fn peer_reset_leaves_others_served(addr: std::net::SocketAddr) {
    let mut before = connect(addr);
    roundtrip(&mut before, b"before");
    {
        let s = connect(addr);
        let sock = socket2::SockRef::from(&s);
        (&s).write_all(&pattern(1, 2 << 20)).ok();
        // RST instead of FIN, with the echo still flowing.
        sock.set_linger(Some(Duration::ZERO)).unwrap();
    }
    roundtrip(&mut before, &pattern(2, 100_000));
    let mut after = connect(addr);
    roundtrip(&mut after, b"after");
}

/// A handler that hands each connection's handle to the test.
struct Publish(mpsc::Sender<ConnHandle<Publish>>);

impl EventHandler for Publish {
    type Context = ();
    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        let _ = self.0.send(conn.handle());
    }
    fn on_message(&mut self, _conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        input.clear();
    }
}

matrix_test! {
    #[test]
    fn integrity_200_connections() {
        let name = CONFIG.name();
        let server = CONFIG
            .builder()
            .start(|_| Echo)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        integrity(server.local_addr().unwrap(), 200, 2);
        server.shutdown().unwrap();
    }

    #[test]
    fn slow_reader_gets_all_64_mib_after_resuming() {
        let name = CONFIG.name();
        // A small high-water mark: the server must pause reading, not buffer 64 MiB.
        let server = CONFIG.builder().high_water(1 << 20).start(|_| Echo).unwrap();
        slow_reader_gets_all_64_mib(server.local_addr().unwrap(), &name);
        server.shutdown().unwrap();
    }

    /// Reading pauses at high water while the peer is still sending, and the
    /// peer's FIN comes while paused: every byte and then the EOF come back (the
    /// proactor keeps what its cancelled recv took, and the EOF behind it).
    #[test]
    fn fin_while_paused_still_gets_whole_echo_then_eof() {
        const TOTAL: usize = 8 << 20;
        let name = CONFIG.name();
        let server = CONFIG.builder().high_water(64 << 10).start(|_| Echo).unwrap();
        let mut s = connect(server.local_addr().unwrap());
        let mut w = s.try_clone().unwrap();
        let written = Arc::new(AtomicUsize::new(0));
        let wr = written.clone();
        let writer = std::thread::spawn(move || {
            for chunk in pattern(11, TOTAL).chunks(256 << 10) {
                w.write_all(chunk).expect("writer");
                wr.fetch_add(chunk.len(), Ordering::Relaxed);
            }
            w.shutdown(Shutdown::Write).unwrap();
        });
        // Not reading until the server must have paused.
        assert!(wait_until(Duration::from_secs(30), || written
            .load(Ordering::Relaxed)
            >= 2 << 20));
        let back = read_to_eof(&mut s);
        writer.join().unwrap();
        assert_eq!(back.len(), TOTAL, "{name}");
        assert!(back == pattern(11, TOTAL), "{name}: echo differs");
        server.shutdown().unwrap();
    }

    #[test]
    fn half_close_still_receives_whole_echo_then_eof() {
        let name = CONFIG.name();
        let server = CONFIG.builder().start(|_| Echo).unwrap();
        half_close_gets_whole_echo_then_eof(server.local_addr().unwrap(), &name);
        server.shutdown().unwrap();
    }

    #[test]
    fn peer_reset_mid_transfer_leaves_others_served() {
        let server = CONFIG.builder().start(|_| Echo).unwrap();
        peer_reset_leaves_others_served(server.local_addr().unwrap());
        server.shutdown().unwrap();
    }

    #[test]
    fn cross_thread_writes_arrive_whole_and_in_order() {
        const THREADS: usize = 4;
        const MSGS: usize = 500;
        let name = CONFIG.name();
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let server = CONFIG
            .builder()
            .start(move |_| Publish(tx.lock().unwrap().clone()))
            .unwrap();
        let mut s = connect(server.local_addr().unwrap());
        let handle = rx.recv_timeout(IO_TIMEOUT).expect("handle");
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let h = handle.clone();
                std::thread::spawn(move || {
                    for i in 0..MSGS {
                        // Varying sizes, some larger than a socket buffer.
                        let pad = "x".repeat((i * 977) % 70_000);
                        h.write(format!("<{t}:{i}:{pad}>\n"))
                            .expect("write through handle");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let mut next = [0usize; THREADS];
        let mut reader = std::io::BufReader::new(&mut s);
        let mut line = String::new();
        for _ in 0..THREADS * MSGS {
            line.clear();
            std::io::BufRead::read_line(&mut reader, &mut line).expect("read line");
            let body = line
                .trim_end()
                .strip_prefix('<')
                .and_then(|l| l.strip_suffix('>'))
                .expect("whole message");
            let mut parts = body.splitn(3, ':');
            let t: usize = parts.next().unwrap().parse().unwrap();
            let i: usize = parts.next().unwrap().parse().unwrap();
            let pad = parts.next().unwrap();
            assert_eq!(i, next[t], "{name}: thread {t} out of order");
            assert_eq!(pad.len(), (i * 977) % 70_000, "{name}: message cut");
            assert!(pad.bytes().all(|b| b == b'x'), "{name}: interleaved bytes");
            next[t] += 1;
        }
        server.shutdown().unwrap();
        assert!(
            handle.write("late").is_err(),
            "{name}: write after shutdown must fail"
        );
    }
}

#[test]
fn thread_per_connection_model_integrity() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = ThreadServer::start(listener, blocking::echo).unwrap();
    integrity(server.local_addr(), 200, 2);
}

/// A process per connection: 200 concurrent connections keep every byte,
/// then a flood of 2,000 short connections; every child is reaped (none is
/// left a zombie) and `stop` leaves none behind.
#[test]
fn process_per_connection_model_integrity_and_no_zombies() {
    use evnet::net::blocking::ProcessServer;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut server = ProcessServer::start(listener, blocking::echo).unwrap();
    let addr = server.local_addr();
    integrity(addr, 200, 2);
    let flood: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..500 {
                    let mut c = connect(addr);
                    roundtrip(&mut c, format!("short {t} {i}").as_bytes());
                }
            })
        })
        .collect();
    for f in flood {
        f.join().unwrap();
    }
    // The parent counts a fork after it returns, which can be after the
    // child has already answered: wait for the count, bounded.
    assert!(
        wait_until(Duration::from_secs(10), || server.forked() >= 2200),
        "forked {}",
        server.forked()
    );
    assert!(
        wait_until(Duration::from_secs(30), || server.live() == 0),
        "{} children still unreaped",
        server.live()
    );
    // A client that waits longer than the accept loop's 100 ms timeout
    // before sending is still served (the accepted socket does not keep the
    // listener's receive timeout).
    let mut idle_first = connect(addr);
    std::thread::sleep(Duration::from_millis(300));
    roundtrip(&mut idle_first, b"after a pause");
    drop(idle_first);
    assert!(wait_until(Duration::from_secs(30), || server.live() == 0));
    // One still serving when the server stops: ended and reaped.
    let mut c = connect(addr);
    roundtrip(&mut c, b"last");
    assert!(wait_until(Duration::from_secs(10), || server.live() == 1));
    let last = server.children()[0];
    server.stop();
    assert!(read_to_eof(&mut c).is_empty());
    let me = std::process::id();
    let zombie = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
            // "pid (comm) S ppid ...": state and parent after the comm.
            let rest = &st[st.rfind(')').unwrap() + 2..];
            let mut f = rest.split(' ');
            let state = f.next().unwrap();
            let ppid: u32 = f.next().unwrap().parse().unwrap();
            ppid == me && state == "Z"
        })
    };
    assert!(!zombie(last), "the last child is a zombie");
    // No test in this file starts other processes: any zombie child of
    // this process would be one of the server's.
    let zombies: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| zombie(pid))
        .collect();
    assert!(zombies.is_empty(), "zombie children: {zombies:?}");
}

#[test]
fn ipv6_and_several_addresses() {
    let server = evnet::net::ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .bind("[::1]:0".parse::<std::net::SocketAddr>().unwrap())
        .loops(1)
        .start(|_| Echo)
        .unwrap();
    assert_eq!(server.addrs().len(), 2);
    for a in server.addrs() {
        let mut s = connect(a.tcp().unwrap());
        roundtrip(&mut s, b"hello over every address");
    }
}

/// Each accept mode and balance policy, one test apiece.
mod balance {
    use super::*;
    use evnet::net::{AcceptMode, Balance, ServerBuilder};

    /// Eight connections to a two-loop server, each served; how many each
    /// loop holds.
    fn eight_connections(mode: AcceptMode, balance: Balance) -> Vec<usize> {
        let server = ServerBuilder::new()
            .bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
            .loops(2)
            .accept_mode(mode)
            .balance(balance)
            .start(|_| Echo)
            .unwrap();
        let addr = server.local_addr().unwrap();
        let mut conns: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
        for (i, c) in conns.iter_mut().enumerate() {
            roundtrip(c, format!("{mode:?}/{balance:?}/{i}").as_bytes());
        }
        let per_loop: Vec<usize> = server
            .serving_loops()
            .iter()
            .map(|l| l.stats().connections_open.load(Ordering::Relaxed))
            .collect();
        assert_eq!(
            per_loop.iter().sum::<usize>(),
            8,
            "{mode:?}/{balance:?}: {per_loop:?}"
        );
        per_loop
    }

    #[test]
    fn acceptor_round_robin_spreads_evenly() {
        let per_loop = eight_connections(AcceptMode::Acceptor, Balance::RoundRobin);
        assert_eq!(per_loop, vec![4, 4]);
    }

    #[test]
    fn acceptor_least_connections_spreads_evenly() {
        let per_loop = eight_connections(AcceptMode::Acceptor, Balance::LeastConnections);
        assert_eq!(per_loop, vec![4, 4]);
    }

    #[test]
    fn acceptor_source_hash_puts_one_source_ip_on_one_loop() {
        let per_loop = eight_connections(AcceptMode::Acceptor, Balance::SourceHash);
        assert!(per_loop.contains(&8), "{per_loop:?}");
    }

    #[test]
    fn reuseport_serves() {
        eight_connections(AcceptMode::ReusePort, Balance::RoundRobin);
    }

    #[test]
    fn exclusive_serves() {
        eight_connections(AcceptMode::Exclusive, Balance::RoundRobin);
    }
}

/// The same integrity checks against the echo as one task per connection
/// (`evnet::rt`), on epoll (level and edge) and the io_uring proactor loop,
/// with one loop and with two loops sharing the port by SO_REUSEPORT.
mod async_model {
    use super::*;
    use evnet::echo::AsyncEcho;
    use evnet::poller::{PollerKind, Trigger};
    use evnet::reactor::LoopConfig;

    const CONFIGS: [(PollerKind, Trigger, usize); 4] = [
        (PollerKind::Epoll, Trigger::Level, 1),
        (PollerKind::Epoll, Trigger::Edge, 2),
        (PollerKind::Proactor, Trigger::Level, 1),
        (PollerKind::Proactor, Trigger::Level, 2),
    ];

    fn each(check: impl Fn(std::net::SocketAddr, &str)) {
        for (poller, trigger, loops) in CONFIGS {
            let name = format!("async/{poller:?}/{trigger:?}/loops={loops}");
            let config = LoopConfig {
                poller,
                trigger,
                ..LoopConfig::default()
            };
            let server = AsyncEcho::start("127.0.0.1:0".parse().unwrap(), loops, config)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            check(server.local_addr(), &name);
            server.stop().unwrap();
        }
    }

    #[test]
    fn integrity_200_connections() {
        each(|addr, _| integrity(addr, 200, 2));
    }

    #[test]
    fn slow_reader_gets_all_64_mib() {
        each(super::slow_reader_gets_all_64_mib);
    }

    #[test]
    fn half_close_gets_whole_echo_then_eof() {
        each(super::half_close_gets_whole_echo_then_eof);
    }

    #[test]
    fn peer_reset_leaves_others_served() {
        each(|addr, _| super::peer_reset_leaves_others_served(addr));
    }

    /// Stopping the loops closes the connections still open.
    #[test]
    fn stop_closes_open_connections() {
        let server =
            AsyncEcho::start("127.0.0.1:0".parse().unwrap(), 2, LoopConfig::default()).unwrap();
        let mut c = connect(server.local_addr());
        roundtrip(&mut c, b"hello");
        server.stop().unwrap();
        assert!(read_to_eof(&mut c).is_empty());
    }
}
