//! UDP echo over loopback: datagrams of random sizes up to the IPv4 maximum
//! come back whole and intact, received on a loop through `UdpClient`.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use evnet::net::udp::{DatagramHandler, UdpClient, UdpEcho, UdpServerBuilder, UdpSock};
use evnet::reactor::{EventLoop, LoopConfig, LoopHandle};
use rand::{Rng, SeedableRng};

/// Largest UDP payload over IPv4: 65,535 - 20 (IP) - 8 (UDP).
const MAX_DATAGRAM: usize = 65_507;

struct Forward(mpsc::Sender<Vec<u8>>);

impl DatagramHandler for Forward {
    fn on_datagram(&mut self, _sock: &mut UdpSock<'_>, _peer: SocketAddr, data: &[u8]) {
        let _ = self.0.send(data.to_vec());
    }
}

/// A loop on its own thread; stopped on drop.
struct LoopThread {
    handle: LoopHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoopThread {
    fn start() -> LoopThread {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut el = EventLoop::new(LoopConfig::default()).unwrap();
            tx.send(el.handle()).unwrap();
            el.run().unwrap();
        });
        let handle = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        LoopThread {
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Datagram `seq`: 4-byte sequence number, then bytes from a PRNG seeded by it.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(seq) ^ 0x5eed);
    let mut d = vec![0u8; len];
    d[..4].copy_from_slice(&seq.to_be_bytes());
    rng.fill(&mut d[4..]);
    d
}

#[test]
fn ten_thousand_datagrams_echo_intact_without_loss() {
    let server = UdpServerBuilder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .loops(2)
        .start(|_| UdpEcho)
        .unwrap();
    let lt = LoopThread::start();
    let (tx, rx) = mpsc::channel();
    let client = UdpClient::connect(&lt.handle, server.local_addr(), Forward(tx)).unwrap();

    const TOTAL: u32 = 10_000;
    // A bounded window keeps what is in flight well under the 4 MiB socket
    // buffers, so a drop would be a bug, not an overrun.
    const WINDOW_BYTES: usize = 1 << 20;
    const WINDOW_COUNT: usize = 32;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut outstanding: HashMap<u32, usize> = HashMap::new();
    let mut in_flight = 0usize;
    let (mut next, mut received, mut lost, mut bytes) = (0u32, 0u32, 0u32, 0u64);
    let mut sizes_seen_max = 0;
    while received + lost < TOTAL {
        while next < TOTAL && outstanding.len() < WINDOW_COUNT && in_flight < WINDOW_BYTES {
            // Every few datagrams use the extremes: the smallest and the largest.
            let len = match next % 97 {
                0 => MAX_DATAGRAM,
                1 => 4,
                _ => rng.gen_range(4..=MAX_DATAGRAM),
            };
            let d = payload(next, len);
            assert_eq!(client.send(&d).unwrap(), len);
            outstanding.insert(next, len);
            in_flight += len;
            next += 1;
        }
        match rx.recv_timeout(Duration::from_secs(3)) {
            Ok(d) => {
                assert!(d.len() >= 4, "runt datagram of {} bytes", d.len());
                let seq = u32::from_be_bytes(d[..4].try_into().unwrap());
                let len = outstanding
                    .remove(&seq)
                    .unwrap_or_else(|| panic!("unexpected or duplicate datagram {seq}"));
                assert_eq!(d.len(), len, "datagram {seq} truncated or padded");
                assert!(d == payload(seq, len), "datagram {seq} corrupted");
                in_flight -= len;
                received += 1;
                bytes += len as u64;
                sizes_seen_max = sizes_seen_max.max(len);
            }
            Err(_) => {
                // Nothing for 3 s: whatever is outstanding is lost. Count it
                // and go on, so the report says how much.
                lost += outstanding.len() as u32;
                outstanding.clear();
                in_flight = 0;
            }
        }
    }
    eprintln!(
        "udp echo: {received} received, {lost} lost, {bytes} bytes, largest {sizes_seen_max}"
    );
    assert_eq!(lost, 0, "{lost} of {TOTAL} datagrams lost");
    assert_eq!(received, TOTAL);
    assert_eq!(
        sizes_seen_max, MAX_DATAGRAM,
        "the largest datagram came back whole"
    );
    drop(client);
    server.shutdown().unwrap();
}

#[test]
fn several_loops_serve_several_peers() {
    let server = UdpServerBuilder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .loops(3)
        .start(|_| UdpEcho)
        .unwrap();
    assert_eq!(server.loops().len(), 3);
    let peers: Vec<UdpSocket> = (0..8)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for (i, p) in peers.iter().enumerate() {
        p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        p.connect(server.local_addr()).unwrap();
        let msg = format!("hello from {i}");
        p.send(msg.as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        let n = p.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg.as_bytes());
    }
}

#[test]
fn oversized_datagram_is_refused_not_truncated() {
    let server = UdpServerBuilder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .loops(1)
        .start(|_| UdpEcho)
        .unwrap();
    let lt = LoopThread::start();
    let (tx, rx) = mpsc::channel();
    let client = UdpClient::connect(&lt.handle, server.local_addr(), Forward(tx)).unwrap();
    let err = client.send(&vec![0u8; MAX_DATAGRAM + 1]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE), "{err}");
    client.send(b"still fine").unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        b"still fine"
    );
}
