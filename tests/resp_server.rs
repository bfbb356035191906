//! The RESP server over loopback: redis-cli round trips of every command,
//! redis-benchmark, redis-py, pipelining, protocol errors, QUIT, active
//! expiry, blocking pops.
//!
//! redis-cli and redis-benchmark come from Debian's redis-tools; without
//! them these tests fail (they are the point).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evnet::net::{Server, ServerBuilder};
use evnet::resp::server::{serve, ActiveExpiry};
use evnet::resp::Store;
use util::{pattern, resp_set};

fn start(loops: usize) -> (Server, SocketAddr) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let expiry = ActiveExpiry {
        every: Duration::from_millis(20),
        budget: 1000,
    };
    let server = serve(
        ServerBuilder::new().bind(addr).loops(loops),
        Arc::new(Store::new()),
        expiry,
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr)
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed: install Debian's redis-tools (apt-get install -y redis-tools)"
    );
    Command::new(name)
}

/// Run one command through redis-cli (formatted output) and return what it
/// printed, trimmed.
fn cli(port: u16, args: &[&str]) -> String {
    let out = tool("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--no-raw"])
        .args(args)
        .output()
        .unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s.trim().to_string()
}

#[test]
fn redis_cli_round_trips_every_command() {
    let (_server, addr) = start(2);
    let p = addr.port();
    let c = |args: &[&str]| cli(p, args);
    let table: &[(&[&str], &str)] = &[
        (&["PING"], "PONG"),
        (&["PING", "hi"], "\"hi\""),
        (&["ECHO", "hello world"], "\"hello world\""),
        (&["SET", "k", "v"], "OK"),
        (&["GET", "k"], "\"v\""),
        (&["GET", "missing"], "(nil)"),
        (&["GETSET", "k", "w"], "\"v\""),
        (&["SETNX", "k", "x"], "(integer) 0"),
        (&["SETNX", "k2", "x"], "(integer) 1"),
        (&["APPEND", "k", "123"], "(integer) 4"),
        (&["STRLEN", "k"], "(integer) 4"),
        (&["MSET", "a", "1", "b", "2"], "OK"),
        (&["MGET", "a", "b", "nope"], "1) \"1\"\n2) \"2\"\n3) (nil)"),
        (&["INCR", "a"], "(integer) 2"),
        (&["INCRBY", "a", "10"], "(integer) 12"),
        (&["DECR", "a"], "(integer) 11"),
        (&["DECRBY", "a", "5"], "(integer) 6"),
        (
            &["INCR", "k"],
            "(error) ERR value is not an integer or out of range",
        ),
        (&["EXISTS", "a", "b", "nope"], "(integer) 2"),
        (&["TYPE", "a"], "string"),
        (&["TYPE", "nope"], "none"),
        (&["DEL", "b", "nope"], "(integer) 1"),
        (&["UNLINK", "k2"], "(integer) 1"),
        (&["KEYS", "a*"], "1) \"a\""),
        (&["TTL", "a"], "(integer) -1"),
        (&["EXPIRE", "a", "100"], "(integer) 1"),
        (&["TTL", "a"], "(integer) 100"),
        (&["PERSIST", "a"], "(integer) 1"),
        (&["PTTL", "a"], "(integer) -1"),
        (&["PEXPIRE", "a", "100000"], "(integer) 1"),
        (&["EXPIREAT", "a", "99999999999"], "(integer) 1"),
        (&["PEXPIREAT", "a", "99999999999000"], "(integer) 1"),
        (&["TTL", "nope"], "(integer) -2"),
        (&["SETEX", "s", "100", "v"], "OK"),
        (&["PSETEX", "ps", "100000", "v"], "OK"),
        (&["SET", "x", "1", "EX", "100", "NX"], "OK"),
        (&["DBSIZE"], "(integer) 5"),
        (&["SELECT", "0"], "OK"),
        (&["SELECT", "1"], "(error) ERR DB index is out of range"),
        (&["CLIENT", "SETNAME", "tester"], "OK"),
        (
            &["COMMAND", "COUNT"],
            &format!("(integer) {}", evnet::resp::COMMAND_NAMES.len()),
        ),
        (
            &["CONFIG", "GET", "databases"],
            "1) \"databases\"\n2) \"1\"",
        ),
        (&["FUNCTION", "FLUSH"], "OK"),
        (&["AUTH", "default", "anything"], "OK"),
        (
            &["NOSUCH", "x"],
            "(error) ERR unknown command 'NOSUCH', with args beginning with: 'x'",
        ),
        (
            &["GET"],
            "(error) ERR wrong number of arguments for 'get' command",
        ),
        (&["FLUSHDB"], "OK"),
        (&["DBSIZE"], "(integer) 0"),
        (&["MSET", "z", "1"], "OK"),
        (&["FLUSHALL"], "OK"),
        (&["DBSIZE"], "(integer) 0"),
    ];
    for (args, want) in table {
        assert_eq!(c(args), *want, "redis-cli {args:?}");
    }
    // Replies that vary: check their shape.
    let id = c(&["CLIENT", "ID"]);
    assert!(id.starts_with("(integer) "), "{id}");
    assert_eq!(
        c(&["CLIENT", "GETNAME"]),
        "(nil)",
        "a new redis-cli process is a new client"
    );
    let info = c(&["CLIENT", "INFO"]);
    assert!(
        info.contains("addr=127.0.0.1:") && info.contains(&format!("laddr=127.0.0.1:{p}")),
        "{info}"
    );
    let info = c(&["INFO", "server"]);
    assert!(info.contains("redis_version:"), "{info}");
    let time = c(&["TIME"]);
    assert!(
        time.starts_with("1) \"") && time.contains("2) \""),
        "{time}"
    );
    let hello = c(&["HELLO", "2"]);
    assert!(
        hello.contains("\"proto\"") && hello.contains("(integer) 2"),
        "{hello}"
    );
    assert!(c(&["COMMAND", "LIST"]).contains("\"incrby\""));
    assert_eq!(c(&["QUIT"]), "OK");
    // Binary-safe values through redis-cli's escaping.
    assert_eq!(c(&["SET", "bin", "a\tb\nc"]), "OK");
    assert_eq!(c(&["GET", "bin"]), "\"a\\tb\\nc\"");
    // Interactive-style inline commands over stdin.
    let out = tool("redis-cli")
        .args(["-p", &p.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin
                .take()
                .unwrap()
                .write_all(b"SET piped 42\nINCR piped\nGET piped\n")?;
            ch.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n43\n43\n");
}

#[test]
fn redis_benchmark_default_set_completes_without_errors() {
    let (_server, addr) = start(2);
    let child = tool("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        // No -t: redis-benchmark's whole default test set.
        .args(["-P", "16", "-c", "50", "-n", "5000", "-q"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a benchmark that stops making progress fails the test instead
    // of hanging it.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            return true;
        }
        false
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    assert!(
        !watchdog.join().unwrap(),
        "redis-benchmark made no progress for 60 s (killed)"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "redis-benchmark failed: {stdout}{stderr}"
    );
    for t in [
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "MSET",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LRANGE_100",
        "LRANGE_300",
        "LRANGE_500",
        "LRANGE_600",
    ] {
        let line = stdout
            .split(['\n', '\r'])
            .map(str::trim_start)
            .find(|l| l.starts_with(t) && l.contains("requests per second"));
        assert!(line.is_some(), "no result for {t} in: {stdout}");
    }
    let lower = format!("{stdout}{stderr}").to_lowercase();
    assert!(
        !lower.contains("error"),
        "errors reported: {stdout}{stderr}"
    );
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).unwrap();
    v
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let (_server, addr) = start(2);
    let mut s = connect(addr);
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..2000 {
        let v = format!("value-{i}");
        req.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$4\r\nkey{}\r\n${}\r\n{v}\r\n",
                i % 10,
                v.len()
            )
            .as_bytes(),
        );
        want.extend_from_slice(b"+OK\r\n");
        req.extend_from_slice(format!("GET key{}\r\n", i % 10).as_bytes()); // inline
        want.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
        req.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n");
        want.extend_from_slice(format!(":{}\r\n", i + 1).as_bytes());
    }
    // Written in odd-sized pieces so commands straddle reads.
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for chunk in req.chunks(777) {
                w.write_all(chunk).unwrap();
            }
        })
    };
    let got = read_exactly(&mut s, want.len());
    writer.join().unwrap();
    assert!(got == want, "replies out of order or wrong");
}

