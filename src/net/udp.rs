//! UDP on the reactor: datagram servers (one SO_REUSEPORT socket per loop)
//! and connected clients.
//!
//! A UDP socket on a loop is an endpoint. How it moves datagrams is its
//! [`UdpBatch`] mode:
//!
//! - **batched** (the default): when readable it takes up to
//!   [`sys::udp::MAX_BATCH`](crate::sys::udp::MAX_BATCH) datagrams per
//!   `recvmmsg(2)`, with UDP GRO where the kernel has it (several datagrams
//!   of one flow in one buffer, cut apart again here at the segment size the
//!   kernel reports, so each reaches the handler with its exact bounds).
//!   Replies made during the callbacks are staged and leave in one
//!   `sendmmsg(2)` after them; consecutive replies to one peer of one size
//!   (the last may be shorter) travel as one UDP GSO (`UDP_SEGMENT`)
//!   message, which the kernel cuts back into datagrams.
//! - **off**: one `recvfrom` per datagram and one `sendto` per reply, at once.
//!
//! Either way at most [`RECV_BUDGET`] datagrams are taken per turn, so a
//! flood on one socket cannot starve the loop's other sources, into
//! 65,536-byte buffers, so the largest possible datagram (65,507 bytes of
//! IPv4 payload) arrives whole. Replies the socket cannot take wait, in
//! order, in a bounded queue flushed when it is writable again (past the
//! bound they are dropped and counted, as UDP would).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::poller::{Event, Interest, PollerKind, Token, Trigger};
use crate::reactor::{
    EventLoop, LoopConfig, LoopCtx, LoopGroup, LoopHandle, Source, SourceId, TimerId,
};
use crate::sys::udp::{self as sysudp, OutMsg, RecvBatch};

/// Datagrams received per readiness event before other sources get a turn.
pub const RECV_BUDGET: usize = 64;
/// The receive buffer: larger than any UDP payload (65,507 over IPv4), and
/// than the largest GRO buffer.
const RECV_BUF: usize = 65_536;
/// Buffers per `recvmmsg` call: 16 x 64 KiB per socket.
const RECV_SLOTS: usize = 16;
/// Bytes of replies that may wait for a full send buffer.
const MAX_QUEUED: usize = 4 << 20;
/// Largest segment coalesced for GSO: the kernel refuses (EINVAL) a
/// segment that with its headers exceeds the route's MTU, and a 1500-byte
/// Ethernet MTU leaves 1,452 bytes under IPv6 + UDP headers.
const GSO_MAX_SEGMENT: usize = 1452;
/// Largest GSO message: the whole must fit one IP packet's length field.
const GSO_MAX_BYTES: usize = 65_000;
/// Largest UDP payload over IPv6 (65,535 - 8); IPv4's is 20 bytes less.
const MAX_PAYLOAD: usize = 65_527;

/// How a UDP socket moves datagrams (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UdpBatch {
    /// `recvmmsg`/`sendmmsg`, plus UDP GRO and GSO where the kernel has
    /// them (probed once per socket; the log says which path is on).
    #[default]
    Auto,
    /// `recvmmsg`/`sendmmsg` without the segmentation offloads.
    Mmsg,
    /// One `recvfrom`/`sendto` per datagram.
    Off,
}

/// What a socket ended up with after probing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Single,
    Batched { gro: bool, gso: bool },
}

impl Path {
    fn probe(sock: &UdpSocket, want: UdpBatch) -> Path {
        let fd = sock.as_raw_fd();
        match want {
            UdpBatch::Off => Path::Single,
            UdpBatch::Mmsg => Path::Batched {
                gro: false,
                gso: false,
            },
            UdpBatch::Auto => Path::Batched {
                gro: sysudp::set_udp_gro(fd, true).is_ok(),
                gso: sysudp::probe_udp_segment(fd),
            },
        }
    }
}

