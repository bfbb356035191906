//! Wire compatibility with the reference C KCP (ikcp.c): a client built on
//! it talks to evnet's KCP echo server, and evnet's `KcpClient` talks to an
//! echo server built on it, in normal and fast mode; every byte comes back
//! in order.
//!
//! ikcp.c comes from the PyPI package `kcp` (its source distribution ships
//! it); `.ci/run` unpacks it under `target/kcp-ref/`, or point `KCP_REF_SRC`
//! at the folder holding ikcp.c. The peer program is tests/c/kcp_ref.c.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use evnet::echo::Echo;
use evnet::kcp::{KcpClient, KcpConfig, KcpMode};
use evnet::net::ServerBuilder;

/// Build tests/c/kcp_ref.c against ikcp.c, once per test process (the
/// tests run in parallel and would otherwise write one binary at once);
/// None (with the reason printed) if the reference source is not there.
fn reference() -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let r = BUILT.get_or_init(build_reference).clone();
    if r.is_none() {
        eprintln!("skipped: the reference KCP peer could not be built (reason printed once above)");
    }
    r
}

fn build_reference() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let src = std::env::var_os("KCP_REF_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/kcp-ref/kcp-0.1.6/kcp"));
    if !src.join("ikcp.c").exists() {
        eprintln!(
            "skipped: no reference ikcp.c in {} (run .ci/run's kcp-ref step or set KCP_REF_SRC)",
            src.display()
        );
        return None;
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kcp_ref");
    let status = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(root.join("tests/c/kcp_ref.c"))
        .arg(src.join("ikcp.c"))
        .arg("-I")
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "building the reference peer failed");
    Some(out)
}

fn cfg(mode: KcpMode) -> KcpConfig {
    KcpConfig {
        mode,
        ..KcpConfig::default()
    }
}

fn wait(mut child: Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("reference peer still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pattern(i: usize) -> u8 {
    ((i * 131 + (i >> 8)) & 0xff) as u8
}

fn c_client_to_evnet(mode: KcpMode, name: &str) {
    let Some(peer) = reference() else { return };
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .loops(1)
        .kcp(cfg(mode))
        .start(|_| Echo)
        .unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let child = Command::new(&peer)
        .args(["client", &port, "77", name, "2000000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait(child, Duration::from_secs(90));
    assert!(st.success(), "reference client: {st}");
    server.shutdown().unwrap();
}

fn evnet_client_to_c(mode: KcpMode, name: &str) {
    let Some(peer) = reference() else { return };
    let mut child = Command::new(&peer)
        .args(["server", "78", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("reference server said {line:?}"));
    let mut c =
        KcpClient::connect(format!("127.0.0.1:{port}").parse().unwrap(), 78, &cfg(mode)).unwrap();
    let total = 2_000_000;
    let data: Vec<u8> = (0..total).map(pattern).collect();
    for chunk in data.chunks(60_000) {
        c.send(chunk).unwrap();
        // Keep the queue near the window, as a real sender would.
        while c.waiting() > 512 {
            c.poll(Duration::from_millis(5)).unwrap();
        }
    }
    c.wait_for(total, Duration::from_secs(60)).unwrap();
    assert_eq!(c.received().len(), total);
    assert!(*c.received() == data, "echo differs");
    drop(child.stdin.take());
    let st = wait(child, Duration::from_secs(10));
    assert!(st.success(), "reference server: {st}");
}

#[test]
fn reference_client_talks_to_evnet_normal_mode() {
    c_client_to_evnet(KcpMode::Normal, "normal");
}

#[test]
fn reference_client_talks_to_evnet_fast_mode() {
    c_client_to_evnet(KcpMode::Fast, "fast");
}

#[test]
fn evnet_client_talks_to_reference_server_normal_mode() {
    evnet_client_to_c(KcpMode::Normal, "normal");
}

#[test]
fn evnet_client_talks_to_reference_server_fast_mode() {
    evnet_client_to_c(KcpMode::Fast, "fast");
}
