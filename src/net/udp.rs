//! UDP on the reactor: datagram servers (one SO_REUSEPORT socket per loop)
//! and connected clients.
//!
//! A UDP socket on a loop is an endpoint: when it is readable the loop
//! receives datagrams until EAGAIN (at most [`RECV_BUDGET`] per turn, so a
//! flood on one socket cannot starve the loop's other sources) into a
//! 65,536-byte buffer, so the largest possible datagram (65,507 bytes of
//! IPv4 payload) arrives whole, and hands each to
//! [`DatagramHandler::on_datagram`].
//!
//! Replies go out at once with `sendto`; if the socket's send buffer is full
//! they wait, in order, in a bounded queue that is flushed when the socket is
//! writable again (past the bound they are dropped and counted, as UDP
//! would).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::poller::{Event, Interest, PollerKind, Token, Trigger};
use crate::reactor::{EventLoop, LoopConfig, LoopCtx, LoopGroup, LoopHandle, Source, SourceId};

/// Datagrams received per readiness event before other sources get a turn.
pub const RECV_BUDGET: usize = 64;
/// The receive buffer: larger than any UDP payload (65,507 over IPv4).
const RECV_BUF: usize = 65_536;
/// Bytes of replies that may wait for a full send buffer.
const MAX_QUEUED: usize = 4 << 20;

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
}

/// What a [`DatagramHandler`] works with during a callback.
pub struct UdpSock<'a> {
    sock: &'a UdpSocket,
    out: &'a mut OutQueue,
    lp: LoopCtx<'a>,
}

impl<'a> UdpSock<'a> {
    /// Send one datagram to `peer`: at once if the socket can take it,
    /// otherwise after the replies queued before it. Fails if the datagram
    /// can never be sent (too large: EMSGSIZE) or the queue is full.
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

    /// Datagrams dropped because the send queue was full.
    pub fn dropped(&self) -> u64 {
        self.out.dropped
    }

    /// The loop this socket lives on (timers, other sources).
    pub fn loop_ctx(&mut self) -> &mut LoopCtx<'a> {
        &mut self.lp
    }
}

/// Replies waiting for the socket to become writable.
#[derive(Default)]
struct OutQueue {
    queue: VecDeque<(Option<SocketAddr>, Vec<u8>)>,
    bytes: usize,
    dropped: u64,
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
    fn send(&mut self, sock: &UdpSocket, peer: Option<SocketAddr>, data: &[u8]) -> io::Result<()> {
        if self.queue.is_empty() {
            match send_one(sock, peer, data) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if self.bytes + data.len() > MAX_QUEUED {
            self.dropped += 1;
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "udp send queue full; datagram dropped",
            ));
        }
        self.bytes += data.len();
        self.queue.push_back((peer, data.to_vec()));
        Ok(())
    }

    /// Send queued datagrams until the socket is full again. A datagram the
    /// kernel refuses for good (not EAGAIN) is dropped: there is no one to
    /// report it to any more.
    fn flush(&mut self, sock: &UdpSocket) {
        while let Some((peer, data)) = self.queue.front() {
            match send_one(sock, *peer, data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("udp send: {e}; datagram dropped");
                    self.dropped += 1;
                }
                Ok(_) => {}
            }
            let (_, d) = self.queue.pop_front().expect("front exists");
            self.bytes -= d.len();
        }
    }
}

/// A UDP socket registered on a loop with its handler.
struct Endpoint<H> {
    token: Token,
    sock: Arc<UdpSocket>,
    handler: H,
    out: OutQueue,
    buf: Box<[u8]>,
}

/// Put `sock` (made non-blocking here) on `el` with `handler`; returns its
/// source id (remove it with [`detach`]). Call on the loop's thread; use
/// [`LoopHandle::post`] from others.
pub fn attach<H: DatagramHandler>(
    el: &mut EventLoop,
    sock: Arc<UdpSocket>,
    handler: H,
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
    let ep = Endpoint {
        token,
        sock,
        handler,
        out: OutQueue::default(),
        buf: vec![0u8; RECV_BUF].into_boxed_slice(),
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

impl<H: DatagramHandler> Source for Endpoint<H> {
    fn ready(&mut self, el: &mut EventLoop, _sub: u64, ev: Event) {
        let token = self.token;
        let Endpoint {
            token: _,
            sock,
            handler,
            out,
            buf,
        } = self;
        if ev.is_writable() && !out.queue.is_empty() {
            out.flush(sock);
        }
        if ev.is_readable() || ev.is_error() {
            let mut budget_used = true;
            for _ in 0..RECV_BUDGET {
                match sock.recv_from(buf) {
                    Ok((n, peer)) => {
                        let mut s = UdpSock {
                            sock,
                            out,
                            lp: LoopCtx::new(el),
                        };
                        handler.on_datagram(&mut s, peer, &buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        budget_used = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let mut s = UdpSock {
                            sock,
                            out,
                            lp: LoopCtx::new(el),
                        };
                        handler.on_error(&mut s, e);
                    }
                }
            }
            if budget_used && el.trigger() == Trigger::Edge {
                // Data may be left and no new edge will say so.
                el.defer(token, Event::new(token, Event::READABLE));
            }
        }
        if el.trigger() == Trigger::Level {
            let want = if out.queue.is_empty() {
                Interest::READABLE
            } else {
                Interest::BOTH
            };
            if let Err(e) = el.set_interest(token, Some(want)) {
                tracing::warn!("udp socket: {e}");
            }
        }
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
}

impl Default for UdpServerBuilder {
    fn default() -> Self {
        UdpServerBuilder {
            addrs: Vec::new(),
            loops: 1,
            poller: PollerKind::Epoll,
            trigger: Trigger::Level,
            buffers: Some(4 << 20),
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
        let (poller, trigger) = (self.poller, self.trigger);
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
                        attach(&mut el, s, factory(id))?;
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
            let _ = tx.send(attach(el, s, handler));
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
