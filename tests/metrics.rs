//! Metrics of the `evnet` servers read by the tools operators use:
//! `promtool check metrics` on `/metrics`, Prometheus' nginx exporter on
//! `/stub_status`, headless Chromium on the live status page. A missing
//! tool fails the test with a message (`.ci/run` installs them).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use util::{wait_until, Child};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Run `prog args` under `timeout(1)`, `stdin` fed to it; panics if the
/// tool is missing or hangs.
fn run(secs: u32, prog: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(secs.to_string()).arg(prog).args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(127),
        "{prog} is not installed (.ci/run installs it)"
    );
    assert_ne!(out.status.code(), Some(124), "{prog} timed out");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("evnet-metrics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One request on a new connection (`Connection: close`); returns the
/// status code and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = text(&out);
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// The value of the sample `series` (name with labels, exactly as written)
/// in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

fn promtool_accepts(metrics: &str) {
    let out = run(
        20,
        "promtool",
        &["check", "metrics"],
        Some(metrics.as_bytes()),
    );
    assert!(
        out.status.success(),
        "promtool rejected /metrics:\n{}{}\n---\n{metrics}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn promtool_accepts_http_metrics_and_the_counts_are_exact() {
    let s = Child::spawn(&["http", "--addr", "127.0.0.1:0", "--loops", "1"]);
    let a = s.addr;
    for _ in 0..3 {
        assert_eq!(get(a, "/plaintext").0, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(a, "/no-such-route").0, 404);
    }
    // The server closes each connection after its response; wait until
    // all five are counted closed (then the scrape is the only one open).
    let mut metrics = String::new();
    let settled = wait_until(TIMEOUT, || {
        metrics = get(a, "/metrics").1;
        sample(&metrics, "evnet_connections_active") == Some(1.0)
    });
    assert!(settled, "connections never closed:\n{metrics}");
    promtool_accepts(&metrics);
    let n = sample(&metrics, "evnet_connections_accepted_total").unwrap();
    // 5 requests, and one connection per scrape (the last one open).
    let scrapes = n - 5.0;
    assert!(scrapes >= 1.0, "{metrics}");
    let closed: f64 = [
        "peer_closed",
        "reset",
        "local",
        "aborted",
        "idle_timeout",
        "read_timeout",
        "write_timeout",
        "shutdown",
        "protocol",
        "error",
    ]
    .iter()
    .map(|r| {
        sample(
            &metrics,
            &format!("evnet_connections_closed_total{{reason=\"{r}\"}}"),
        )
        .unwrap()
    })
    .sum();
    assert_eq!(closed, n - 1.0, "{metrics}");
    // Earlier scrapes were answered 200; this one is counted once its
    // handler has produced it, so it is not in its own numbers.
    assert_eq!(
        sample(&metrics, "evnet_http_responses_total{class=\"2xx\"}"),
        Some(3.0 + scrapes - 1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "evnet_http_responses_total{class=\"4xx\"}"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "evnet_http_request_duration_seconds_count"),
        Some(5.0 + scrapes - 1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "evnet_http_request_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        Some(5.0 + scrapes - 1.0),
        "{metrics}"
    );
    // Counted when the request starts: this scrape is in it.
    assert_eq!(
        sample(&metrics, "evnet_messages_total"),
        Some(5.0 + scrapes),
        "{metrics}"
    );
    assert!(sample(&metrics, "evnet_tcp_listen_overflows_total").is_some());
    assert!(sample(&metrics, "evnet_tcp_listen_drops_total").is_some());
    assert_eq!(
        sample(&metrics, "evnet_accept_errors_total{error=\"emfile\"}"),
        Some(0.0)
    );
    assert!(
        metrics.contains("evnet_loop_messages_total{loop=\""),
        "{metrics}"
    );
}

#[test]
fn stub_status_has_nginx_format_and_exact_counts() {
    let s = Child::spawn(&["http", "--addr", "127.0.0.1:0", "--loops", "1"]);
    let a = s.addr;
    // Three idle keep-alive connections, each after one request.
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(a).unwrap();
        c.set_read_timeout(Some(TIMEOUT)).unwrap();
        c.write_all(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap();
        assert!(text(&buf[..n]).ends_with("Hello, World!"));
        idle.push(c);
    }
    let (status, body) = get(a, "/stub_status");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "Active connections: 4 \nserver accepts handled requests\n 4 4 4 \nReading: 0 Writing: 0 Waiting: 4 \n"
    );
}

#[test]
fn nginx_exporter_reads_connection_counts_from_stub_status() {
    let s = Child::spawn(&["http", "--addr", "127.0.0.1:0", "--loops", "1"]);
    let a = s.addr;
    let mut idle = Vec::new();
    for _ in 0..5 {
        let c = TcpStream::connect(a).unwrap();
        idle.push(c);
    }
    // The five are open once a request on a sixth connection sees them
    // (one loop serves all, in order of arrival).
    assert!(wait_until(TIMEOUT, || get(a, "/stub_status")
        .1
        .starts_with("Active connections: 6 ")));
    let before = get(a, "/stub_status").1;
    let accepted_before: u64 = before
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let dir = tmp_dir("exporter");
    let sock = dir.join("exporter.sock");
    let mut exporter = Command::new("prometheus-nginx-exporter")
        .arg(format!("-nginx.scrape-uri=http://{a}/stub_status"))
        .arg(format!("-web.listen-address=unix:{}", sock.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prometheus-nginx-exporter is not installed (.ci/run installs it)");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let exporter = Kill(&mut exporter);
    assert!(
        wait_until(TIMEOUT, || sock.exists()),
        "the exporter never listened"
    );
    let out = run(
        20,
        "curl",
        &[
            "-s",
            "--unix-socket",
            sock.to_str().unwrap(),
            "http://x/metrics",
        ],
        None,
    );
    drop(exporter);
    let m = text(&out.stdout);
    assert_eq!(sample(&m, "nginx_up"), Some(1.0), "{m}");
    // The exporter's own connection is open while it scrapes: the five
    // idle ones plus its own. It may have connected once more at start
    // (a check) and reused or replaced that connection: accepted counts
    // what the server saw, and must equal handled.
    assert_eq!(sample(&m, "nginx_connections_active"), Some(6.0), "{m}");
    assert_eq!(sample(&m, "nginx_connections_waiting"), Some(6.0), "{m}");
    assert_eq!(sample(&m, "nginx_connections_reading"), Some(0.0), "{m}");
    let accepted = sample(&m, "nginx_connections_accepted").unwrap();
    assert_eq!(
        sample(&m, "nginx_connections_handled"),
        Some(accepted),
        "{m}"
    );
    assert!(
        accepted as u64 > accepted_before && accepted as u64 <= accepted_before + 2,
        "accepted {accepted}, {accepted_before} before the exporter:\n{m}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(idle);
}

/// The `--metrics-addr` listener's address from a server's banner.
fn metrics_addr(s: &Child) -> SocketAddr {
    let line = s
        .banner
        .lines()
        .find(|l| l.contains(" metrics on http://"))
        .unwrap_or_else(|| panic!("no metrics line in {:?}", s.banner));
    line.split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

#[test]
fn resp_metrics_addr_counts_commands() {
    let s = Child::spawn(&[
        "resp",
        "--addr",
        "127.0.0.1:0",
        "--loops",
        "1",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let m = metrics_addr(&s);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    // Three commands in one write (pipelined).
    c.write_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        .unwrap();
    let want = b"+PONG\r\n+OK\r\n$1\r\nv\r\n";
    let mut got = vec![0u8; want.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, want);
    let metrics = get(m, "/metrics").1;
    promtool_accepts(&metrics);
    assert_eq!(
        sample(&metrics, "evnet_messages_total"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "evnet_connections_active"),
        Some(1.0),
        "{metrics}"
    );
    let (status, stub) = get(m, "/stub_status");
    assert_eq!(status, 200);
    assert!(stub.contains("\n 1 1 3 \n"), "{stub}");
}

#[test]
fn echo_metrics_addr_counts_the_echoed_bytes() {
    let s = Child::spawn(&[
        "echo",
        "--addr",
        "127.0.0.1:0",
        "--loops",
        "1",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let m = metrics_addr(&s);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    let msg = [7u8; 1000];
    c.write_all(&msg).unwrap();
    let mut back = [0u8; 1000];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    // The loop counts bytes sent after send(2) returns, which may be just
    // after the client has them: wait for the count.
    let mut metrics = String::new();
    assert!(
        wait_until(TIMEOUT, || {
            metrics = get(m, "/metrics").1;
            sample(&metrics, "evnet_sent_bytes_total") == Some(1000.0)
        }),
        "{metrics}"
    );
    promtool_accepts(&metrics);
    // The metrics listener runs on its own loop: only the echo server's
    // loops are counted.
    assert_eq!(
        sample(&metrics, "evnet_connections_active"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "evnet_connections_accepted_total"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "evnet_received_bytes_total"), Some(1000.0));
    assert!(!metrics.contains("evnet_http_"), "{metrics}");
    drop(c);
    assert!(wait_until(TIMEOUT, || {
        let m = get(m, "/metrics").1;
        sample(&m, "evnet_connections_closed_total{reason=\"peer_closed\"}") == Some(1.0)
            && sample(&m, "evnet_connections_active") == Some(0.0)
    }));
    let (status, page) = get(m, "/status");
    assert_eq!(status, 200);
    assert!(page.contains("<svg"), "{page}");
}

/// Screenshot `url` with headless Chromium into `png`, with every name but
/// 127.0.0.1 resolving to nothing and every proxied request sent to a dead
/// port: only loopback (which Chromium never proxies) can answer, so a
/// page that draws took nothing from off the machine.
fn screenshot(url: &str, png: &Path, profile: &Path) -> Output {
    run(
        90,
        "chromium",
        &[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            // Let the page poll its JSON a few times before the shot.
            "--virtual-time-budget=6000",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", png.display()),
            "--window-size=1000,800",
            url,
        ],
        None,
    )
}

#[test]
fn status_page_draws_charts_under_load_from_the_server_alone() {
    let s = Child::spawn(&["http", "--addr", "127.0.0.1:0", "--loops", "1"]);
    let a = s.addr;
    let dir = tmp_dir("status");
    // Load while the pages are shot (bounded: wrk stops by itself).
    let mut wrk = Command::new("wrk")
        .args(["-t1", "-c4", "-d30s", &format!("http://{a}/plaintext")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wrk is not installed (.ci/run installs it)");
    let before = get(a, "/status.json").1;
    let shots: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            let png = dir.join(format!("status{i}.png"));
            let out = screenshot(
                &format!("http://{a}/status"),
                &png,
                &dir.join(format!("profile{i}")),
            );
            std::fs::read(&png).unwrap_or_else(|_| panic!("no screenshot: {}", text(&out.stderr)))
        })
        .collect();
    let blank = dir.join("blank.png");
    let out = screenshot("about:blank", &blank, &dir.join("profile-blank"));
    let blank = std::fs::read(&blank)
        .unwrap_or_else(|_| panic!("no blank screenshot: {}", text(&out.stderr)));
    let _ = wrk.kill();
    let _ = wrk.wait();
    let after = get(a, "/status.json").1;
    for shot in &shots {
        assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        assert!(
            shot.len() > blank.len() * 3,
            "the status page looks blank: {} bytes vs about:blank {}",
            shot.len(),
            blank.len()
        );
    }
    assert_ne!(shots[0], shots[1], "the charts did not move");
    // The page fetched its JSON from the server (nothing else could answer).
    let requests = |j: &str| -> u64 {
        j.split("\"requests\":")
            .nth(1)
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(requests(&after) > requests(&before), "{before}\n{after}");
    // The server kept a sample a second for pages opened later.
    let history = get(a, "/status.json?history").1;
    assert!(
        history.contains(",\"history\":[{\"uptime_secs\":"),
        "{history}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
