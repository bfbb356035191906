//! Sockets for tasks (`evnet::rt::{TcpListener, TcpStream}`): an async echo
//! on every readiness driver, Go's deadline rules, and reads raced against
//! timeouts losing nothing.

mod util;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evnet::poller::{PollerKind, Trigger};
use evnet::reactor::LoopConfig;
use evnet::rt::{self, TcpListener, TcpStream};
use util::*;

fn config(poller: PollerKind, trigger: Trigger) -> LoopConfig {
    LoopConfig {
        poller,
        trigger,
        ..LoopConfig::default()
    }
}

const DRIVERS: [(PollerKind, Trigger); 9] = [
    (PollerKind::Epoll, Trigger::Level),
    (PollerKind::Epoll, Trigger::Edge),
    (PollerKind::Uring, Trigger::Level),
    (PollerKind::Uring, Trigger::Edge),
    (PollerKind::Proactor, Trigger::Level),
    (PollerKind::Poll, Trigger::Level),
    (PollerKind::Select, Trigger::Level),
    (PollerKind::SigIo, Trigger::Edge),
    (PollerKind::BusyPoll, Trigger::Level),
];

/// One task per connection echoing until EOF, then shutting down its write
/// side. Serves `conns` connections, then returns.
async fn echo_server(listener: TcpListener, conns: usize) {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (mut s, _) = listener.accept().await.unwrap();
        tasks.push(rt::spawn_local(async move {
            let mut buf = vec![0u8; 16 << 10];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    s.shutdown(Shutdown::Write).unwrap();
                    return;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// 32 clients at once, each sending a different amount (up to 2 MiB) in
/// odd-sized writes from one thread and reading it back from another,
/// against the async echo: every byte back, in order, on every driver.
#[test]
fn async_echo_returns_every_byte_in_order_on_every_driver() {
    for (poller, trigger) in DRIVERS {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        const CLIENTS: usize = 32;
        let server = std::thread::spawn(move || {
            rt::block_on_with(config(poller, trigger), async move {
                let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                echo_server(listener, CLIENTS).await;
            })
            .unwrap();
        });
        let addr: SocketAddr = addr_rx.recv_timeout(IO_TIMEOUT).unwrap();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                std::thread::spawn(move || {
                    let len = (i * 65_537 + 1) % (2 << 20);
                    let data = pattern(i as u64, len);
                    let mut s = connect(addr);
                    let mut w = s.try_clone().unwrap();
                    let sent = data.clone();
                    let writer = std::thread::spawn(move || {
                        for chunk in sent.chunks(7_777) {
                            w.write_all(chunk).unwrap();
                        }
                        w.shutdown(Shutdown::Write).unwrap();
                    });
                    let got = read_to_eof(&mut s);
                    writer.join().unwrap();
                    assert!(
                        got == data,
                        "{poller:?}/{trigger:?} client {i}: bytes differ (got {} of {}, first diff at {:?})", got.len(), data.len(), got.iter().zip(data.iter()).position(|(a, b)| a != b)
                    );
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.join().unwrap();
    }
}

/// The readiness path and the completion path (io_uring proactor).
const PAIR_DRIVERS: [PollerKind; 2] = [PollerKind::Epoll, PollerKind::Proactor];

/// A server task on one accepted connection, with the test's client on the
/// other end: once on epoll, once on the proactor (where the stream is in
/// completion mode).
fn with_pair(f: impl AsyncFn(Rc<TcpStream>, std::net::TcpStream)) {
    for poller in PAIR_DRIVERS {
        rt::block_on_with(config(poller, Trigger::Level), async {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(addr).unwrap();
            client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let (s, _) = listener.accept().await.unwrap();
            assert_eq!(s.uses_ring(), poller == PollerKind::Proactor);
            f(Rc::new(s), client).await;
        })
        .unwrap();
    }
}

/// Run blocking `f` (a client) on a thread of its own; the future wakes
/// its task when `f` returns, with `f`'s value.
fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = T> {
    use std::sync::{Arc, Mutex};
    use std::task::{Poll, Waker};
    type Shared<T> = Arc<Mutex<(Option<T>, Option<Waker>)>>;
    let shared: Shared<T> = Arc::new(Mutex::new((None, None)));
    let theirs = shared.clone();
    let thread = std::thread::spawn(move || {
        let v = f();
        let mut g = theirs.lock().unwrap();
        g.0 = Some(v);
        if let Some(w) = g.1.take() {
            w.wake();
        }
    });
    let mut thread = Some(thread);
    std::future::poll_fn(move |cx| {
        let mut g = shared.lock().unwrap();
        match g.0.take() {
            Some(v) => {
                drop(g);
                thread.take().unwrap().join().unwrap();
                Poll::Ready(v)
            }
            None => {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
}

async fn read_once(s: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| s.poll_read(cx, buf)).await
}

#[test]
fn a_past_deadline_fails_reads_at_once_even_with_data_waiting() {
    with_pair(async |s, mut client| {
        client.write_all(b"data").unwrap();
        s.set_read_deadline(Some(Instant::now() - Duration::from_secs(1)));
        let mut buf = [0u8; 8];
        let e = read_once(&s, &mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        // Cleared: the data is still there.
        s.set_read_deadline(None);
        assert_eq!(read_once(&s, &mut buf).await.unwrap(), 4);
        assert_eq!(&buf[..4], b"data");
    });
}

#[test]
fn a_blocked_read_times_out_at_its_deadline() {
    with_pair(async |s, _client| {
        let t = Instant::now();
        s.set_read_deadline(Some(t + Duration::from_millis(100)));
        let mut buf = [0u8; 8];
        let e = read_once(&s, &mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Successful I/O does not extend it, and it stays passed.
        let e = read_once(&s, &mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    });
}

/// Another task moves the deadline of a blocked read: later (the read
/// waits on and gets the data that comes after the old deadline), then
/// cleared, then into the past (the read fails at once).
#[test]
fn moving_a_deadline_while_a_read_is_blocked_takes_effect() {
    with_pair(async |s, client| {
        let t = Instant::now();
        s.set_read_deadline(Some(t + Duration::from_millis(300)));
        let mover = {
            let s = s.clone();
            rt::spawn_local(async move {
                rt::sleep(Duration::from_millis(10)).await;
                s.set_read_deadline(Some(t + Duration::from_secs(30)));
            })
        };
        let writer = std::thread::spawn({
            let mut c = client.try_clone().unwrap();
            move || {
                std::thread::sleep(Duration::from_millis(600));
                c.write_all(b"late").unwrap();
            }
        });
        let mut buf = [0u8; 8];
        let n = read_once(&s, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"late");
        assert!(t.elapsed() >= Duration::from_millis(600));
        mover.await.unwrap();
        writer.join().unwrap();

        // Cleared while blocked: waits for data past any old timer.
        s.set_read_deadline(Some(Instant::now() + Duration::from_millis(300)));
        let clearer = {
            let s = s.clone();
            rt::spawn_local(async move { s.set_read_deadline(None) })
        };
        let writer = std::thread::spawn({
            let mut c = client.try_clone().unwrap();
            move || {
                std::thread::sleep(Duration::from_millis(600));
                c.write_all(b"more").unwrap();
            }
        });
        let n = read_once(&s, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"more");
        clearer.await.unwrap();
        writer.join().unwrap();

        // Moved into the past while blocked: fails at once.
        s.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
        let t = Instant::now();
        let expirer = {
            let s = s.clone();
            rt::spawn_local(async move {
                rt::sleep(Duration::from_millis(20)).await;
                s.set_read_deadline(Some(Instant::now() - Duration::from_millis(1)));
            })
        };
        let e = read_once(&s, &mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(10));
        expirer.await.unwrap();
    });
}

/// Reads raced against a 1 ms timeout, thousands of times, while the client
/// trickles bytes: a read dropped by its timeout loses nothing.
#[test]
fn a_read_cancelled_by_a_timeout_loses_no_bytes() {
    for (poller, trigger) in DRIVERS {
        rt::block_on_with(config(poller, trigger), async move {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let data = pattern(7, 200_000);
            let sent = data.clone();
            let client = std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                for (i, chunk) in sent.chunks(997).enumerate() {
                    c.write_all(chunk).unwrap();
                    if i % 16 == 0 {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                }
            });
            let (mut s, _) = listener.accept().await.unwrap();
            assert_eq!(s.uses_ring(), poller == PollerKind::Proactor);
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            let mut timeouts = 0u32;
            for _ in 0..1_000_000 {
                match rt::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Ok(Err(e)) => panic!("read: {e}"),
                    Err(rt::Elapsed) => timeouts += 1,
                }
            }
            client.join().unwrap();
            assert!(
                got == data,
                "{poller:?}/{trigger:?}: bytes lost or reordered"
            );
            assert!(
                timeouts > 0,
                "{poller:?}/{trigger:?}: no read was cancelled"
            );
        })
        .unwrap();
    }
}

#[test]
fn connect_reaches_a_listener_and_reports_refusal() {
    rt::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) = {
            let c = rt::spawn_local(async move { TcpStream::connect(addr).await });
            let (s, peer) = listener.accept().await.unwrap();
            (c.await.unwrap().unwrap(), (s, peer))
        };
        assert_eq!(connected.peer_addr().unwrap(), addr);
        assert_eq!(accepted.1, connected.local_addr().unwrap());
        let (mut r, mut w) = connected.into_split();
        let (mut s, _) = accepted;
        w.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        // A port nobody listens on: refused. (A dropped socket is closed
        // once its task yields, after the loop has forgotten it.)
        drop(listener);
        rt::yield_now().await;
        let e = TcpStream::connect_timeout(addr, Duration::from_secs(5))
            .await
            .err()
            .expect("connect to a closed port");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    });
}

/// Go's Close from another task: the task blocked in read is woken with an
/// error (not EOF), the peer reads what was written and then EOF, and a new
/// connection that gets the fd number again sees nothing of the old one's
/// operations.
#[test]
fn closing_a_stream_wakes_its_blocked_reader_with_an_error() {
    for poller in PAIR_DRIVERS {
        rt::block_on_with(config(poller, Trigger::Level), async {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let (s, _) = listener.accept().await.unwrap();
            let s = Rc::new(s);
            let old_fd = std::os::fd::AsRawFd::as_raw_fd(&*s);
            // A deadline armed too: its timer must not touch the next stream.
            s.set_read_deadline(Some(Instant::now() + Duration::from_millis(200)));
            let reader = {
                let s = s.clone();
                rt::spawn_local(async move {
                    let mut b = [0u8; 8];
                    read_once(&s, &mut b).await
                })
            };
            rt::yield_now().await; // the reader waits
            std::future::poll_fn(|cx| s.poll_write(cx, b"last words"))
                .await
                .unwrap();
            s.close();
            let e = reader.await.unwrap().unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotConnected, "{poller:?}");
            let got = on_thread(move || read_to_eof(&mut client)).await;
            assert_eq!(got, b"last words", "{poller:?}: written, then EOF");
            let mut b = [0u8; 8];
            assert_eq!(
                read_once(&s, &mut b).await.unwrap_err().kind(),
                std::io::ErrorKind::NotConnected
            );
            drop(s);
            rt::yield_now().await; // the loop forgets it; the fd goes

            // The next connection: likely the same fd number, and clean.
            let mut client2 = std::net::TcpStream::connect(addr).unwrap();
            let (s2, _) = listener.accept().await.unwrap();
            let same = std::os::fd::AsRawFd::as_raw_fd(&s2) == old_fd;
            rt::sleep(Duration::from_millis(300)).await; // past the old deadline
            client2.write_all(b"fresh").unwrap();
            let n = read_once(&s2, &mut b).await.unwrap();
            assert_eq!(&b[..n], b"fresh", "{poller:?}: fd reused: {same}");
        })
        .unwrap();
    }
}

/// A write to a peer that does not read waits once the socket (and, on the
/// proactor, the stream's queue) is full, and fails with TimedOut at its
/// deadline; the deadline cleared, everything written reaches the peer,
/// then the FIN.
#[test]
fn a_blocked_write_times_out_at_its_deadline() {
    with_pair(async |s, client| {
        let chunk = vec![7u8; 64 << 10];
        let t = Instant::now();
        s.set_write_deadline(Some(t + Duration::from_millis(100)));
        let mut written = 0usize;
        let mut err = None;
        for _ in 0..100_000 {
            match std::future::poll_fn(|cx| s.poll_write(cx, &chunk)).await {
                Ok(n) => written += n,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let e = err.expect("the write blocked and timed out");
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(written > 0);
        // Cleared: the peer drains it all, and the flush sees that.
        s.set_write_deadline(None);
        std::future::poll_fn(|cx| s.poll_flush(cx)).await.unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let reader = on_thread(move || {
            let mut c = client;
            read_to_eof(&mut c).len()
        });
        assert_eq!(reader.await, written);
    });
}

/// A stream dropped right after its last write: the peer still reads every
/// byte, then EOF (on the proactor the queued output lingers until sent).
#[test]
fn dropping_a_stream_after_writing_delivers_everything() {
    with_pair(async |s, client| {
        let data = pattern(3, 3 << 20);
        let expect = data.clone();
        let reader = on_thread(move || {
            let mut c = client;
            read_to_eof(&mut c)
        });
        let mut s = Rc::try_unwrap(s).ok().expect("the only handle");
        s.write_all(&data).await.unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        drop(s);
        let got = reader.await;
        assert!(got == expect, "got {} of {} bytes", got.len(), expect.len());
    });
}

/// A peer that resets the connection: the writer learns it (a write or a
/// flush fails) within a bounded number of writes, and nothing panics.
#[test]
fn a_reset_peer_fails_the_writer() {
    with_pair(async |s, client| {
        let sock = socket2::Socket::from(client);
        sock.set_linger(Some(Duration::ZERO)).unwrap();
        drop(sock); // RST
        let chunk = vec![1u8; 16 << 10];
        let mut failed = None;
        s.set_write_deadline(Some(Instant::now() + IO_TIMEOUT));
        for _ in 0..10_000 {
            let r = match std::future::poll_fn(|cx| s.poll_write(cx, &chunk)).await {
                Ok(_) => std::future::poll_fn(|cx| s.poll_flush(cx)).await,
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("the reset reached the writer");
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e:?}"
        );
    });
}

/// UDP for tasks: an echo task answers every datagram to its sender
/// (unconnected), a connected task socket talks to it, and a receive with a
/// passed deadline fails with TimedOut.
#[test]
fn udp_echo_connected_and_unconnected_with_deadlines() {
    use evnet::rt::UdpSocket;
    rt::block_on(async {
        let server = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let echo = rt::spawn_local(async move {
            let mut buf = vec![0u8; 65_536];
            for _ in 0..200 {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                server.send_to(&buf[..n], from).await.unwrap();
            }
            server
        });
        // 100 datagrams from a plain std socket on another thread.
        let outside = std::thread::spawn(move || {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut buf = vec![0u8; 65_536];
            for i in 0..100usize {
                let msg = pattern(i as u64, 1 + i * 97);
                c.send_to(&msg, addr).unwrap();
                let (n, from) = c.recv_from(&mut buf).unwrap();
                assert_eq!(from, addr);
                assert!(buf[..n] == msg[..], "datagram {i}");
            }
        });
        // 100 more from a connected task socket.
        let c = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        c.connect(addr).unwrap();
        let mut buf = vec![0u8; 65_536];
        for i in 0..100usize {
            let msg = pattern(1000 + i as u64, 1 + i * 31);
            assert_eq!(c.send(&msg).await.unwrap(), msg.len());
            let n = c.recv(&mut buf).await.unwrap();
            assert!(buf[..n] == msg[..], "connected datagram {i}");
        }
        let server = echo.await.unwrap();
        outside.join().unwrap();
        // Nothing more comes: a receive under a 50 ms deadline times out.
        let t = Instant::now();
        server.set_read_deadline(Some(t + Duration::from_millis(50)));
        let e = server.recv_from(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(50));
    });
}

/// Unix-domain streams for tasks: an echo task per connection on a socket
/// path, a connecting task, a socketpair with a read deadline, and the
/// same split into halves as TCP.
#[test]
fn unix_streams_echo_and_keep_deadlines() {
    use evnet::rt::{UnixListener, UnixStream};
    let dir = std::env::temp_dir().join(format!("evnet-rt-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    rt::block_on(async {
        let listener = UnixListener::bind(&path).unwrap();
        let server = rt::spawn_local(async move {
            for _ in 0..2 {
                let mut s = listener.accept().await.unwrap();
                rt::spawn_local(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        s.write_all(&buf[..n]).await.unwrap();
                    }
                    s.shutdown(Shutdown::Write).unwrap();
                });
            }
        });
        // A std client on another thread...
        let p = path.clone();
        let outside = std::thread::spawn(move || {
            let mut c = std::os::unix::net::UnixStream::connect(p).unwrap();
            c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let msg = pattern(9, 200_000);
            let mut w = c.try_clone().unwrap();
            let m = msg.clone();
            let writer = std::thread::spawn(move || {
                w.write_all(&m).unwrap();
                w.shutdown(Shutdown::Write).unwrap();
            });
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut c, &mut back).unwrap();
            writer.join().unwrap();
            assert!(back == msg, "unix echo differs");
        });
        // ...and a task client, split into halves.
        let c = UnixStream::connect(&path).await.unwrap();
        let (mut r, mut w) = c.into_split();
        w.write_all(b"over unix").await.unwrap();
        let mut buf = [0u8; 9];
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"over unix");
        drop((r, w));
        server.await.unwrap();
        // The std client needs this loop to echo: wait for it without
        // blocking the loop.
        let t = Instant::now();
        while !outside.is_finished() && t.elapsed() < IO_TIMEOUT {
            rt::sleep(Duration::from_millis(5)).await;
        }
        outside.join().unwrap();

        // A socketpair: a read with a deadline and nothing sent times out.
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_read_deadline(Some(Instant::now() + Duration::from_millis(30)));
        let mut one = [0u8; 1];
        let e = read_unix(&a, &mut one).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        a.set_read_deadline(None);
        b.write_all(b"!").await.unwrap();
        assert_eq!(read_unix(&a, &mut one).await.unwrap(), 1);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

async fn read_unix(s: &evnet::rt::UnixStream, buf: &mut [u8]) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| s.poll_read(cx, buf)).await
}
