//! Operations: the graceful upgrade on SIGUSR2 (listeners handed to a new
//! process, the old one drains and exits 0) and systemd socket activation,
//! with the real `evnet` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EVNET: &str = env!("CARGO_BIN_EXE_evnet");

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by whoever is its parent now) has
    // a /proc entry: look at its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s[s.rfind(')').unwrap() + 2..].chars().next(),
            Some('Z') | Some('X')
        ),
        Err(_) => false,
    }
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("evnet-ops-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An `evnet` server started with a pid file, followed across upgrades:
/// its stdout and stderr lines arrive on channels (every generation writes
/// to the same pipes). Drop kills whichever process the pid file names
/// and every pid seen.
struct Served {
    first: std::process::Child,
    addr: SocketAddr,
    pid_file: PathBuf,
    dir: PathBuf,
    stderr: mpsc::Receiver<String>,
    pids: Vec<u32>,
}

impl Served {
    fn start(tag: &str, args: &[&str], env: &[(&str, &str)]) -> Served {
        let dir = temp_dir(tag);
        let pid_file = dir.join("evnet.pid");
        let mut cmd = Command::new(EVNET);
        cmd.args(args)
            .arg("--pid-file")
            .arg(&pid_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut first = cmd.spawn().expect("spawn evnet");
        let (out_tx, out_rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        let out = first.stdout.take().unwrap();
        let err = first.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let end = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = out_rx
                .recv_timeout(left)
                .expect("no listening line from evnet");
            if let Some(a) = line.split_whitespace().find_map(|w| {
                w.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .parse::<SocketAddr>()
                    .ok()
            }) {
                break a;
            }
        };
        let mut s = Served {
            first,
            addr,
            pid_file,
            dir,
            stderr: err_rx,
            pids: Vec::new(),
        };
        let pid = s.wait_pid_file(|_| true);
        s.pids.push(pid);
        s
    }

    /// The pid in the pid file once `ok` accepts it (bounded wait).
    fn wait_pid_file(&self, ok: impl Fn(u32) -> bool) -> u32 {
        let mut found = None;
        let got = wait_until(Duration::from_secs(20), || {
            found = std::fs::read_to_string(&self.pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .filter(|&p| ok(p));
            found.is_some()
        });
        assert!(got, "pid file {} never qualified", self.pid_file.display());
        found.unwrap()
    }

    fn pid(&self) -> u32 {
        *self.pids.last().unwrap()
    }

    /// SIGUSR2 to the serving process; wait until a new pid serves and the
    /// old process has exited. Returns the new pid.
    fn upgrade(&mut self) -> u32 {
        let old = self.pid();
        evnet::sys::process::kill(old, libc::SIGUSR2).unwrap();
        let new = self.wait_pid_file(|p| p != old);
        self.pids.push(new);
        assert!(
            wait_until(Duration::from_secs(20), || !alive(old)),
            "old process {old} still running after the upgrade"
        );
        assert!(alive(new), "new process {new} is not running");
        assert!(
            !oldbin(&self.pid_file).exists(),
            "{} left behind",
            oldbin(&self.pid_file).display()
        );
        new
    }

    /// Wait for a stderr line containing `needle` (bounded).
    fn wait_stderr(&self, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no stderr line containing {needle:?}"),
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        for &p in &self.pids {
            if alive(p) {
                let _ = evnet::sys::process::kill(p, libc::SIGKILL);
            }
        }
        let _ = self.first.kill();
        let _ = self.first.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn oldbin(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".oldbin");
    PathBuf::from(s)
}

/// One `GET /` on a new connection: the status code.
fn get(addr: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read response");
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// `evnet load http` for `secs` against `addr`, in the background; the
/// JSON report when it ends.
fn load(addr: SocketAddr, secs: u64) -> std::process::Child {
    Command::new(EVNET)
        .args([
            "load",
            "http",
            &format!("http://{addr}/"),
            "-c",
            "16",
            "-d",
            &format!("{secs}s"),
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn evnet load")
}

fn json_u64(json: &str, key: &str) -> u64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    json[at + key.len() + 3..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

fn upgrades_under_load(tag: &str, args: &[&str]) {
    let mut s = Served::start(tag, args, &[]);
    let mut load = load(s.addr, 6);
    // Let the load connect before the first upgrade.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        s.upgrade();
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut json = String::new();
    load.stdout
        .take()
        .unwrap()
        .read_to_string(&mut json)
        .unwrap();
    assert!(load.wait().unwrap().success(), "evnet load failed: {json}");
    let errors = &json[json.find("\"errors\"").expect("errors in report")..];
    assert_eq!(
        json_u64(errors, "total"),
        0,
        "errors during upgrades: {json}"
    );
    assert_eq!(json_u64(&json, "non_success"), 0, "non-2xx: {json}");
    assert!(json_u64(&json, "requests") > 0, "no requests: {json}");
    let mut pids = s.pids.clone();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 6, "a new pid each time: {:?}", s.pids);
    assert_eq!(get(s.addr), 200);
}

#[test]
fn five_upgrades_under_load_drop_no_request() {
    upgrades_under_load("load1", &["http", "--addr", "127.0.0.1:0", "--loops", "1"]);
}

#[test]
fn five_upgrades_under_load_drop_no_request_with_four_processes() {
    upgrades_under_load(
        "load4",
        &[
            "http",
            "--addr",
            "127.0.0.1:0",
            "--processes",
            "4",
            "--loops",
            "0",
        ],
    );
}

/// A POST whose body arrives a byte every 100 ms for 2 s, started before
/// the upgrade, is answered in full by the old process, which exits only
/// after it.
fn trickled_request_survives(tag: &str, args: &[&str]) {
    let mut s = Served::start(tag, args, &[]);
    let body = b"0123456789abcdefghij";
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let old = s.pid();
    let mut upgraded = false;
    for (i, b) in body.iter().enumerate() {
        c.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if i == 3 {
            evnet::sys::process::kill(old, libc::SIGUSR2).unwrap();
            let new = s.wait_pid_file(|p| p != old);
            s.pids.push(new);
            upgraded = true;
            // The new process serves while the old one still reads our body.
            assert_eq!(get(s.addr), 200);
            assert!(alive(old), "old process exited with a request in flight");
        }
    }
    assert!(upgraded);
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "a draining server closes after the response: {text}"
    );
    assert!(text.ends_with("0123456789abcdefghij"), "{text}");
    assert!(wait_until(Duration::from_secs(10), || !alive(old)));
    assert_eq!(get(s.addr), 200);
}

#[test]
fn a_trickled_request_started_before_an_upgrade_completes() {
    trickled_request_survives("slow1", &["http", "--addr", "127.0.0.1:0", "--loops", "0"]);
}

#[test]
fn a_trickled_request_started_before_an_upgrade_completes_with_four_processes() {
    trickled_request_survives(
        "slow4",
        &[
            "http",
            "--addr",
            "127.0.0.1:0",
            "--processes",
            "4",
            "--loops",
            "0",
        ],
    );
}

/// A new binary that exits at once (or cannot be executed) leaves the old
/// process serving, its pid file back in place.
fn failed_upgrade_keeps_serving(tag: &str, args: &[&str]) {
    for bin in ["/bin/false", "/nonexistent/evnet"] {
        let mut s = Served::start(tag, args, &[("EVNET_UPGRADE_BIN", bin)]);
        let old = s.pid();
        evnet::sys::process::kill(old, libc::SIGUSR2).unwrap();
        let line = s.wait_stderr("upgrade failed");
        assert!(line.contains("still serving"), "{line}");
        assert!(alive(old), "{bin}: the old process stopped");
        assert_eq!(s.wait_pid_file(|_| true), old, "{bin}: pid file moved");
        assert!(!oldbin(&s.pid_file).exists());
        for _ in 0..20 {
            assert_eq!(get(s.addr), 200, "{bin}");
        }
        // And it can still be upgraded once the binary is fixed: the
        // override is the test's only, so a real upgrade is not tried here;
        // a second SIGUSR2 is accepted (not "already under way").
        evnet::sys::process::kill(old, libc::SIGUSR2).unwrap();
        s.wait_stderr("upgrade failed");
        s.pids.push(old);
    }
}

#[test]
fn a_new_binary_that_fails_leaves_the_old_serving() {
    failed_upgrade_keeps_serving("fail1", &["http", "--addr", "127.0.0.1:0", "--loops", "1"]);
}

#[test]
fn a_new_binary_that_fails_leaves_the_old_serving_with_four_processes() {
    failed_upgrade_keeps_serving(
        "fail4",
        &[
            "http",
            "--addr",
            "127.0.0.1:0",
            "--processes",
            "4",
            "--loops",
            "0",
        ],
    );
}

/// echo and resp hand over their listeners too.
#[test]
fn echo_and_resp_hand_over_their_listeners() {
    // echo
    let mut s = Served::start(
        "echo",
        &["echo", "--addr", "127.0.0.1:0", "--loops", "0"],
        &[],
    );
    let mut held = TcpStream::connect(s.addr).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    s.upgrade();
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    // The drained old process closed its idle echo connection cleanly.
    assert_eq!(held.read(&mut buf).unwrap(), 0);
    drop(s);

    // resp
    let mut s = Served::start(
        "resp",
        &["resp", "--addr", "127.0.0.1:0", "--loops", "1"],
        &[],
    );
    s.upgrade();
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = [0u8; 7];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    drop(s);
}

#[test]
fn udp_echo_upgrade_keeps_the_socket() {
    // udp-echo has no --pid-file: follow it by its stderr.
    let dir = temp_dir("udp");
    let mut child = Command::new(EVNET)
        .args(["udp-echo", "--addr", "127.0.0.1:0", "--loops", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ping = |msg: &[u8]| {
        sock.send_to(msg, addr).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg);
    };
    ping(b"before");
    let old = child.id();
    evnet::sys::process::kill(old, libc::SIGUSR2).unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let new: u32 = loop {
        let l = rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .expect("no takeover line");
        if let Some(rest) = l.split("pid ").nth(1) {
            if l.contains("took over") {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                break digits
                    .parse()
                    .unwrap_or_else(|_| panic!("no pid in the takeover line {l:?}"));
            }
        }
    };
    assert!(
        child.wait().unwrap().success(),
        "old udp process exit status"
    );
    ping(b"after");
    let _ = evnet::sys::process::kill(new, libc::SIGKILL);
    let _ = std::fs::remove_dir_all(dir);
}

/// A free port on 127.0.0.1 (bound and released; systemd-socket-activate
/// needs a concrete one).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn socket_activate(listen: &str, evnet_addr: &str) -> std::process::Child {
    Command::new("systemd-socket-activate")
        .args([
            "-l", listen, EVNET, "http", "--addr", evnet_addr, "--loops", "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd)")
}

fn have_socket_activate() -> bool {
    let ok = Command::new("systemd-socket-activate")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        // .ci/run installs it; a bare `cargo test` elsewhere says why.
        eprintln!("SKIP: systemd-socket-activate not installed (apt-get install systemd)");
    }
    ok
}

/// GET / over a stream that is already connected.
fn get_on(mut s: impl Read + Write) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn socket_activation_over_tcp() {
    if !have_socket_activate() {
        return;
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut act = socket_activate(&addr, &addr);
    // The socket exists as soon as systemd-socket-activate listens; evnet
    // starts on the first connection and must answer on the passed socket.
    let mut c = None;
    assert!(wait_until(Duration::from_secs(10), || {
        c = TcpStream::connect(&addr).ok();
        c.is_some()
    }));
    let c = c.unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let text = get_on(c);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // evnet runs as the activator's pid (it execs): the passed fd is
    // served, not a socket evnet bound (that bind would fail: in use).
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", act.id())).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("http"),
        "evnet is running as the activated process"
    );
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", act.id()))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(fds.iter().any(|f| f == "3"), "fd 3 is the passed socket");
    let _ = act.kill();
    let _ = act.wait();
}

#[test]
fn socket_activation_over_a_unix_path() {
    if !have_socket_activate() {
        return;
    }
    let dir = temp_dir("unix-act");
    let path = dir.join("evnet.sock");
    let p = path.to_str().unwrap().to_string();
    let mut act = socket_activate(&p, &format!("unix:{p}"));
    let mut c = None;
    assert!(wait_until(Duration::from_secs(10), || {
        c = std::os::unix::net::UnixStream::connect(&path).ok();
        c.is_some()
    }));
    let c = c.unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let text = get_on(c);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Stopping evnet leaves the socket file to its owner.
    evnet::sys::process::kill(act.id(), libc::SIGTERM).unwrap();
    assert!(act.wait().unwrap().success());
    assert!(path.exists(), "the activator's socket file was removed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A passed socket of the wrong kind for the address is refused with a
/// message naming it, not served.
#[test]
fn socket_activation_refuses_a_datagram_socket_for_a_stream_server() {
    if !have_socket_activate() {
        return;
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut act = Command::new("systemd-socket-activate")
        .args([
            "--datagram",
            "-l",
            &addr,
            EVNET,
            "http",
            "--addr",
            &addr,
            "--loops",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A datagram socket activates on the first datagram.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut status = None;
    assert!(wait_until(Duration::from_secs(10), || {
        let _ = u.send_to(b"x", &addr);
        status = act.try_wait().unwrap();
        status.is_some()
    }));
    let mut err = String::new();
    act.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.unwrap().success(), "{err}");
    assert!(
        err.contains("inherited fd 3") && err.contains("not a listening stream socket"),
        "{err}"
    );
}

/// An `evnet http` on a fixed address, serving once it accepts there.
fn plain_server(addr: &str) -> std::process::Child {
    let child = Command::new(EVNET)
        .args(["http", "--addr", addr, "--loops", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
        "evnet on {addr} did not start"
    );
    child
}

fn have_haproxy() -> bool {
    let ok = Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: haproxy not installed (apt-get install haproxy; .ci/run does)");
    }
    ok
}

/// HAProxy in front of two instances under load: one is upgraded twice,
/// the other SIGKILLed and started again; the client sees no failure. The
/// HAProxy settings are the ones README.md recommends: health checks every
/// 200 ms, retries with redispatch on every retryable error (a request
/// caught by the kill, or sent on a pooled connection a draining server
/// just closed, is sent again to the other server).
#[test]
fn behind_haproxy_an_upgrade_and_a_kill_fail_no_request() {
    if !have_haproxy() {
        return;
    }
    let (a_port, b_port, front) = (free_port(), free_port(), free_port());
    let b_addr = format!("127.0.0.1:{b_port}");
    let mut a = Served::start(
        "haproxy",
        &[
            "http",
            "--addr",
            &format!("127.0.0.1:{a_port}"),
            "--loops",
            "1",
        ],
        &[],
    );
    let mut b = plain_server(&b_addr);
    let cfg = a.dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
             \x20   retries 3\n    option redispatch 1\n    retry-on all-retryable-errors\n\
             frontend web\n    bind 127.0.0.1:{front}\n    default_backend evnet\n\
             backend evnet\n    balance roundrobin\n    option httpchk GET /plaintext\n\
             \x20   default-server inter 200ms fall 1 rise 2\n\
             \x20   server a 127.0.0.1:{a_port} check\n    server b 127.0.0.1:{b_port} check\n"
        ),
    )
    .unwrap();
    let mut haproxy = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let front_addr: SocketAddr = format!("127.0.0.1:{front}").parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect(front_addr).is_ok() && get(front_addr) == 200
        }),
        "haproxy does not serve"
    );
    let mut load = load(front_addr, 8);
    std::thread::sleep(Duration::from_millis(1000));
    a.upgrade();
    std::thread::sleep(Duration::from_millis(700));
    let _ = b.kill();
    let _ = b.wait();
    std::thread::sleep(Duration::from_millis(700));
    b = plain_server(&b_addr);
    std::thread::sleep(Duration::from_millis(700));
    a.upgrade();
    let mut json = String::new();
    load.stdout
        .take()
        .unwrap()
        .read_to_string(&mut json)
        .unwrap();
    assert!(load.wait().unwrap().success(), "evnet load failed: {json}");
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let _ = b.kill();
    let _ = b.wait();
    let errors = &json[json.find("\"errors\"").expect("errors in report")..];
    assert_eq!(json_u64(errors, "total"), 0, "failed requests: {json}");
    assert_eq!(json_u64(&json, "non_success"), 0, "non-2xx: {json}");
    assert!(json_u64(&json, "requests") > 0, "{json}");
}
