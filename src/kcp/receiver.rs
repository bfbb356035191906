//! The KCP receiver: a KCP server's UDP socket on one loop, what `accept`
//! is to TCP. A well-formed PUSH from a peer without a session opens one:
//! a new UDP socket bound to the server's address and connected to the
//! peer. The kernel hands that peer's later datagrams to the connected
//! socket (it matches the whole address pair, this one only the port), so
//! the session is a connection of its own, on the KCP path
//! (`net::conn::path::kcp`), with the handler API of a TCP connection.
//!
//! Datagrams that still reach this socket for a live session (queued
//! before its socket was connected) are passed on to it. Anything else
//! that is not a PUSH is dropped: KCP has no handshake, and only data may
//! start a conversation.
//!
//! The session table is the server's connection cap: at the cap, a new
//! peer takes the place of the session idle longest among the next
//! [`EVICT_SCAN`] (round robin) if that one has been silent
//! [`EVICT_IDLE`] or more; otherwise its datagram is dropped.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

use super::segment::{Cmd, Header};
use super::KcpConfig;
use crate::net::limit::ConnLimit;
use crate::poller::Token;
use crate::sys::udp::RecvBatch;

/// Slots of `net::metrics::KCP_DROPPED`.
pub(crate) const BAD_DATAGRAM: usize = 0;
pub(crate) const REFUSED_FULL: usize = 1;
pub(crate) const EVICTED: usize = 2;

/// Sessions looked at for eviction when the table is full.
pub(crate) const EVICT_SCAN: usize = 16;
/// A session must have been silent this long to be evicted for a new one.
pub(crate) const EVICT_IDLE: Duration = Duration::from_secs(1);
/// recvmmsg calls per readable event before the rest waits a turn.
pub(crate) const READ_ROUNDS: usize = 8;
/// Datagram slots per recvmmsg, and their size (a KCP datagram is at most
/// the peer's MTU; anything longer is cut and then refused as malformed).
const SLOTS: usize = 32;
const SLOT_LEN: usize = 64 * 1024;

/// One loop's KCP socket and what it knows of the sessions it opened.
pub(crate) struct Receiver {
    pub(crate) fd: Arc<OwnedFd>,
    pub(crate) token: Token,
    /// The address sessions' sockets bind to.
    pub(crate) local: SocketAddr,
    pub(crate) cfg: KcpConfig,
    pub(crate) limit: Option<Arc<ConnLimit>>,
    /// Taken out while its datagrams are handled.
    pub(crate) batch: Option<Box<RecvBatch>>,
    /// Live sessions by peer (a closed one's entry goes when it is next
    /// looked up, or in a sweep once the map outgrows the sessions).
    pub(crate) by_peer: HashMap<SocketAddr, u64>,
    /// Where the next eviction scan starts.
    pub(crate) cursor: usize,
}

impl Receiver {
    pub(crate) fn new(
        fd: Arc<OwnedFd>,
        token: Token,
        cfg: KcpConfig,
        limit: Option<Arc<ConnLimit>>,
    ) -> io::Result<Receiver> {
        let local = crate::sys::socket::local_addr(fd.as_raw_fd())?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "kcp: not an IP socket"))?;
        Ok(Receiver {
            fd,
            token,
            local,
            cfg,
            limit,
            batch: Some(Box::new(RecvBatch::new(SLOTS, SLOT_LEN))),
            by_peer: HashMap::new(),
            cursor: 0,
        })
    }
}

/// The conversation of a datagram that starts with a well-formed PUSH
/// (what may open a session).
pub(crate) fn push_conv(data: &[u8]) -> Option<u32> {
    match Header::decode(data) {
        Ok((h, _)) if h.cmd == Cmd::Push => Some(h.conv),
        _ => None,
    }
}

/// A KCP server's socket on `addr`: SO_REUSEADDR so sessions' connected
/// sockets may bind the same address, SO_REUSEPORT so every loop has one.
/// A socket on `addr` passed to this process ([`inherit`](crate::net::inherit))
/// is taken instead.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<OwnedFd> {
    if let Some(fd) = crate::net::inherit::datagram_or_bind(addr)? {
        SockRef::from(&fd).set_reuse_address(true)?;
        return Ok(fd);
    }
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking().cloexec(),
        None,
    )?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind udp {addr}: {e}")))?;
    Ok(sock.into())
}

/// A session's own socket: bound to the server's `local` address (beside
/// the server's socket: SO_REUSEADDR, but not SO_REUSEPORT, so it stays
/// out of the loops' load-balancing group) and connected to `peer`.
pub(crate) fn connect_to(local: SocketAddr, peer: SocketAddr) -> io::Result<OwnedFd> {
    let sock = Socket::new(
        Domain::for_address(local),
        Type::DGRAM.nonblocking().cloexec(),
        None,
    )?;
    sock.set_reuse_address(true)?;
    if local.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&local.into())?;
    sock.connect(&peer.into())?;
    Ok(sock.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_push_opens_a_session() {
        let mut push = Vec::new();
        Header {
            conv: 7,
            cmd: Cmd::Push,
            frg: 0,
            wnd: 128,
            ts: 0,
            sn: 0,
            una: 0,
            len: 3,
        }
        .encode(&mut push);
        push.extend_from_slice(b"abc");
        assert_eq!(push_conv(&push), Some(7));
        let mut ack = push.clone();
        ack[4] = Cmd::Ack.to_u8();
        assert_eq!(push_conv(&ack), None);
        // `len` past the datagram's end.
        assert_eq!(push_conv(&push[..push.len() - 1]), None);
        assert_eq!(push_conv(&push[..10]), None);
    }
}