/// The user's side of a UDP socket. One instance per socket, called on the
/// socket's loop thread; it must not block.
pub trait DatagramHandler: 'static {
    /// A datagram from `peer`. Reply with `sock.send_to(peer, ..)` (or
    /// `sock.send(..)` on a connected socket).
    fn on_datagram(&mut self, sock: &mut UdpSock<'_>, peer: SocketAddr, data: &[u8]);

    /// A receive error other than EAGAIN, e.g. ECONNREFUSED on a connected
    /// socket after the peer's port answered with ICMP unreachable. The
    /// socket stays open; the default ignores it.
    fn on_error(&mut self, _sock: &mut UdpSock<'_>, _err: io::Error) {}

    /// A timer set with [`UdpSock::timer`] fired; `tag` is the one it was
    /// set with. Protocols over UDP (retransmission, keep-alive) run here.
    fn on_timer(&mut self, _sock: &mut UdpSock<'_>, _tag: u64) {}
}

/// What a [`DatagramHandler`] works with during a callback.
pub struct UdpSock<'a> {
    sock: &'a UdpSocket,
    out: &'a mut OutQueue,
    id: SourceId,
    lp: LoopCtx<'a>,
}

impl<'a> UdpSock<'a> {
    /// Send one datagram to `peer`. In batched mode it is staged and leaves
    /// with the others made in this round of callbacks, in order; otherwise
    /// at once if the socket can take it. Fails if the datagram is too
    /// large (EMSGSIZE) or the queue is full; a kernel refusal found at the
    /// batched send is logged and counted in [`dropped`](Self::dropped).
    pub fn send_to(&mut self, peer: SocketAddr, data: &[u8]) -> io::Result<()> {
        self.out.send(self.sock, Some(peer), data)
    }

    /// Send one datagram to the connected peer (client sockets).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.send(self.sock, None, data)
    }

    /// The address the socket is bound to (getsockname(2)).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Datagrams dropped because the send queue was full or the kernel
    /// refused them.
    pub fn dropped(&self) -> u64 {
        self.out.dropped
    }

    /// Buffers received that held several datagrams coalesced by UDP GRO,
    /// and messages sent as several segments with UDP GSO, on this socket
    /// so far: which offloads are really working.
    pub fn offloads(&self) -> (u64, u64) {
        (self.out.gro_buffers, self.out.gso_messages)
    }

    /// Call [`DatagramHandler::on_timer`] with `tag` after `delay` (once).
    pub fn timer(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.lp.el.timer_for(self.id, delay, tag)
    }

    /// The loop this socket lives on (timers, other sources).
    pub fn loop_ctx(&mut self) -> &mut LoopCtx<'a> {
        &mut self.lp
    }
}

/// One message waiting in the queue: `len` bytes at `off` in the arena, one
/// datagram, or several of `seg` bytes (GSO) when `len > seg`.
#[derive(Clone, Copy)]
struct Queued {
    peer: Option<SocketAddr>,
    off: usize,
    len: usize,
    seg: usize,
}

/// Replies staged for the next batched send, or waiting for the socket to
/// become writable.
///
/// ```text
///  arena: [ sent ... | msgs[0] | msgs[1] | ... ]   0 <= msgs[0].off <= arena.len()
/// ```
/// The arena is cleared whenever the queue empties, and compacted when it
/// would pass the bound, so it reaches a steady size and stops allocating.
struct OutQueue {
    path: Path,
    arena: Vec<u8>,
    msgs: VecDeque<Queued>,
    dropped: u64,
    /// Messages sent as several GSO segments.
    gso_messages: u64,
    /// Buffers received with several GRO-coalesced datagrams in them (kept
    /// here so a callback's `UdpSock` can report it).
    gro_buffers: u64,
}

