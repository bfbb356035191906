//! Feeds arbitrary bytes to KCP engines as a peer's datagrams: the input is
//! cut into datagrams by 2-byte little-endian length prefixes (a short tail
//! is the last datagram), each goes to an engine in stream mode and one in
//! message mode, both with data of their own in flight, with the clock
//! advancing between datagrams. Checks that nothing panics, that every
//! datagram an engine sends fits its MTU and parses as whole segments of
//! its conversation, that received data never exceeds what the input
//! carried, and that the engines' queues stay within their windows.
//!
//! Shared, not copied: the `kcp_input` fuzz target and the main crate's
//! `tests/fuzz_replay.rs` both include this file with `#[path]`.

use evnet::kcp::segment::{Header, OVERHEAD};
use evnet::kcp::Kcp;

const CONV: u32 = 0x0102_0304;

fn datagrams(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn check_output(k: &mut Kcp, now: u32) {
    let mtu = k.mss() + OVERHEAD;
    k.update(now, &mut |d| {
        assert!(
            d.len() <= mtu,
            "datagram of {} bytes over MTU {mtu}",
            d.len()
        );
        let mut rest = d;
        while !rest.is_empty() {
            let (h, data) = Header::decode(rest).expect("our own segments parse");
            assert_eq!(h.conv, CONV);
            rest = &rest[OVERHEAD + data.len()..];
        }
    });
}

/// Runs the check on one input.
pub fn check(data: &[u8]) {
    for stream in [true, false] {
        let mut k = Kcp::new(CONV);
        k.set_stream(stream);
        k.set_nodelay(1, 10, 2, true);
        k.send(&[9u8; 3000]).expect("fits the window");
        let mut now = 0u32;
        let mut got = Vec::new();
        let dgs = datagrams(data);
        for d in &dgs {
            let _ = k.input(d);
            while k.recv(&mut got).is_some() {}
            now = now.wrapping_add(7);
            check_output(&mut k, now);
        }
        assert!(got.len() <= data.len(), "received more than the input held");
        assert!(k.waiting() <= 3, "our 3000 bytes are at most 3 segments");
    }
}
