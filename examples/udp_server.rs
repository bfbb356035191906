//! A UDP server: a [`DatagramHandler`] gets each datagram with its sender
//! and replies through the socket it came in on. This one numbers every
//! sender's datagrams and answers `<n> <DATAGRAM IN UPPER CASE>`.
//!
//! ```sh
//! cargo run --example udp_server
//! ```
//! It serves on 127.0.0.1 (a port the kernel picks) on two loops, each with
//! its own SO_REUSEPORT socket, sends a few datagrams from a plain
//! `std::net::UdpSocket`, prints the replies and exits.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use evnet::net::udp::{DatagramHandler, UdpServerBuilder, UdpSock};

/// One per socket, so one per loop: the kernel sends one peer's datagrams to
/// one socket, and the counts need no lock.
#[derive(Default)]
struct Numbered {
    /// Datagrams seen per sender. UDP senders are not authenticated: a real
    /// server bounds this map (or expires entries on a timer).
    seen: HashMap<SocketAddr, u64>,
}

impl DatagramHandler for Numbered {
    fn on_datagram(&mut self, sock: &mut UdpSock<'_>, peer: SocketAddr, data: &[u8]) {
        let n = self.seen.entry(peer).or_default();
        *n += 1;
        let mut reply = format!("{n} ").into_bytes();
        reply.extend(data.to_ascii_uppercase());
        // Sent at once, or queued in order if the socket buffer is full;
        // an error means this reply can never go (e.g. too large).
        if let Err(e) = sock.send_to(peer, &reply) {
            eprintln!("reply to {peer}: {e}");
        }
    }
}

fn main() -> io::Result<()> {
    let server = UdpServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(2)
        .start(|_loop_id| Numbered::default())?;
    let addr = server.local_addr();
    println!("serving on udp {addr}");

    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.connect(addr)?;
    // Loopback does not drop datagrams, but a client never waits forever.
    client.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 1500];
    for (i, msg) in ["hello", "udp", "world"].into_iter().enumerate() {
        client.send(msg.as_bytes())?;
        let n = client.recv(&mut buf)?;
        let reply = String::from_utf8_lossy(&buf[..n]);
        println!("{msg} -> {reply}");
        assert_eq!(reply, format!("{} {}", i + 1, msg.to_uppercase()));
    }
    server.shutdown()
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example (it checks the replies it prints).
    #[test]
    fn runs() {
        super::main().unwrap();
    }
}