fn send_one(sock: &UdpSocket, peer: Option<SocketAddr>, data: &[u8]) -> io::Result<usize> {
    loop {
        let r = match peer {
            Some(p) => sock.send_to(data, p),
            None => sock.send(data),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

impl OutQueue {
    fn new(path: Path) -> OutQueue {
        OutQueue {
            path,
            arena: Vec::new(),
            msgs: VecDeque::new(),
            dropped: 0,
            gso_messages: 0,
            gro_buffers: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    fn send(&mut self, sock: &UdpSocket, peer: Option<SocketAddr>, data: &[u8]) -> io::Result<()> {
        if data.len() > MAX_PAYLOAD {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        if self.path == Path::Single && self.msgs.is_empty() {
            match send_one(sock, peer, data) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if self.arena.len() + data.len() > MAX_QUEUED {
            self.compact();
            if self.arena.len() + data.len() > MAX_QUEUED {
                self.dropped += 1;
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "udp send queue full; datagram dropped",
                ));
            }
        }
        let off = self.arena.len();
        self.arena.extend_from_slice(data);
        if let (Path::Batched { gso: true, .. }, Some(last)) = (self.path, self.msgs.back_mut()) {
            // Join the previous message as one more segment when the kernel
            // can cut it apart again exactly: same peer, its segments all
            // full so far, this one no longer than them.
            if last.peer == peer
                && last.seg > 0
                && last.seg <= GSO_MAX_SEGMENT
                && !data.is_empty()
                && data.len() <= last.seg
                && last.len % last.seg == 0
                && last.len + data.len() <= GSO_MAX_BYTES
                && last.len / last.seg < sysudp::MAX_SEGMENTS
                && last.off + last.len == off
            {
                last.len += data.len();
                return Ok(());
            }
        }
        self.msgs.push_back(Queued {
            peer,
            off,
            len: data.len(),
            seg: data.len(),
        });
        Ok(())
    }

    /// Drop the already-sent prefix of the arena.
    fn compact(&mut self) {
        let Some(first) = self.msgs.front().map(|m| m.off) else {
            self.arena.clear();
            return;
        };
        self.arena.drain(..first);
        for m in &mut self.msgs {
            m.off -= first;
        }
    }

    fn pop(&mut self) {
        self.msgs.pop_front();
        if self.msgs.is_empty() {
            self.arena.clear();
        }
    }

    /// Send queued datagrams until the queue is empty or the socket full.
    /// A datagram the kernel refuses for good (not EAGAIN) is dropped:
    /// there is no one to report it to any more. A GSO message the kernel
    /// refuses is sent again as single datagrams, and GSO is turned off for
    /// this socket.
    fn flush(&mut self, sock: &UdpSocket) {
        match self.path {
            Path::Single => self.flush_single(sock),
            Path::Batched { .. } => self.flush_batched(sock),
        }
    }

    fn flush_single(&mut self, sock: &UdpSocket) {
        while let Some(m) = self.msgs.front().copied() {
            match send_one(sock, m.peer, &self.arena[m.off..m.off + m.len]) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("udp send: {e}; datagram dropped");
                    self.dropped += 1;
                }
                Ok(_) => {}
            }
            self.pop();
        }
    }

    fn flush_batched(&mut self, sock: &UdpSocket) {
        let fd = sock.as_raw_fd();
        while !self.msgs.is_empty() {
            let n = self.msgs.len().min(sysudp::MAX_BATCH);
            // On the stack: no allocation per flush.
            let msgs: [OutMsg<'_>; sysudp::MAX_BATCH] =
                std::array::from_fn(|i| match self.msgs.get(i) {
                    Some(m) if i < n => OutMsg {
                        peer: m.peer,
                        data: &self.arena[m.off..m.off + m.len],
                        segment: m.seg,
                    },
                    _ => OutMsg {
                        peer: None,
                        data: &[],
                        segment: 0,
                    },
                });
            let r = sysudp::send_batch(fd, &msgs[..n]);
            match r {
                Ok(sent) => {
                    for _ in 0..sent {
                        if self.msgs.front().is_some_and(|m| m.len > m.seg) {
                            self.gso_messages += 1;
                        }
                        self.pop();
                    }
                    if sent < n {
                        // Either the socket filled up (the next call says
                        // EAGAIN) or message `sent` failed (the next call
                        // reports it first): go round once more.
                        continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => self.refused(e),
            }
        }
    }

    /// The kernel refused the first queued message.
    fn refused(&mut self, e: io::Error) {
        let m = self.msgs[0];
        if m.len > m.seg {
            tracing::info!("udp GSO refused ({e}); this socket sends single datagrams now");
            if let Path::Batched { gro, .. } = self.path {
                self.path = Path::Batched { gro, gso: false };
            }
            self.msgs.pop_front();
            let mut at = m.off + m.len;
            // Put the segments back in order, last first.
            let tail = m.len % m.seg;
            let mut pieces = m.len / m.seg;
            if tail > 0 {
                at -= tail;
                self.msgs.push_front(Queued {
                    peer: m.peer,
                    off: at,
                    len: tail,
                    seg: tail,
                });
            }
            while pieces > 0 {
                at -= m.seg;
                self.msgs.push_front(Queued {
                    peer: m.peer,
                    off: at,
                    len: m.seg,
                    seg: m.seg,
                });
                pieces -= 1;
            }
        } else {
            tracing::debug!("udp send: {e}; datagram dropped");
            self.dropped += 1;
            self.pop();
        }
    }
}

/// How the endpoint receives.
enum Receiver {
    Single(Box<[u8]>),
    Batched(Box<RecvBatch>),
}

/// A UDP socket registered on a loop with its handler.
struct Endpoint<H> {
    id: SourceId,
    token: Token,
    sock: Arc<UdpSocket>,
    handler: H,
    out: OutQueue,
    rx: Receiver,
}

/// Put `sock` (made non-blocking here) on `el` with `handler`, batched
/// where the kernel allows ([`UdpBatch::Auto`]); returns its source id
/// (remove it with [`detach`]). Call on the loop's thread; use
/// [`LoopHandle::post`] from others.
pub fn attach<H: DatagramHandler>(
    el: &mut EventLoop,
    sock: Arc<UdpSocket>,
    handler: H,
) -> io::Result<SourceId> {
    attach_with(el, sock, handler, UdpBatch::Auto)
}

/// [`attach`] with a chosen [`UdpBatch`] mode.
pub fn attach_with<H: DatagramHandler>(
    el: &mut EventLoop,
    sock: Arc<UdpSocket>,
    handler: H,
    batch: UdpBatch,
) -> io::Result<SourceId> {
    sock.set_nonblocking(true)?;
    let interest = if el.trigger() == Trigger::Edge {
        Interest::BOTH
    } else {
        Interest::READABLE
    };
    let id = el.reserve_source();
    let token = match el.register(sock.as_raw_fd(), Some(interest), id, 0) {
        Ok(t) => t,
        Err(e) => {
            el.remove_source(id);
            return Err(e);
        }
    };
    let path = Path::probe(&sock, batch);
    tracing::debug!("udp socket {:?}: {path:?}", sock.local_addr().ok());
    let rx = match path {
        Path::Single => Receiver::Single(vec![0u8; RECV_BUF].into_boxed_slice()),
        Path::Batched { .. } => Receiver::Batched(Box::new(RecvBatch::new(RECV_SLOTS, RECV_BUF))),
    };
    let ep = Endpoint {
        id,
        token,
        sock,
        handler,
        out: OutQueue::new(path),
        rx,
    };
    el.attach_source(id, Box::new(ep));
    Ok(id)
}

/// Take a socket [`attach`]ed to `el` off it (loop thread only).
pub fn detach(el: &mut EventLoop, id: SourceId) {
    if let Some(mut ep) = el.remove_source(id) {
        ep.shutdown(el);
    }
}

impl<H: DatagramHandler> Endpoint<H> {
    /// Receive up to the budget; true if the budget ran out (data may be left).
    fn receive(&mut self, el: &mut EventLoop) -> bool {
        let Endpoint {
            id,
            sock,
            handler,
            out,
            rx,
            ..
        } = self;
        let mut taken = 0;
        // A batch that came back short emptied the socket's queue: a
        // datagram arriving after it raises readiness again (a new edge, or
        // level), so the recvmmsg that would only say EAGAIN is skipped —
        // one syscall of the four a request/reply costs.
        let mut drained = false;
        while taken < RECV_BUDGET && !drained {
            let r = match rx {
                Receiver::Single(buf) => sock.recv_from(buf).map(|(n, peer)| {
                    let mut s = UdpSock {
                        sock,
                        out,
                        id: *id,
                        lp: LoopCtx::new(el),
                    };
                    handler.on_datagram(&mut s, peer, &buf[..n]);
                    1
                }),
                Receiver::Batched(batch) => batch.recv(sock.as_raw_fd()).map(|n| {
                    drained = n < batch.slots();
                    let mut s = UdpSock {
                        sock,
                        out,
                        id: *id,
                        lp: LoopCtx::new(el),
                    };
                    let mut count = 0;
                    for i in 0..n {
                        let Some((peer, data, seg)) = batch.get(i) else {
                            continue;
                        };
                        // A GRO buffer holds several datagrams of `seg` bytes
                        // (the last possibly shorter): hand them over one by one.
                        if seg < data.len() {
                            s.out.gro_buffers += 1;
                        }
                        if data.is_empty() {
                            handler.on_datagram(&mut s, peer, data);
                            count += 1;
                        }
                        for d in data.chunks(seg.max(1)) {
                            handler.on_datagram(&mut s, peer, d);
                            count += 1;
                        }
                    }
                    count
                }),
            };
            match r {
                Ok(n) => taken += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let mut s = UdpSock {
                        sock,
                        out,
                        id: *id,
                        lp: LoopCtx::new(el),
                    };
                    handler.on_error(&mut s, e);
                    taken += 1;
                }
            }
        }
        !drained
    }

    /// Send what the callbacks staged and watch for writability while some
    /// is left.
    fn flush(&mut self, el: &mut EventLoop) {
        if !self.out.is_empty() {
            self.out.flush(&self.sock);
        }
        if el.trigger() == Trigger::Level {
            let want = if self.out.is_empty() {
                Interest::READABLE
            } else {
                Interest::BOTH
            };
            if let Err(e) = el.set_interest(self.token, Some(want)) {
                tracing::warn!("udp socket: {e}");
            }
        }
    }
}

impl<H: DatagramHandler> Source for Endpoint<H> {
    fn ready(&mut self, el: &mut EventLoop, _sub: u64, ev: Event) {
        let token = self.token;
        if ev.is_writable() && !self.out.is_empty() {
            self.out.flush(&self.sock);
        }
        if (ev.is_readable() || ev.is_error()) && self.receive(el) && el.trigger() == Trigger::Edge
        {
            // Data may be left and no new edge will say so.
            el.defer(token, Event::new(token, Event::READABLE));
        }
        self.flush(el);
    }

    fn timer(&mut self, el: &mut EventLoop, tag: u64) {
        let mut s = UdpSock {
            sock: &self.sock,
            out: &mut self.out,
            id: self.id,
            lp: LoopCtx::new(el),
        };
        self.handler.on_timer(&mut s, tag);
        self.flush(el);
    }

    fn shutdown(&mut self, el: &mut EventLoop) {
        let _ = el.deregister(self.token);
    }
}

/// A non-blocking UDP socket bound to `addr` (SO_REUSEPORT if asked, so
/// several loops can each bind the same address), with the given kernel
/// buffer sizes.
///
/// A UDP socket on `addr` passed to this process
/// ([`inherit`](super::inherit)) is taken instead, as it is.
pub fn bind(addr: SocketAddr, reuseport: bool, buffers: Option<usize>) -> io::Result<UdpSocket> {
    if let Some(fd) = super::inherit::datagram_or_bind(addr)? {
        return Ok(fd.into());
    }
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking().cloexec(),
        None,
    )?;
    if reuseport {
        sock.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if let Some(n) = buffers {
        // Best effort: the kernel caps these at rmem_max/wmem_max.
        let _ = sock.set_recv_buffer_size(n);
        let _ = sock.set_send_buffer_size(n);
    }
    sock.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind udp {addr}: {e}")))?;
    Ok(sock.into())
}

/// Builds a [`UdpServer`]: `loops` reactors, each with its own SO_REUSEPORT
/// socket per address (the kernel spreads peers over them).
#[derive(Clone, Debug)]
pub struct UdpServerBuilder {
    addrs: Vec<SocketAddr>,
    loops: usize,
    poller: PollerKind,
    trigger: Trigger,
    buffers: Option<usize>,
    batch: UdpBatch,
}

impl Default for UdpServerBuilder {
    fn default() -> Self {
        UdpServerBuilder {
            addrs: Vec::new(),
            loops: 1,
            poller: PollerKind::Epoll,
            trigger: Trigger::Level,
            buffers: Some(4 << 20),
            batch: UdpBatch::Auto,
        }
    }
}

impl UdpServerBuilder {
    /// A builder with the defaults: one loop, epoll, level-triggered,
    /// 4 MiB socket buffers, and no address yet (add at least one with
    /// [`bind`](Self::bind)).
    pub fn new() -> UdpServerBuilder {
        UdpServerBuilder::default()
    }
    /// Add an address (call repeatedly for several).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addrs.push(addr);
        self
    }
    /// Number of loops (at least 1).
    pub fn loops(mut self, n: usize) -> Self {
        self.loops = n.max(1);
        self
    }
    /// The readiness mechanism of every loop. Default
    /// [`PollerKind::Epoll`]. One the kernel does not offer makes
    /// [`start`](Self::start) fail when the loops are created.
    pub fn poller(mut self, kind: PollerKind) -> Self {
        self.poller = kind;
        self
    }
    /// Level- or edge-triggered readiness. Default [`Trigger::Level`]. Edge
    /// on a poller without it (poll, select, busy-poll, proactor) makes
    /// [`start`](Self::start) fail with `InvalidInput`.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }
    /// SO_RCVBUF / SO_SNDBUF for every socket (default 4 MiB, capped by the
    /// kernel); a burst larger than the receive buffer is lost.
    pub fn socket_buffers(mut self, bytes: usize) -> Self {
        self.buffers = Some(bytes);
        self
    }

    /// How the sockets move datagrams. Default [`UdpBatch::Auto`]:
    /// `recvmmsg`/`sendmmsg` with GRO and GSO where the kernel has them.
    pub fn batch(mut self, batch: UdpBatch) -> Self {
        self.batch = batch;
        self
    }

    /// Bind, spawn the loops and serve. `factory` makes one handler per
    /// socket (called on the socket's loop thread with the loop id).
    pub fn start<H, F>(self, factory: F) -> io::Result<UdpServer>
    where
        H: DatagramHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        if self.addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "udp server has no address to bind",
            ));
        }
        if self.poller.caps().trigger_for(self.trigger).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "edge trigger needs the epoll or uring poller",
            ));
        }
        // Bind loop 0's sockets first so port 0 resolves once for all loops.
        let mut first = Vec::new();
        for a in &self.addrs {
            first.push(bind(*a, true, self.buffers)?);
        }
        let addrs: Vec<SocketAddr> = first
            .iter()
            .map(|s| s.local_addr())
            .collect::<io::Result<_>>()?;
        let path = Path::probe(&first[0], self.batch);
        tracing::info!(
            "udp: {}",
            match path {
                Path::Single => "one recvfrom/sendto per datagram".to_string(),
                Path::Batched { gro, gso } => format!(
                    "recvmmsg/sendmmsg, GRO {}, GSO {}",
                    if gro { "on" } else { "off" },
                    if gso { "on" } else { "off" }
                ),
            }
        );
        let mut per_loop = vec![first];
        for _ in 1..self.loops {
            per_loop.push(
                addrs
                    .iter()
                    .map(|a| bind(*a, true, self.buffers))
                    .collect::<io::Result<_>>()?,
            );
        }
        let factory = Arc::new(factory);
        let (poller, trigger, batch) = (self.poller, self.trigger, self.batch);
        let group = LoopGroup::builder()
            .name("evnet-udp")
            .start_each(per_loop.into_iter().map(|socks| {
                let factory = factory.clone();
                move |id| {
                    let mut el = EventLoop::new(LoopConfig {
                        poller,
                        trigger,
                        id,
                        ..Default::default()
                    })?;
                    for s in socks {
                        let s = Arc::new(s);
                        super::inherit::hold(&s);
                        attach_with(&mut el, s, factory(id), batch)?;
                    }
                    Ok(el)
                }
            }))?;
        Ok(UdpServer { addrs, group })
    }
}