#[test]
fn protocol_error_replies_and_closes_only_that_connection() {
    let (_server, addr) = start(2);
    let mut good = connect(addr);
    good.write_all(b"SET shared 1\r\n").unwrap();
    assert_eq!(read_exactly(&mut good, 5), b"+OK\r\n");

    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*1\r\n$x\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nfoo\r\n",
            b"-ERR Protocol error: expected '$', got 'f'\r\n",
        ),
        (
            b"PING\r\nset \"a b\r\nPING\r\n",
            b"+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (req, want) in cases {
        let mut bad = connect(addr);
        bad.write_all(req).unwrap();
        let mut got = Vec::new();
        bad.read_to_end(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "for {:?}",
            String::from_utf8_lossy(req)
        );
    }

    // A peer that keeps sending after the error still gets the error text
    // (the close must not turn into a reset that destroys it).
    let mut bad = connect(addr);
    bad.write_all(b"\x00").unwrap();
    let filler = vec![b'A'; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while bad.write_all(&filler).is_ok() {
        assert!(
            Instant::now() < deadline,
            "server never closed the desynced connection"
        );
    }
    let mut got = Vec::new();
    let _ = bad.read_to_end(&mut got);
    assert!(
        String::from_utf8_lossy(&got).contains("Protocol error"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    good.write_all(b"INCR shared\r\n").unwrap();
    assert_eq!(read_exactly(&mut good, 4), b":2\r\n");
}

#[test]
fn quit_answers_ok_and_skips_what_follows() {
    let (_server, addr) = start(1);
    let mut s = connect(addr);
    s.write_all(b"PING\r\nQUIT\r\nSET after quit\r\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"+PONG\r\n+OK\r\n");
    let mut s = connect(addr);
    s.write_all(b"EXISTS after\r\n").unwrap();
    assert_eq!(read_exactly(&mut s, 4), b":0\r\n");
}

#[test]
fn active_expiry_removes_keys_nobody_reads() {
    let (_server, addr) = start(2);
    let mut s = connect(addr);
    let mut req = Vec::new();
    for i in 0..500 {
        req.extend_from_slice(format!("SET vol{i} x PX 30\r\n").as_bytes());
    }
    req.extend_from_slice(b"SET keep y\r\nDBSIZE\r\n");
    s.write_all(&req).unwrap();
    let want: Vec<u8> = b"+OK\r\n"
        .repeat(501)
        .into_iter()
        .chain(b":501\r\n".iter().copied())
        .collect();
    assert_eq!(read_exactly(&mut s, want.len()), want);
    // DBSIZE counts expired keys until they are deleted: only the sweeper
    // can bring it down to 1.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        s.write_all(b"DBSIZE\r\n").unwrap();
        let mut buf = [0u8; 16];
        // Retry EINTR: a read with a timeout is not restarted after a stop/continue.
        let n = loop {
            match s.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.unwrap(),
            }
        };
        if &buf[..n] == b":1\r\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired keys not swept: {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keys_are_shared_across_loops() {
    let (_server, addr) = start(3);
    let mut conns: Vec<TcpStream> = (0..6).map(|_| connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(b"INCR across\r\n").unwrap();
        assert_eq!(read_exactly(c, 4), format!(":{}\r\n", i + 1).as_bytes());
    }
}

fn bulk(value: &[u8]) -> Vec<u8> {
    let mut r = format!("${}\r\n", value.len()).into_bytes();
    r.extend_from_slice(value);
    r.extend_from_slice(b"\r\n");
    r
}

/// Large values (64 KiB and more) leave from the store's own copy, by
/// reference. On the readiness and the completion paths: a pipeline mixing
/// them with small replies and MGET (which copies) arrives exact and in
/// order; a GET in flight keeps the value it started with while another
/// client appends to the key (the store copies it then) and overwrites it.
#[test]
fn large_values_are_sent_whole_and_unchanged_while_in_flight() {
    use evnet::poller::{PollerKind, Trigger};
    for (poller, trigger) in [
        (PollerKind::Epoll, Trigger::Level),
        (PollerKind::Epoll, Trigger::Edge),
        (PollerKind::Proactor, Trigger::Level),
    ] {
        let server = serve(
            ServerBuilder::new()
                .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
                .poller(poller)
                .trigger(trigger)
                .loops(1),
            Arc::new(Store::new()),
            ActiveExpiry::default(),
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        // More than both sockets' buffers hold, so the reply is still
        // queued in the server when the key changes.
        let big = pattern(1, 16 << 20);
        let big2 = pattern(2, 100 << 10);
        let mut w = connect(addr);
        let mut r = connect(addr);
        for (k, v) in [("big", &big), ("big2", &big2)] {
            w.write_all(&resp_set(k, v)).unwrap();
            assert_eq!(read_exactly(&mut w, 5), b"+OK\r\n", "{poller:?}");
        }

        // A pipeline: spliced, small, spliced, copied (MGET), PING.
        r.write_all(b"GET big2\r\nGET nope\r\nGET big2\r\nMGET big2 nope\r\nPING\r\n")
            .unwrap();
        let mut want = bulk(&big2);
        want.extend_from_slice(b"$-1\r\n");
        want.extend_from_slice(&bulk(&big2));
        want.extend_from_slice(b"*2\r\n");
        want.extend_from_slice(&bulk(&big2));
        want.extend_from_slice(b"$-1\r\n+PONG\r\n");
        let got = read_exactly(&mut r, want.len());
        assert!(got == want, "{poller:?}/{trigger:?}: pipeline replies");

        // A GET whose reply is under way (its header and first byte are in)...
        r.write_all(b"GET big\r\n").unwrap();
        let head = format!("${}\r\n", big.len()).into_bytes();
        assert_eq!(
            read_exactly(&mut r, head.len() + 1),
            [&head[..], &big[..1]].concat()
        );
        // ...while another client appends to the key and reads it back...
        let mut appended = big.clone();
        appended.extend_from_slice(b"tail");
        w.write_all(b"APPEND big tail\r\nGET big\r\n").unwrap();
        let mut want = format!(":{}\r\n", appended.len()).into_bytes();
        want.extend_from_slice(&bulk(&appended));
        assert!(
            read_exactly(&mut w, want.len()) == want,
            "{poller:?}/{trigger:?}: APPEND then GET"
        );
        // ...and overwrites it.
        w.write_all(&resp_set("big", b"small")).unwrap();
        assert_eq!(read_exactly(&mut w, 5), b"+OK\r\n");
        // The first reply is the value as it was when the GET ran.
        let rest = read_exactly(&mut r, big.len() + 1);
        assert!(
            rest[..big.len() - 1] == big[1..] && rest[big.len() - 1..] == *b"\r\n",
            "{poller:?}/{trigger:?}: the reply in flight changed"
        );
        r.write_all(b"GET big\r\n").unwrap();
        assert_eq!(read_exactly(&mut r, 11), b"$5\r\nsmall\r\n");
        server.shutdown().unwrap();
    }
}

/// Read one reply line that carries a number (`:42`, `$17`) and return it.
fn read_header_number(s: &mut TcpStream) -> i64 {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut byte).unwrap();
        line.push(byte[0]);
    }
    std::str::from_utf8(&line[1..line.len() - 2])
        .unwrap()
        .parse()
        .unwrap()
}

/// Wait (bounded: 10 s) until the server reports `n` blocked clients.
fn wait_blocked(p: &mut TcpStream, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        p.write_all(b"INFO clients\r\n").unwrap();
        let len = read_header_number(p) as usize;
        let body = read_exactly(p, len + 2);
        if String::from_utf8_lossy(&body).contains(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} blocked clients");
        std::thread::yield_now();
    }
}

