//! The KCP commands of the `evnet` binary: `kcp-echo` serves, `client
//! --kcp` echoes stdin through it and exits 0, `load kcp` reports every
//! message answered.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `evnet kcp-echo` on a free port; killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(mode: &str) -> Server {
    // Port 0: the server prints the port it got.
    let mut child = Command::new(env!("CARGO_BIN_EXE_evnet"))
        .args(["kcp-echo", "--addr", "127.0.0.1:0", "--mode", mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("kcp-echo said {line:?}"))
        .to_string();
    Server { child, addr }
}

fn wait_output(child: Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(start.elapsed() < limit, "took {:?}", start.elapsed());
    out
}

#[test]
fn client_kcp_echoes_stdin_through_kcp_echo_and_exits_zero() {
    for mode in ["normal", "fast"] {
        let s = start(mode);
        let mut c = Command::new(env!("CARGO_BIN_EXE_evnet"))
            .args(["client", "--kcp", "--mode", mode, &s.addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let text: String = (0..200).map(|i| format!("line {i} {mode}\n")).collect();
        c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = wait_output(c, Duration::from_secs(20));
        assert!(out.status.success(), "{mode}: {}", out.status);
        assert_eq!(String::from_utf8(out.stdout).unwrap(), text, "{mode}");
    }
}

#[test]
fn load_kcp_reports_every_message_answered() {
    let s = start("fast");
    let out = Command::new(env!("CARGO_BIN_EXE_evnet"))
        .args(["load", "kcp", &s.addr, "-c", "4", "-d", "1s", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(json.contains("\"total\":0"), "errors in {json}");
    let requests: u64 = json
        .split("\"requests\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in {json}"));
    assert!(requests > 0, "{json}");
}
