//! Batched UDP (recvmmsg/sendmmsg, GRO/GSO) against one datagram per call:
//! 100,000 datagrams of mixed sizes, from bursts of small ones that the
//! client sends as GSO messages (so a GRO-enabled server gets them
//! coalesced and must cut them apart) up to the 65,507-byte maximum, all
//! come back whole, each exactly once, with exact boundaries.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use evnet::net::udp::{DatagramHandler, UdpBatch, UdpServerBuilder, UdpSock};
use evnet::sys::udp::{probe_udp_segment, send_batch, OutMsg};
use rand::{Rng, SeedableRng};

const MAX_DATAGRAM: usize = 65_507;
const TOTAL: u32 = 100_000;

/// Datagram `seq`: 4-byte sequence number, then bytes derived from it.
fn fill(seq: u32, d: &mut [u8]) {
    d[..4].copy_from_slice(&seq.to_be_bytes());
    let mut x = seq.wrapping_mul(2_654_435_761) | 1;
    for b in &mut d[4..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
}

fn check(d: &[u8], outstanding: &mut HashMap<u32, usize>) {
    assert!(d.len() >= 4, "runt datagram of {} bytes", d.len());
    let seq = u32::from_be_bytes(d[..4].try_into().unwrap());
    let len = outstanding
        .remove(&seq)
        .unwrap_or_else(|| panic!("unexpected or duplicate datagram {seq}"));
    assert_eq!(d.len(), len, "datagram {seq}: boundaries moved");
    let mut want = vec![0u8; len];
    fill(seq, &mut want);
    assert!(d == want, "datagram {seq} corrupted");
}

/// Echo that publishes the socket's offload counters.
struct Echo(Arc<[AtomicU64; 2]>);

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, sock: &mut UdpSock<'_>, peer: std::net::SocketAddr, data: &[u8]) {
        sock.send_to(peer, data).unwrap();
        let (gro, gso) = sock.offloads();
        self.0[0].store(gro, Ordering::Relaxed);
        self.0[1].store(gso, Ordering::Relaxed);
    }
}

fn run(batch: UdpBatch) {
    let counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let c2 = counters.clone();
    let server = UdpServerBuilder::new()
        .bind("127.0.0.1:0".parse().unwrap())
        .loops(1)
        .batch(batch)
        .start(move |_| Echo(c2.clone()))
        .unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&sock)
        .set_recv_buffer_size(8 << 20)
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = server.local_addr();
    // The client sends bursts of small datagrams as one GSO message when it
    // can: that is what makes the server's GRO coalesce them.
    let gso = batch == UdpBatch::Auto && probe_udp_segment(sock.as_raw_fd());
    let gso_client = gso;
    eprintln!("{batch:?}: client GSO {gso}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut outstanding: HashMap<u32, usize> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let mut burst = vec![0u8; 64 * 1400];
    let (mut next, mut received) = (0u32, 0u32);
    let mut largest = 0;
    while received < TOTAL {
        // A burst: up to 64 datagrams of one small size, or one large one.
        if outstanding.is_empty() {
            if rng.gen_ratio(1, 20) || next % 1000 == 999 {
                let len = if next % 1000 == 999 {
                    MAX_DATAGRAM
                } else {
                    rng.gen_range(1500..=MAX_DATAGRAM)
                };
                let mut d = vec![0u8; len];
                fill(next, &mut d);
                sock.send_to(&d, to).unwrap();
                outstanding.insert(next, len);
                next += 1;
            } else {
                let seg = rng.gen_range(4..=1400usize);
                // One GSO message must fit one IP packet: 65,000 bytes at most.
                let count = rng
                    .gen_range(1..=64usize)
                    .min(65_000 / seg)
                    .min((TOTAL - next) as usize);
                for i in 0..count {
                    fill(next + i as u32, &mut burst[i * seg..(i + 1) * seg]);
                    outstanding.insert(next + i as u32, seg);
                }
                let data = &burst[..count * seg];
                if gso {
                    let m = OutMsg {
                        peer: Some(to),
                        data,
                        segment: seg,
                    };
                    assert_eq!(send_batch(sock.as_raw_fd(), &[m]).unwrap(), 1);
                } else {
                    for d in data.chunks(seg) {
                        sock.send_to(d, to).unwrap();
                    }
                }
                next += count as u32;
            }
        }
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => panic!(
                "{batch:?}: {e} waiting for {} datagrams ({received} back so far)",
                outstanding.len()
            ),
        };
        largest = largest.max(n);
        check(&buf[..n], &mut outstanding);
        received += 1;
    }
    assert!(outstanding.is_empty());
    assert_eq!(
        largest, MAX_DATAGRAM,
        "the largest datagram came back whole"
    );
    let (gro, gso) = (
        counters[0].load(Ordering::Relaxed),
        counters[1].load(Ordering::Relaxed),
    );
    eprintln!("{batch:?}: server GRO buffers {gro}, GSO messages {gso}");
    if gso_client {
        // The client's GSO bursts reach a GRO socket whole: the server
        // must have cut them apart, and echoed bursts as GSO messages.
        assert!(gro > 0, "GRO never engaged");
        assert!(gso > 0, "GSO never engaged");
    } else {
        assert_eq!((gro, gso), (0, 0), "offloads used in {batch:?} mode");
    }
    server.shutdown().unwrap();
}

#[test]
fn hundred_thousand_datagrams_exact_with_gso_and_gro() {
    run(UdpBatch::Auto);
}

#[test]
fn hundred_thousand_datagrams_exact_with_mmsg_only() {
    run(UdpBatch::Mmsg);
}

#[test]
fn hundred_thousand_datagrams_exact_one_per_syscall() {
    run(UdpBatch::Off);
}
