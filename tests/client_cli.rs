//! `evnet client` as a child process against an in-process echo server.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use evnet::echo::Echo;
use evnet::net::ServerBuilder;

const LIMIT: Duration = Duration::from_secs(20);

/// Run `evnet client` with `input` on stdin (then EOF); its exit status and stdout.
fn run_client(args: &[&str], input: &[u8]) -> (ExitStatus, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evnet"))
        .arg("client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evnet client");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Writing may fail if the client exits first (refused): that is the test's business.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("evnet client did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    (status, out.join().unwrap(), err.join().unwrap())
}

#[test]
fn lines_round_trip_and_eof_exits_zero() {
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(|_| Echo)
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let mut input = Vec::new();
    for i in 0..50 {
        input.extend_from_slice(format!("line {i}: {}\n", "x".repeat(i * 7)).as_bytes());
    }
    input.extend_from_slice(b"last line without newline");
    let (status, out, err) = run_client(&[&addr], &input);
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(
        out == input,
        "stdout differs: {:?}",
        String::from_utf8_lossy(&out)
    );
    server.shutdown().unwrap();
}

#[test]
fn refused_exits_one() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (status, out, err) =
        run_client(&["--connect-timeout", "2s", &port.to_string()], b"hello\n");
    assert_eq!(status.code(), Some(1), "stderr: {err}");
    assert!(out.is_empty());
    assert!(err.contains("refused"), "stderr: {err}");
}