/// A running UDP server. Dropping it stops the loops and joins them.
pub struct UdpServer {
    addrs: Vec<SocketAddr>,
    group: LoopGroup,
}

impl UdpServer {
    /// A [`UdpServerBuilder`] with the defaults (same as
    /// [`UdpServerBuilder::new`]).
    pub fn builder() -> UdpServerBuilder {
        UdpServerBuilder::new()
    }

    /// The bound addresses (port 0 resolved).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first bound address (port 0 resolved). A started server always
    /// has one.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Handles of the server's loops, one per loop in id order. Each may be
    /// used from any thread.
    pub fn loops(&self) -> &[LoopHandle] {
        self.group.handles()
    }

    /// Ask every loop to stop. Safe from any thread.
    pub fn stop(&self) {
        self.group.stop();
    }

    /// Stop and wait for the loop threads.
    pub fn shutdown(self) -> io::Result<()> {
        self.group.stop();
        self.group.join().map(drop)
    }
}

/// A connected UDP socket whose replies are handled on a loop.
///
/// `send` may be called from any thread (one `send(2)` per datagram, which
/// the kernel keeps whole); datagrams from the peer reach the handler's
/// `on_datagram` on the loop. Dropping the client removes it from the loop.
pub struct UdpClient {
    sock: Arc<UdpSocket>,
    lp: LoopHandle,
    token: SourceId,
}