/// Send inline commands (one per line) and read exactly the bytes of
/// `want` back, comparing.
fn expect(s: &mut TcpStream, send: &str, want: &str) {
    s.write_all(send.as_bytes()).unwrap();
    let got = read_exactly(s, want.len());
    assert_eq!(String::from_utf8_lossy(&got), want, "after {send:?}");
}

/// BLPOP on two loops: clients blocked on an empty list are served in the
/// order they blocked, by pushes from a third connection; a command
/// pipelined behind BLPOP is answered only after it; a timeout answers nil
/// no sooner than it passes; a blocked client that disconnects leaves no
/// trace (the next push goes to the next waiter); BLMOVE waits too.
#[test]
fn blocking_pops_wait_for_pushes_in_order_and_time_out() {
    let (_server, addr) = start(2);
    let mut a = connect(addr);
    let mut b = connect(addr);
    let mut gone = connect(addr);
    let mut p = connect(addr);
    // Each blocks (no reply yet): a first, then the one that will leave,
    // then b; each is parked (INFO says so) before the next blocks.
    a.write_all(b"BLPOP jobs 0\r\nPING\r\n").unwrap();
    wait_blocked(&mut p, 1);
    gone.write_all(b"BLPOP jobs 0\r\n").unwrap();
    wait_blocked(&mut p, 2);
    b.write_all(b"BRPOP other jobs 0\r\n").unwrap();
    wait_blocked(&mut p, 3);
    drop(gone);
    wait_blocked(&mut p, 2);
    expect(&mut p, "RPUSH jobs one\r\n", ":1\r\n");
    // a, the first in line, gets it, then its pipelined PING is answered.
    let want_a = "*2\r\n$4\r\njobs\r\n$3\r\none\r\n+PONG\r\n";
    assert_eq!(
        String::from_utf8_lossy(&read_exactly(&mut a, want_a.len())),
        want_a
    );
    expect(&mut p, "RPUSH jobs two\r\n", ":1\r\n");
    let want_b = "*2\r\n$4\r\njobs\r\n$3\r\ntwo\r\n";
    assert_eq!(
        String::from_utf8_lossy(&read_exactly(&mut b, want_b.len())),
        want_b
    );
    expect(&mut p, "LLEN jobs\r\n", ":0\r\n");
    // Timeout.
    let t = Instant::now();
    expect(&mut a, "BLPOP jobs 0.2\r\n", "*-1\r\n");
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    // Data already there: no wait.
    expect(&mut p, "RPUSH q x\r\n", ":1\r\n");
    expect(&mut a, "BLPOP q 5\r\n", "*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
    // BLMOVE waits for its source, then moves.
    b.write_all(b"BLMOVE src dst LEFT RIGHT 0\r\n").unwrap();
    wait_blocked(&mut p, 1);
    expect(&mut p, "LPUSH src m\r\n", ":1\r\n");
    assert_eq!(
        String::from_utf8_lossy(&read_exactly(&mut b, 7)),
        "$1\r\nm\r\n"
    );
    expect(&mut p, "LRANGE dst 0 -1\r\n", "*1\r\n$1\r\nm\r\n");
    // Wrong types and bad timeouts answer at once.
    expect(&mut p, "SET s v\r\n", "+OK\r\n");
    expect(
        &mut p,
        "BLPOP s 0\r\n",
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    expect(&mut p, "BLPOP jobs -1\r\n", "-ERR timeout is negative\r\n");
    expect(
        &mut p,
        "BLPOP jobs x\r\n",
        "-ERR timeout is not a float or out of range\r\n",
    );
    // Inside MULTI a blocking pop does not block.
    expect(
        &mut p,
        "MULTI\r\nBLPOP jobs 0\r\nEXEC\r\n",
        "+OK\r\n+QUEUED\r\n*1\r\n*-1\r\n",
    );
}

/// redis-py, the Python client most Redis users have: pipelines, WATCH
/// transactions (retried after another client's write), blocking pops with
/// timeouts, SCAN over 10,000 keys (tests/py/redis_py_client.py).
#[test]
fn redis_py_client_works_end_to_end() {
    let (_server, addr) = start(2);
    let has = Command::new("python3")
        .args(["-c", "import redis"])
        .output()
        .expect("python3");
    assert!(
        has.status.success(),
        "redis-py is missing: pip install redis (.ci/run installs it)"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/redis_py_client.py");
    let out = Command::new("timeout")
        .args(["120", "python3", script, &addr.port().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-py: {stdout}{stderr}");
    assert_eq!(stdout.trim(), "redis-py: ok");
}

/// Growing past one server: two `evnet resp` instances behind twemproxy
/// (Debian's nutcracker, ketama consistent hashing). redis-benchmark
/// through the proxy completes without errors, the keys it wrote are
/// spread over both instances, and a key set through the proxy reads back
/// through it.
#[test]
fn twemproxy_shards_over_two_instances() {
    let found = Command::new("sh")
        .args(["-c", "command -v nutcracker"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "nutcracker is not installed: apt-get install -y nutcracker (.ci/run installs it)"
    );
    let (_s1, a1) = start(1);
    let (_s2, a2) = start(1);
    // nutcracker takes a fixed port: take a free one from the kernel.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("evnet-twem-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("nutcracker.yml");
    std::fs::write(
        &conf,
        format!(
            "evnet:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  \
             redis: true\n  timeout: 5000\n  servers:\n   - {a1}:1 one\n   - {a2}:1 two\n"
        ),
    )
    .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(
        Command::new("nutcracker")
            .arg("-c")
            .arg(&conf)
            .arg("-o")
            .arg(dir.join("nutcracker.log"))
            .arg("-p")
            .arg(dir.join("nutcracker.pid"))
            .spawn()
            .unwrap(),
    );
    // Wait (bounded) for the proxy to listen.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut c = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "nutcracker did not start: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // (twemproxy takes multi-bulk commands only, not inline ones.)
    expect(
        &mut c,
        "*3\r\n$3\r\nSET\r\n$13\r\nthrough-proxy\r\n$3\r\nyes\r\n",
        "+OK\r\n",
    );
    expect(
        &mut c,
        "*2\r\n$3\r\nGET\r\n$13\r\nthrough-proxy\r\n",
        "$3\r\nyes\r\n",
    );
    let out = tool("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-t",
            "set,get,incr,lpush,lpop,sadd,hset,zadd",
            "-n",
            "5000",
            "-r",
            "1000",
            "-q",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-benchmark: {stdout}{stderr}");
    for t in [
        "SET", "GET", "INCR", "LPUSH", "LPOP", "SADD", "HSET", "ZADD",
    ] {
        assert!(
            stdout
                .split(['\n', '\r'])
                .any(|l| l.trim_start().starts_with(t) && l.contains("requests per second")),
            "no result for {t}: {stdout}"
        );
    }
    assert!(
        !format!("{stdout}{stderr}").to_lowercase().contains("error"),
        "{stdout}{stderr}"
    );
    // The random keys (-r) landed on both instances.
    for a in [a1, a2] {
        let mut s = connect(a);
        s.write_all(b"DBSIZE\r\n").unwrap();
        let n = read_header_number(&mut s);
        assert!(n > 100, "{a} holds only {n} keys");
    }
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `evnet resp` as a child process (its memory is its own to measure), with
/// `extra` arguments; the child and its port.
fn spawn_resp(extra: &[&str]) -> (ChildGuard, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evnet"))
        .args(["resp", "--addr", "127.0.0.1:0", "--loops", "1"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn evnet resp");
    // The banner line: "evnet resp listening on 127.0.0.1:PORT (...)".
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let guard = ChildGuard(child);
    let port = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (guard, port)
}

/// Kills the child when dropped.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of process `pid`, in bytes.
fn rss_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn hostile_frames_cost_only_their_connection_and_bounded_memory() {
    let (child, port) = spawn_resp(&[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pid = child.0.id();
    let mut good = connect(addr);
    expect(&mut good, "SET shared 1\r\n", "+OK\r\n");
    let before = rss_of(pid);

    // Refused outright: a reply naming the error, then the close.
    let refused: &[(&[u8], &[u8])] = &[
        (
            b"*1\r\n$536870913\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1048577\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        // Nested arrays are not commands.
        (
            b"*1\r\n*1\r\n*1\r\n$4\r\nPING\r\n",
            b"-ERR Protocol error: expected '$', got '*'\r\n",
        ),
        (
            b"*-5\r\n$4\r\nPING\r\n",
            b"-ERR unknown command '$4', with args beginning with: \r\n",
        ),
    ];
    for (req, want) in refused {
        let mut bad = connect(addr);
        bad.write_all(req).unwrap();
        let mut got = vec![0u8; want.len()];
        bad.read_exact(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "for {:?}",
            String::from_utf8_lossy(req)
        );
    }

    // Announced but never sent: a million-element header, and 400 MB
    // bulks, on 50 connections each. Nothing is reserved for what has not
    // arrived.
    let mut held = Vec::new();
    for i in 0..100 {
        let mut s = connect(addr);
        let req: &[u8] = if i % 2 == 0 {
            b"*1000000\r\n$3\r\nSET\r\n"
        } else {
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$400000000\r\nxyz"
        };
        s.write_all(req).unwrap();
        held.push(s);
    }
    // The server has read them all once it answers a command sent after.
    expect(&mut good, "INCR shared\r\n", ":2\r\n");
    let grown = rss_of(pid).saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "100 half-sent huge frames grew the server by {grown} bytes"
    );

    // A huge range of a big list, pipelined 100 times by a client that does
    // not read: the replies wait in bounded buffers (reading the client's
    // commands stops), then all of them arrive whole.
    let mut big = String::from("*20002\r\n$5\r\nRPUSH\r\n$3\r\nbig\r\n");
    for i in 0..20_000 {
        big.push_str(&format!("$16\r\nelement-{i:08}\r\n"));
    }
    expect(&mut good, &big, ":20000\r\n");
    let mut greedy = connect(addr);
    let pipeline = "LRANGE big 0 -1\r\nZRANGE nozset 0 9223372036854775807\r\n".repeat(100);
    greedy.write_all(pipeline.as_bytes()).unwrap();
    expect(&mut good, "INCR shared\r\n", ":3\r\n");
    let grown = rss_of(pid).saturating_sub(before);
    // One reply is 20,000 bulks of 16 bytes (about 500 KB); 100 of them
    // would be 50 MB if nothing held them back.
    assert!(
        grown < 64 << 20,
        "unread replies grew the server by {grown} bytes"
    );
    let one = {
        let mut r = String::from("*20000\r\n");
        for i in 0..20_000 {
            r.push_str(&format!("$16\r\nelement-{i:08}\r\n"));
        }
        r.push_str("*0\r\n");
        r
    };
    greedy
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let got = read_exactly(&mut greedy, one.len() * 100);
    assert!(
        got == one.repeat(100).into_bytes(),
        "pipelined replies differ"
    );

    drop(held);
    expect(&mut good, "GET shared\r\n", "$1\r\n3\r\n");
}

#[test]
fn maxmemory_evicts_by_lru_or_refuses_writes() {
    // noeviction: writes past the limit get the OOM error, reads go on.
    let (_child, port) = spawn_resp(&["--maxmemory", "24mb"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = connect(addr);
    let value = "v".repeat(1000);
    let mut refused_at = None;
    for i in 0..100_000 {
        c.write_all(format!("SET k{i} {value}\r\n").as_bytes())
            .unwrap();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            c.read_exact(&mut b).unwrap();
            line.push(b[0]);
        }
        if line != b"+OK\r\n" {
            assert_eq!(
                String::from_utf8_lossy(&line),
                "-OOM command not allowed when used memory > 'maxmemory'.\r\n"
            );
            refused_at = Some(i);
            break;
        }
    }
    let n = refused_at.expect("24 MB of heap never ran out");
    assert!(n > 1000, "refused after only {n} keys");
    expect(&mut c, "GET k0\r\n", &format!("$1000\r\n{value}\r\n"));
    expect(&mut c, "DEL k0 k1 k2\r\n", ":3\r\n");

    // allkeys-lru: writes go on, the keys never read are the ones evicted.
    let (_child, port) = spawn_resp(&["--maxmemory", "24mb", "--maxmemory-policy", "allkeys-lru"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = connect(addr);
    expect(&mut c, "SET hot 1\r\n", "+OK\r\n");
    for i in 0..60_000 {
        c.write_all(format!("SET k{i} {value}\r\n").as_bytes())
            .unwrap();
        assert_eq!(read_exactly(&mut c, 5), b"+OK\r\n", "SET k{i}");
    }
    c.write_all(b"INFO memory\r\n").unwrap();
    let info = String::from_utf8_lossy(&read_bulk(&mut c)).into_owned();
    let used: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(used <= 24 << 20, "used_memory {used} past maxmemory");
    assert!(info.contains("maxmemory_policy:allkeys-lru"), "{info}");
    c.write_all(b"DBSIZE\r\n").unwrap();
    let keys = read_header_number(&mut c);
    assert!(keys < 60_000, "nothing was evicted ({keys} keys)");
    c.write_all(b"INFO stats\r\n").unwrap();
    let stats = String::from_utf8_lossy(&read_bulk(&mut c)).into_owned();
    let evicted: i64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(evicted + keys, 60_001, "{stats}");
}

/// One bulk reply's payload.
fn read_bulk(s: &mut TcpStream) -> Vec<u8> {
    let n = read_header_number(s);
    let body = read_exactly(s, n as usize + 2);
    body[..n as usize].to_vec()
}

/// A push on one loop that races a blocking pop on another: the popper's
/// waiter was queued only after its command had found the list empty, so
/// a push in between saw nobody waiting and the popper slept on a list
/// with data (Redis's "BRPOPLPUSH with multiple blocked clients" hung on
/// it). Every round, the pop is answered with the element, never with the
/// timeout's nil.
#[test]
fn a_push_racing_a_blocking_pop_on_another_loop_is_not_lost() {
    let (_server, addr) = start(2);
    let mut pusher = connect(addr);
    for round in 0..300 {
        // Connections alternate between the two loops.
        let mut popper = connect(addr);
        let key = format!("race{round}");
        popper
            .write_all(format!("BLPOP {key} 5\r\n").as_bytes())
            .unwrap();
        // No wait for the block: the push may land before, during or after.
        expect(&mut pusher, &format!("LPUSH {key} v\r\n"), ":1\r\n");
        let want = format!("*2\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len());
        let got = read_exactly(&mut popper, want.len());
        assert_eq!(String::from_utf8_lossy(&got), want, "round {round}");
    }
}
