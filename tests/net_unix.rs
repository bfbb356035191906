//! Unix-domain listeners: echo integrity over a path, stale and live socket
//! files, permissions, the abstract namespace.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use evnet::echo::Echo;
use evnet::net::{Addr, Server, ServerBuilder};
use rand::{Rng, SeedableRng};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "evnet-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn echo_server(addr: Addr, loops: usize) -> std::io::Result<Server> {
    ServerBuilder::new().bind(addr).loops(loops).start(|_| Echo)
}

fn unix_connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn round_trip(mut s: UnixStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// Write `data` from one thread while reading it back on another; every
/// byte must come back in order.
fn echo_integrity(s: UnixStream, data: Vec<u8>) {
    let mut w = s.try_clone().unwrap();
    let expect = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&data).unwrap());
    let mut r = s;
    let mut got = vec![0u8; expect.len()];
    r.read_exact(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == expect, "echoed bytes differ");
}

#[test]
fn echo_over_a_unix_path_keeps_every_byte_in_order() {
    let dir = TempDir::new("unix-echo");
    let path = dir.join("echo.sock");
    let server = echo_server(Addr::Unix(path.clone()), 2).unwrap();
    assert_eq!(server.addrs(), &[Addr::Unix(path.clone())]);
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "default socket file mode"
    );

    let workers: Vec<_> = (0..6u64)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(i);
                for _ in 0..4 {
                    let len = rng.gen_range(1..=1 << 20);
                    let mut data = vec![0u8; len];
                    rng.fill(&mut data[..]);
                    echo_integrity(unix_connect(&path), data);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    server.shutdown().unwrap();
    assert!(!path.exists(), "socket file removed on shutdown");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("unix-stale");
    let path = dir.join("stale.sock");
    // Bound and dropped: the file stays, nobody listens.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server =
        echo_server(Addr::Unix(path.clone()), 1).expect("a stale file does not block the bind");
    round_trip(unix_connect(&path), b"after stale");
    server.shutdown().unwrap();
}

#[test]
fn a_live_socket_is_never_taken_over() {
    let dir = TempDir::new("unix-live");
    let path = dir.join("live.sock");
    let first = echo_server(Addr::Unix(path.clone()), 1).unwrap();
    let err = match echo_server(Addr::Unix(path.clone()), 1) {
        Ok(_) => panic!("second server bound a live socket path"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(
        err.to_string().contains("another server is listening"),
        "{err}"
    );
    // The first keeps its file and keeps serving.
    assert!(path.exists());
    round_trip(unix_connect(&path), b"first still serves");
    first.shutdown().unwrap();
}

#[test]
fn a_regular_file_is_left_alone() {
    let dir = TempDir::new("unix-file");
    let path = dir.join("data.txt");
    std::fs::write(&path, b"precious").unwrap();
    let err = echo_server(Addr::Unix(path.clone()), 1)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn socket_file_mode_is_configurable() {
    let dir = TempDir::new("unix-mode");
    let path = dir.join("mode.sock");
    let server = ServerBuilder::new()
        .bind(Addr::Unix(path.clone()))
        .loops(1)
        .unix_mode(0o600)
        .start(|_| Echo)
        .unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    server.shutdown().unwrap();
}

#[test]
fn reuseport_mode_serves_a_unix_path_from_every_loop() {
    let dir = TempDir::new("unix-reuseport");
    let path = dir.join("rp.sock");
    let server = ServerBuilder::new()
        .bind(Addr::Unix(path.clone()))
        .loops(3)
        .accept_mode(evnet::net::AcceptMode::ReusePort)
        .start(|_| Echo)
        .unwrap();
    for i in 0..10u8 {
        round_trip(unix_connect(&path), &[i; 100]);
    }
    server.shutdown().unwrap();
}

#[test]
fn abstract_address_round_trip() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!(
        "evnet-test-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let addr = Addr::parse(&format!("unix:@{name}")).unwrap();
    assert_eq!(addr, Addr::Abstract(name.as_bytes().to_vec()));
    let server = echo_server(addr.clone(), 1).unwrap();
    assert_eq!(server.addrs(), &[addr]);
    let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let s = UnixStream::connect_addr(&sa).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    round_trip(s.try_clone().unwrap(), b"abstract hello");
    let mut data = vec![0u8; 300_000];
    rand::rngs::StdRng::seed_from_u64(7).fill(&mut data[..]);
    echo_integrity(s, data);
    server.shutdown().unwrap();
}