impl UdpClient {
    /// Connect a new socket to `peer` and register it with `handler` on the
    /// loop behind `lp`. Blocks until the loop has registered it, so it must
    /// not be called on that loop's own thread (use [`attach`] there).
    pub fn connect<H: DatagramHandler + Send>(
        lp: &LoopHandle,
        peer: SocketAddr,
        handler: H,
    ) -> io::Result<UdpClient> {
        UdpClient::connect_with(lp, peer, handler, UdpBatch::Auto)
    }

    /// [`connect`](Self::connect) with a chosen [`UdpBatch`] mode for the
    /// receiving side (and for replies sent from the handler).
    pub fn connect_with<H: DatagramHandler + Send>(
        lp: &LoopHandle,
        peer: SocketAddr,
        handler: H,
        batch: UdpBatch,
    ) -> io::Result<UdpClient> {
        let local: SocketAddr = if peer.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .expect("literal address");
        let sock = bind(local, false, Some(4 << 20))?;
        sock.connect(peer)?;
        let sock = Arc::new(sock);
        let (tx, rx) = mpsc::channel();
        let s = sock.clone();
        lp.post(move |el| {
            let _ = tx.send(attach_with(el, s, handler, batch));
        })
        .map_err(|_| io::Error::other("loop is stopped"))?;
        let token = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "loop did not register the udp client",
            )
        })??;
        Ok(UdpClient {
            sock,
            lp: lp.clone(),
            token,
        })
    }

    /// Send one datagram to the peer now. `WouldBlock` means the socket's
    /// send buffer is full (rare; retry later).
    pub fn send(&self, data: &[u8]) -> io::Result<usize> {
        send_one(&self.sock, None, data)
    }

    /// The local address the kernel gave the socket (getsockname(2)).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The peer the socket is connected to (getpeername(2)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }
}

impl Drop for UdpClient {
    fn drop(&mut self) {
        let id = self.token;
        let _ = self.lp.post(move |el| detach(el, id));
    }
}

/// Echo every datagram back to its sender.
#[derive(Default)]
pub struct UdpEcho;

impl DatagramHandler for UdpEcho {
    fn on_datagram(&mut self, sock: &mut UdpSock<'_>, peer: SocketAddr, data: &[u8]) {
        if let Err(e) = sock.send_to(peer, data) {
            tracing::debug!("udp echo to {peer}: {e}");
        }
    }
}
