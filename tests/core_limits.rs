//! Resource limits: running out of fds, and select's FD_SETSIZE, against a
//! child `evnet` process so its fd table is its own.

mod util;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::*;

#[test]
fn emfile_flood_does_not_spin_and_recovers_when_fds_free() {
    evnet::sys::raise_nofile_limit().unwrap();
    // 64 fds: the server's own (listener, epoll, eventfd, signalfd, stdio...)
    // leave room for a few dozen connections.
    let mut server = Child::spawn(&[
        "echo",
        "--addr",
        "127.0.0.1:0",
        "--loops",
        "0",
        "--max-fds",
        "64",
        // This test is about running out of fds, not about the cap.
        "--max-connections",
        "unlimited",
    ]);
    let addr = server.addr;

    // Connect far more clients than the server has fds. The kernel completes
    // the handshakes into the accept queue whether or not we accept.
    let mut flood: Vec<TcpStream> = (0..300).map(|_| connect(addr)).collect();
    // The server accepts until EMFILE. Wait until it has stopped growing: the
    // first connections echo, later ones wait in the queue.
    let mut served = 0;
    for s in flood.iter_mut().take(10) {
        roundtrip(s, b"early");
        served += 1;
    }
    assert_eq!(served, 10);

    // Saturated now. Over a second, a spinning accept loop would use ~100% of
    // a core; a paused one next to nothing.
    let t0 = cpu_ticks(server.pid());
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid()) - t0;
    let ticks_per_sec = 100; // USER_HZ
    let share = used as f64 / (wall.elapsed().as_secs_f64() * ticks_per_sec as f64);
    assert!(
        share < 0.2,
        "server used {:.0}% CPU while out of fds",
        share * 100.0
    );
    assert!(server.is_alive(), "server died under the flood");

    // Still responsive on connections it already holds.
    roundtrip(&mut flood[0], b"still here");

    // Free fds: close the early connections. The server accepts again by
    // itself and serves one of the queued connections.
    // Keep only the last few queued clients; the server can hold all of them.
    let mut waiting = flood.split_off(295);
    drop(flood);
    let last = waiting.last_mut().unwrap();
    roundtrip(last, b"accepted after fds freed");
    assert!(server.is_alive());
}

#[test]
fn select_refuses_connections_past_fd_setsize_without_crashing() {
    evnet::sys::raise_nofile_limit().unwrap();
    let mut server = Child::spawn(&[
        "echo",
        "--addr",
        "127.0.0.1:0",
        "--loops",
        "0",
        "--poller",
        "select",
    ]);
    let addr = server.addr;
    let mut held: Vec<TcpStream> = Vec::new();
    // Fill the server's fd numbers up to FD_SETSIZE (1024) and beyond.
    for i in 0..1100 {
        held.push(connect(addr));
        if i % 100 == 0 {
            roundtrip(held.last_mut().unwrap(), b"ping");
        }
    }
    // Connections whose fd would be >= 1024 are closed at once with an error
    // logged; the ones below keep working and the process lives.
    let mut refused = 0;
    for s in held.iter_mut().skip(1050) {
        use std::io::{Read, Write};
        let _ = s.write_all(b"x");
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) | Err(_) => refused += 1,
            Ok(_) => {}
        }
    }
    assert_eq!(refused, 50, "connections past FD_SETSIZE must be refused");
    roundtrip(&mut held[5], b"below the limit still served");
    assert!(server.is_alive(), "select server crashed");
}
