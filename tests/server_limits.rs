//! Safe defaults and bounded cost per connection: the connection cap, the
//! defaults `--help` shows being the ones in force, and replies bounded by
//! the high-water mark however much a small pipelined request asks for.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use evnet::echo::Echo;
use evnet::net::{AcceptMode, MaxConnections, Server, ServerBuilder};
use util::*;

fn capped_echo(max: usize, loops: usize, mode: AcceptMode) -> Server {
    ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(loops)
        .accept_mode(mode)
        .max_connections(MaxConnections::Max(max))
        .start(|_| Echo)
        .unwrap()
}

/// Nothing arrives on `s` within `wait` (the only way to show a client is
/// not being served is to wait a bounded time for a reply that must not
/// come).
fn silent_for(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    let r = s.read(&mut b);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    matches!(r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// At the cap the next client waits in the listen backlog, unserved; the
/// clients already in are unaffected; when one closes, the waiting client
/// is accepted and served.
fn cap_queues_the_next_client_until_one_closes(loops: usize, mode: AcceptMode) {
    let server = capped_echo(2, loops, mode);
    let addr = server.local_addr().unwrap();
    assert_eq!(server.max_connections(), Some(2));
    let mut a = connect(addr);
    roundtrip(&mut a, b"a");
    let mut b = connect(addr);
    roundtrip(&mut b, b"b");
    // The kernel completes the handshake into the backlog either way.
    let mut c = connect(addr);
    c.write_all(b"c").unwrap();
    assert!(
        silent_for(&mut c, Duration::from_millis(300)),
        "a third client was served past a cap of 2"
    );
    assert_eq!(server.connections_open(), 2);
    assert!(server.cap_pauses() >= 1, "no listener paused at the cap");
    roundtrip(&mut a, b"still served");
    roundtrip(&mut b, b"still served");
    drop(b);
    // Room again: the waiting client is accepted and its bytes echoed.
    assert_eq!(read_exact(&mut c, 1), b"c");
    roundtrip(&mut c, b"served");
    assert!(wait_until(IO_TIMEOUT, || server.connections_open() == 2));
    // And the cap still holds for the next one.
    let mut d = connect(addr);
    d.write_all(b"d").unwrap();
    assert!(
        silent_for(&mut d, Duration::from_millis(300)),
        "a client was served past the cap: {} open, {} cap pauses",
        server.connections_open(),
        server.cap_pauses()
    );
    drop(a);
    assert_eq!(read_exact(&mut d, 1), b"d");
    server.shutdown().unwrap();
}

#[test]
fn cap_with_a_main_acceptor() {
    cap_queues_the_next_client_until_one_closes(1, AcceptMode::Acceptor);
}

#[test]
fn cap_with_reuseport_listeners() {
    cap_queues_the_next_client_until_one_closes(2, AcceptMode::ReusePort);
}

#[test]
fn cap_with_a_shared_exclusive_listener() {
    cap_queues_the_next_client_until_one_closes(2, AcceptMode::Exclusive);
}

#[test]
fn the_default_cap_comes_from_the_fd_limit() {
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(1)
        .start(|_| Echo)
        .unwrap();
    let (soft, _) = evnet::sys::nofile_limit().unwrap();
    assert_eq!(
        server.max_connections(),
        Some(evnet::net::auto_max_connections(soft))
    );
    server.shutdown().unwrap();
}

/// HTTP, same rule as RESP: 1,000 pipelined requests (19 KB) for a 1 MiB
/// response from a client that does not read yet. The server stops at the
/// high-water mark instead of holding 1 GiB of responses (this process's
/// peak memory stays far below it), and when the client reads, every
/// response arrives, in order.
#[test]
fn http_responses_are_bounded_by_the_high_water_mark() {
    const N: usize = 1000;
    let big: &'static [u8] = Box::leak(vec![b'h'; 1 << 20].into_boxed_slice());
    let router = evnet::http::Router::new().get("/big", move |_req, resp| {
        resp.body(big);
    });
    let server = evnet::http::HttpBuilder::new(
        ServerBuilder::new()
            .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
            .loops(1),
    )
    .router(router)
    .start()
    .unwrap()
    .into_server();
    let mut s = connect(server.local_addr().unwrap());
    s.write_all(&b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n".repeat(N))
        .unwrap();
    // Wait until the server has stopped producing (its output stalls on
    // our unread socket).
    let out = || {
        server.serving_loops()[0]
            .stats()
            .bytes_out
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let mut last = (out(), Instant::now());
    while last.1.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(50));
        if out() != last.0 {
            last = (out(), Instant::now());
        }
    }
    let peak = vm_kib(std::process::id(), "VmHWM:");
    assert!(
        peak < 256 << 10,
        "peak RSS {peak} KiB with {N} MiB of responses unread"
    );
    let mut reader = std::io::BufReader::new(s);
    for i in 0..N {
        let mut len = None;
        loop {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            if i == 0 || !line.is_empty() {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length: ") {
                    len = Some(v.trim().parse::<usize>().unwrap());
                }
            }
            if line == "\r\n" {
                break;
            }
            assert!(!line.is_empty(), "response {i}: EOF in the head");
        }
        assert_eq!(len, Some(1 << 20), "response {i}");
        let mut body = vec![0u8; 1 << 20];
        reader.read_exact(&mut body).unwrap();
        assert!(body.iter().all(|&b| b == b'h'), "response {i}");
    }
    server.shutdown().unwrap();
}

/// A download slower than the keep-alive timeout is not cut: the
/// keep-alive clock starts when the response has gone, not when it was
/// queued (found by bench/soak.py: slow readers were reset after
/// keep-alive + closing time).
#[test]
fn http_keepalive_timeout_waits_for_the_response_to_go() {
    let big: &'static [u8] = Box::leak(vec![b'd'; 8 << 20].into_boxed_slice());
    let router = evnet::http::Router::new().get("/big", move |_req, resp| {
        resp.body(big);
    });
    let limits = evnet::http::Limits {
        keepalive_timeout: Duration::from_millis(200),
        ..evnet::http::Limits::default()
    };
    let server = evnet::http::HttpBuilder::new(
        ServerBuilder::new()
            .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
            .loops(1)
            .closing_time(Duration::from_millis(300)),
    )
    .limits(limits)
    .router(router)
    .start()
    .unwrap()
    .into_server();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(16 << 10).unwrap();
    sock.connect_timeout(&server.local_addr().unwrap().into(), IO_TIMEOUT)
        .unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // 8 MiB in 16 KiB reads 2 ms apart: over a second, five keep-alive
    // timeouts and more than the closing time.
    let start = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 16 << 10];
    let mut head = Vec::new();
    while got < (8 << 20) + head.len() {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("cut after {got} bytes, {:?}: {e}", start.elapsed()));
        assert!(n > 0, "EOF after {got} bytes, {:?}", start.elapsed());
        if head.len() < 4096 && !head.ends_with(b"\r\n\r\n") {
            head.extend_from_slice(&buf[..n]);
            if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head.truncate(p + 4);
            }
        }
        got += n;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        start.elapsed() > Duration::from_millis(500),
        "too fast to test"
    );
    assert_eq!(got, (8 << 20) + head.len());
    // Idle now: the keep-alive timeout closes it.
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0);
    server.shutdown().unwrap();
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;

    /// `[default: X]` of `flag` in `evnet SUB --help`.
    fn help_default(sub: &str, flag: &str) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_evnet"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let at = help
            .find(&format!("--{flag} "))
            .unwrap_or_else(|| panic!("--{flag} not in `evnet {sub} --help`"));
        let rest = &help[at..];
        let d = rest.find("[default: ").expect("a default") + "[default: ".len();
        rest[d..d + rest[d..].find(']').unwrap()].to_string()
    }

    /// `name=value` in a banner.
    fn shown(banner: &str, name: &str) -> String {
        banner
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ';')
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name}= not in banner {banner:?}"))
            .to_string()
    }

    /// Every default `--help` shows is the one the startup line reports;
    /// the cap is the fd limit's, applied at the cap (probed with
    /// `--max-fds`), and the timeouts are probed where a test can wait
    /// for them: the write timeout (60 s) closes a connection that never
    /// reads, and the header timeout (10 s) one that never finishes its
    /// head.
    #[test]
    fn defaults_in_help_are_the_ones_in_force() {
        for (sub, flags) in [
            (
                "echo",
                &[
                    "idle-timeout",
                    "read-timeout",
                    "write-timeout",
                    "high-water",
                    "closing-time",
                    "closing-discard",
                ][..],
            ),
            (
                "http",
                &["header-timeout", "keepalive-timeout", "max-body"][..],
            ),
            ("resp", &["write-timeout", "high-water"][..]),
        ] {
            let server = Child::spawn(&[sub, "--addr", "127.0.0.1:0", "--loops", "0"]);
            for flag in flags {
                assert_eq!(
                    shown(&server.banner, flag),
                    help_default(sub, flag),
                    "evnet {sub}: --{flag}"
                );
            }
            assert_eq!(help_default(sub, "max-connections"), "auto");
        }
        // auto: the fd limit less an eighth, at least 32.
        let server = Child::spawn(&[
            "echo",
            "--addr",
            "127.0.0.1:0",
            "--loops",
            "0",
            "--max-fds",
            "96",
        ]);
        assert_eq!(shown(&server.banner, "max-connections"), "64");

        // The timeouts, probed together: each must end its connection
        // within a few seconds of its deadline, not before.
        let http = Child::spawn(&["http", "--addr", "127.0.0.1:0", "--loops", "0"]);
        let echo = Child::spawn(&["echo", "--addr", "127.0.0.1:0", "--loops", "0"]);
        let start = Instant::now();
        let header = std::thread::spawn({
            let addr = http.addr;
            move || {
                let mut s = connect(addr);
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                (start.elapsed(), String::from_utf8_lossy(&out).into_owned())
            }
        });
        // Echo with a client that sends and never reads: its output stops
        // draining, and the write timeout ends it.
        let mut flood = connect(echo.addr);
        flood.set_nonblocking(true).unwrap();
        let chunk = vec![1u8; 64 << 10];
        let mut stalled_at = None;
        let mut ended = None;
        while start.elapsed() < Duration::from_secs(100) {
            match flood.write(&chunk) {
                Ok(_) => stalled_at = None,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    stalled_at.get_or_insert_with(Instant::now);
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(_) => {
                    ended = Some(stalled_at.expect("stalled first").elapsed());
                    break;
                }
            }
        }
        let ended = ended.expect("the write timeout never closed the connection");
        assert!(
            ended >= Duration::from_secs(55) && ended < Duration::from_secs(75),
            "write timeout: closed {ended:?} after the output stalled (default 60s)"
        );
        let (took, reply) = header.join().unwrap();
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_secs(15),
            "header timeout after {took:?} (default 10s)"
        );
    }

    /// A pipelined flood of GETs for a large value from a client that does
    /// not read yet: the server stops at the high-water mark (its memory
    /// stays bounded: 1,000 replies of 1 MiB would be 1 GiB), and when the
    /// client reads, every reply arrives, in order.
    #[test]
    fn resp_replies_are_bounded_by_the_high_water_mark() {
        let server = Child::spawn(&["resp", "--addr", "127.0.0.1:0", "--loops", "0"]);
        let mut s = connect(server.addr);
        let value = vec![b'v'; 1 << 20];
        s.write_all(&resp_set("k", &value)).unwrap();
        assert_eq!(read_exact(&mut s, 5), b"+OK\r\n");
        const N: usize = 1000;
        s.write_all(&b"GET k\r\n".repeat(N)).unwrap();
        // Wait until the server has stopped producing (its output stalls on
        // our unread socket), then look at its peak memory.
        let rss = || vm_kib(server.pid(), "VmRSS:");
        let mut last = (rss(), Instant::now());
        while last.1.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(50));
            let now = rss();
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        let peak = vm_kib(server.pid(), "VmHWM:");
        assert!(
            peak < 96 << 10,
            "server peak RSS {peak} KiB with {N} MiB of replies unread"
        );
        // Every reply arrives once the client reads.
        let header = format!("${}\r\n", value.len()).into_bytes();
        let mut buf = vec![0u8; header.len() + value.len() + 2];
        for i in 0..N {
            s.read_exact(&mut buf)
                .unwrap_or_else(|e| panic!("reply {i}: {e}"));
            assert!(
                buf.starts_with(&header) && buf.ends_with(b"\r\n"),
                "reply {i}"
            );
        }
        s.write_all(b"PING\r\n").unwrap();
        assert_eq!(read_exact(&mut s, 7), b"+PONG\r\n");
    }

    /// Many clients reading one large value slowly cost one copy of it, not
    /// one each: the replies hold the stored bytes by reference. 32 clients
    /// each leave an 8 MiB GET unread; copied, that would be 32 × (8 MiB
    /// less what the sockets hold) ≈ 150 MiB more resident memory.
    #[test]
    fn resp_readers_of_one_large_value_share_it() {
        let server = Child::spawn(&["resp", "--addr", "127.0.0.1:0", "--loops", "0"]);
        let mut s = connect(server.addr);
        let value = vec![b'v'; 8 << 20];
        s.write_all(&resp_set("k", &value)).unwrap();
        assert_eq!(read_exact(&mut s, 5), b"+OK\r\n");
        let rss = || vm_kib(server.pid(), "VmRSS:");
        let before = rss();
        let mut readers: Vec<TcpStream> = (0..32).map(|_| connect(server.addr)).collect();
        for r in &mut readers {
            r.write_all(b"GET k\r\n").unwrap();
        }
        // Every reply has started (so every GET has run).
        let header = format!("${}\r\n", value.len()).into_bytes();
        for (i, r) in readers.iter_mut().enumerate() {
            assert_eq!(read_exact(r, header.len()), header, "reader {i}");
        }
        let grown = rss().saturating_sub(before);
        assert!(
            grown < 32 << 10,
            "server RSS grew {grown} KiB for 32 readers of one 8 MiB value"
        );
        // And each reader gets the whole value.
        let mut buf = vec![0u8; value.len() + 2];
        for (i, r) in readers.iter_mut().enumerate() {
            r.read_exact(&mut buf)
                .unwrap_or_else(|e| panic!("reader {i}: {e}"));
            assert!(
                buf[..value.len()] == value[..] && buf.ends_with(b"\r\n"),
                "reader {i}"
            );
        }
    }

    /// Slow readers of a large file cost the server no memory for it: the
    /// body goes from the page cache to the socket with sendfile, so 8
    /// readers that stop after the first MiB of a 32 MiB file leave the
    /// server's RSS flat (buffered, that would be up to 248 MiB); each then
    /// reads the whole file, exact.
    #[test]
    fn http_slow_readers_of_a_large_file_hold_no_copy() {
        const LEN: usize = 32 << 20;
        let dir = std::env::temp_dir().join(format!("evnet-slowfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = pattern(7, LEN);
        std::fs::write(dir.join("big.bin"), &data).unwrap();
        let root = dir.to_str().unwrap();
        let server = Child::spawn(&[
            "http",
            "--addr",
            "127.0.0.1:0",
            "--loops",
            "0",
            "--root",
            root,
        ]);
        let rss = || vm_kib(server.pid(), "VmRSS:");
        let before = rss();
        let mut readers: Vec<TcpStream> = (0..8).map(|_| connect(server.addr)).collect();
        for r in &mut readers {
            r.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
        }
        let mut heads = Vec::new();
        for (i, r) in readers.iter_mut().enumerate() {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.extend_from_slice(&read_exact(r, 1));
                assert!(head.len() < 4096, "reader {i}: no end of head");
            }
            let head = String::from_utf8(head).unwrap();
            assert!(
                head.starts_with("HTTP/1.1 200 OK\r\n"),
                "reader {i}: {head}"
            );
            assert!(
                head.contains(&format!("Content-Length: {LEN}\r\n")),
                "reader {i}: {head}"
            );
            let first = read_exact(r, 1 << 20);
            assert!(first == data[..1 << 20], "reader {i}: first MiB differs");
            heads.push(head);
        }
        let grown = rss().saturating_sub(before);
        assert!(
            grown < 16 << 10,
            "server RSS grew {grown} KiB for 8 stalled readers of a 32 MiB file"
        );
        let mut rest = vec![0u8; LEN - (1 << 20)];
        for (i, r) in readers.iter_mut().enumerate() {
            r.read_exact(&mut rest)
                .unwrap_or_else(|e| panic!("reader {i}: {e}"));
            assert!(rest == data[1 << 20..], "reader {i}: body differs");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The single reactor of the CLI, at its cap: the next client waits.
    #[test]
    fn cli_cap_on_the_single_reactor() {
        let server = Child::spawn(&[
            "echo",
            "--addr",
            "127.0.0.1:0",
            "--loops",
            "0",
            "--max-connections",
            "1",
        ]);
        let mut a = connect(server.addr);
        roundtrip(&mut a, b"a");
        let mut b = connect(server.addr);
        b.write_all(b"b").unwrap();
        assert!(silent_for(&mut b, Duration::from_millis(300)));
        drop(a);
        assert_eq!(read_exact(&mut b, 1), b"b");
    }
}
