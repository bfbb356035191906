//! A server's (or a client's) per-loop state: the handler, and a table of
//! what it owns on that loop — connections, listeners, dials in progress —
//! addressed by slot and generation. The table is the [`Source`] the loop
//! dispatches to; timers and handles reach a connection by its key.
//!
//! ```text
//!  key (u64) = generation | slot, as `reactor::key` packs them
//!  fd registration sub = key      reactor timer tag = timer slot | generation
//! ```
//!
//! The handler lives in the table, not behind a `RefCell`: a callback gets
//! `&mut H` next to one connection's slot, and nothing it can call reaches
//! back into the table while it runs (cross-thread operations go through the
//! [`Mailbox`]; dials and typed access from the loop through the local queue;
//! both are drained when the loop notifies the table, after the dispatch).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::config::ConnConfig;
use super::core::Core;
use super::handle::{Mailbox, Op, RunFn};
use super::out::OutQueue;
use super::path::kcp::KcpPath;
use super::path::{Input, Path, Session};
use super::preamble::{self, Preamble, Step};
use super::state::{Phase, ReadState, WriteState};
use super::watchdog::Watchdog;
use super::Conn;
use crate::kcp::receiver::{self, Receiver};
use crate::kcp::KcpConfig;
use crate::net::connector::Dial;
use crate::net::limit::{ConnLimit, Permit};
use crate::net::listener::{Accepted, Listener};
use crate::net::proxy::{ProxyHeader, ProxyProtocol};
use crate::net::{Buffer, CloseReason, EventHandler};
use crate::poller::{Event, Interest, Token};
use crate::reactor::key::{pack, unpack, Generations};
use crate::reactor::{EventLoop, LoopCtx, LoopStats, Source, SourceId, TimerId};
use crate::ring::Completion;
use crate::sys;

/// A timer from [`Conn::run_after`], for [`Conn::cancel_timer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnTimer(pub(crate) u64);

/// A handler's job for one connection, run on its loop.
pub(crate) type UserFn<H> = Box<dyn FnOnce(&mut H, &mut Conn<'_, H>)>;

/// What a table timer does when it fires.
pub(crate) enum Job<H: EventHandler> {
    /// Check connection `key`'s timeouts.
    Watchdog(u64),
    /// End connection `key`'s close: the linger after its FIN, or, before
    /// its output drained, the closing time (then the close is a reset).
    Linger(u64),
    /// A handler's timer for connection `key`.
    User(u64, UserFn<H>),
    /// Give up dial `key`'s attempt.
    DialTimeout(u64),
    /// Try a dial again after its backoff.
    Redial(Box<Dial>),
    /// Accept again on listener `key` after running out of fds.
    ResumeAccept(u64),
    /// The handler's periodic `on_tick`.
    Tick(Duration),
    /// Connection `key`'s handshake (TLS) must be over by now.
    Handshake(u64),
    /// Give up waiting for accepted socket `key`'s PROXY header.
    Preamble(u64),
    /// Run KCP connection `key`'s engine clock.
    Kcp(u64),
}

struct TimerSlot<H: EventHandler> {
    gen: u32,
    reactor: TimerId,
    job: Job<H>,
}

/// What a loop-thread caller asks of a table after it is attached.
pub(crate) enum LocalOp<H> {
    Dial(Box<Dial>),
    With(Box<dyn FnOnce(&mut H)>),
}

/// The handler-independent part of a table that a [`Conn`] may use while the
/// handler and one connection slot are borrowed.
pub(crate) struct Shared<H: EventHandler> {
    pub(crate) id: SourceId,
    pub(crate) cfg: ConnConfig,
    /// Writes made during a callback gather here and leave in one send when
    /// it returns.
    pub(crate) staged: Vec<u8>,
    /// Every connection reads here and keeps only an unconsumed tail, so an
    /// idle connection owns no read buffer.
    read_buf: Vec<u8>,
    timers: Slab<TimerSlot<H>>,
    pub(crate) mailbox: Arc<Mailbox<H>>,
    gens: Generations,
}

impl<H: EventHandler> Shared<H> {
    /// Set a table timer; returns its tag.
    pub(crate) fn add_timer(&mut self, el: &mut EventLoop, delay: Duration, job: Job<H>) -> u64 {
        let gen = self.gens.next();
        let entry = self.timers.vacant_entry();
        let tag = pack(entry.key(), gen);
        let reactor = el.timer_for(self.id, delay, tag);
        entry.insert(TimerSlot { gen, reactor, job });
        tag
    }

    pub(crate) fn cancel_timer(&mut self, el: &mut EventLoop, tag: u64) {
        if let Some(t) = self.take_timer(tag) {
            el.cancel(t.reactor);
        }
    }

    fn take_timer(&mut self, tag: u64) -> Option<TimerSlot<H>> {
        let (index, gen) = unpack(tag);
        match self.timers.get(index) {
            Some(t) if t.gen == gen => Some(self.timers.remove(index)),
            _ => None,
        }
    }
}

/// One connection's slot.
pub(crate) struct Slot<H: EventHandler> {
    core: Core,
    path: Path,
    ctx: H::Context,
}

/// A dial whose `connect` is in progress, waiting for WRITABLE.
struct Dialing {
    fd: OwnedFd,
    token: Token,
    dial: Box<Dial>,
    timer: Option<u64>,
}

enum Kind<H: EventHandler> {
    Conn(Box<Slot<H>>),
    Listener(Listener),
    Dial(Dialing),
    /// An accepted socket whose PROXY header is being read.
    Preamble(Box<Preamble>),
    /// A KCP server's UDP socket.
    Kcp(Box<Receiver>),
}

struct Entry<H: EventHandler> {
    gen: u32,
    kind: Kind<H>,
}

/// A typed address of an attached table, for the code that set it up.
pub(crate) struct TableRef<H: EventHandler> {
    pub(crate) id: SourceId,
    pub(crate) mailbox: Arc<Mailbox<H>>,
    local: Rc<RefCell<Vec<LocalOp<H>>>>,
}

impl<H: EventHandler> Clone for TableRef<H> {
    fn clone(&self) -> Self {
        TableRef {
            id: self.id,
            mailbox: self.mailbox.clone(),
            local: self.local.clone(),
        }
    }
}

impl<H: EventHandler> TableRef<H> {
    /// Queue `op` for the table (loop thread only); it runs after the
    /// current dispatch.
    pub(crate) fn local(&self, el: &mut EventLoop, op: LocalOp<H>) {
        self.local.borrow_mut().push(op);
        el.notify(self.id);
    }

    /// Run `f` with the handler now, unless the table is the one running
    /// (then `None`: call it from outside the table's callbacks).
    pub(crate) fn with<R: 'static>(
        &self,
        el: &mut EventLoop,
        f: impl FnOnce(&mut H) -> R + 'static,
    ) -> Option<R> {
        let out = Rc::new(RefCell::new(None));
        let o = out.clone();
        self.local
            .borrow_mut()
            .push(LocalOp::With(Box::new(move |h| {
                *o.borrow_mut() = Some(f(h))
            })));
        if el.with_source(self.id, |s, el| s.notify(el)).is_none() {
            // The table is running (or gone): take the job back unrun.
            self.local.borrow_mut().pop();
            return None;
        }
        let r = out.borrow_mut().take();
        r
    }
}

/// A server's or client's state on one loop.
pub(crate) struct Table<H: EventHandler> {
    handler: H,
    entries: Slab<Entry<H>>,
    shared: Shared<H>,
    local: Rc<RefCell<Vec<LocalOp<H>>>>,
    /// Reused buffers for accepted fds and mailbox operations.
    accepted: Vec<Accepted>,
    spare_ops: Vec<Op<H>>,
    /// Accepted connections start with a PROXY protocol header.
    proxy: Option<Arc<ProxyProtocol>>,
}

impl<H: EventHandler> Table<H> {
    /// A table for `handler` on `el`; add listeners and a tick, then
    /// [`Table::attach`] it.
    pub(crate) fn new(el: &mut EventLoop, handler: H, cfg: ConnConfig) -> Table<H> {
        let id = el.reserve_source();
        Table {
            handler,
            entries: Slab::new(),
            shared: Shared {
                id,
                cfg,
                staged: Vec::new(),
                read_buf: Vec::with_capacity(el.config().read_buffer),
                timers: Slab::new(),
                mailbox: Arc::new(Mailbox::new()),
                gens: Generations::new(),
            },
            local: Rc::new(RefCell::new(Vec::new())),
            accepted: Vec::new(),
            spare_ops: Vec::new(),
            proxy: None,
        }
    }

    /// Read a PROXY protocol header on every accepted connection first.
    pub(crate) fn proxy_protocol(&mut self, p: Option<Arc<ProxyProtocol>>) {
        self.proxy = p;
    }

    /// Serve `fd` (a listening socket) from this table, within `limit`.
    pub(crate) fn listen(
        &mut self,
        el: &mut EventLoop,
        fd: Arc<OwnedFd>,
        exclusive: bool,
        pause: Duration,
        limit: Option<Arc<ConnLimit>>,
    ) -> io::Result<()> {
        let gen = self.shared.gens.next();
        let key = pack(self.entries.vacant_key(), gen);
        let listener = Listener::register(el, fd, exclusive, pause, limit, self.shared.id, key)?;
        self.entries.insert(Entry {
            gen,
            kind: Kind::Listener(listener),
        });
        Ok(())
    }

    /// Serve KCP on `fd` (a bound UDP socket) from this table, within
    /// `limit`.
    pub(crate) fn listen_kcp(
        &mut self,
        el: &mut EventLoop,
        fd: Arc<OwnedFd>,
        cfg: KcpConfig,
        limit: Option<Arc<ConnLimit>>,
    ) -> io::Result<()> {
        let (gen, _, token) = self.register_next(el, fd.as_raw_fd())?;
        let r = match Receiver::new(fd, token, cfg, limit) {
            Ok(r) => r,
            Err(e) => {
                let _ = el.deregister(token);
                return Err(e);
            }
        };
        self.entries.insert(Entry {
            gen,
            kind: Kind::Kcp(Box::new(r)),
        });
        Ok(())
    }

    /// Register `fd` for READABLE under the key of the next entry: its
    /// generation, key and token.
    fn register_next(&mut self, el: &mut EventLoop, fd: RawFd) -> io::Result<(u32, u64, Token)> {
        let gen = self.shared.gens.next();
        let key = pack(self.entries.vacant_key(), gen);
        let token = el.register(fd, Some(Interest::READABLE), self.shared.id, key)?;
        Ok((gen, key, token))
    }

    /// Call the handler's `on_tick` every `every`.
    pub(crate) fn tick(&mut self, el: &mut EventLoop, every: Duration) {
        self.shared.add_timer(el, every, Job::Tick(every));
    }

    /// Hand the table to the loop.
    pub(crate) fn attach(self, el: &mut EventLoop) -> TableRef<H> {
        let r = TableRef {
            id: self.shared.id,
            mailbox: self.shared.mailbox.clone(),
            local: self.local.clone(),
        };
        el.attach_source(self.shared.id, Box::new(self));
        r
    }

    /// Run `f` on connection `key` if it is live (one slab lookup), and
    /// forget its slot if `f` closed it. Returns whether `key` named a live
    /// connection.
    fn on_conn(
        &mut self,
        el: &mut EventLoop,
        key: u64,
        f: impl FnOnce(&mut One<'_, H>, &mut EventLoop),
    ) -> bool {
        let (index, gen) = unpack(key);
        let Table {
            handler,
            entries,
            shared,
            ..
        } = self;
        let Some(Entry {
            gen: g,
            kind: Kind::Conn(slot),
        }) = entries.get_mut(index)
        else {
            return false;
        };
        if *g != gen || slot.core.is_closed() {
            return false;
        }
        let mut one = One {
            h: handler,
            s: slot,
            shared,
            key,
        };
        f(&mut one, el);
        if one.s.core.is_closed() {
            entries.remove(index);
        }
        true
    }

    /// Run `f` on connection `key` with the handler, then settle.
    fn with_conn(
        &mut self,
        el: &mut EventLoop,
        key: u64,
        f: impl FnOnce(&mut H, &mut Conn<'_, H>),
    ) {
        self.on_conn(el, key, |one, el| {
            one.call(el, f);
            one.settle(el);
        });
    }

    /// Register `fd` as a connection and run `on_open`. `permit`: its place
    /// under the server's cap, given back when the connection is dropped.
    /// An accepted connection starts the server's TLS session if it has one.
    pub(crate) fn open(
        &mut self,
        el: &mut EventLoop,
        fd: OwnedFd,
        tcp: bool,
        permit: Option<Permit>,
    ) -> io::Result<()> {
        self.open_as(el, fd, tcp, permit, None)
    }

    /// [`Table::open`], with the addresses a PROXY header named.
    fn open_as(
        &mut self,
        el: &mut EventLoop,
        fd: OwnedFd,
        tcp: bool,
        permit: Option<Permit>,
        proxied: Option<ProxyHeader>,
    ) -> io::Result<()> {
        let session = self.server_session()?;
        self.open_with(el, fd, tcp, permit, session, proxied)
    }

    /// The server side's TLS session for a new connection, if it has TLS.
    fn server_session(&self) -> io::Result<Option<Session>> {
        #[cfg(feature = "tls")]
        if let Some(a) = &self.shared.cfg.tls {
            let s = a.session().map_err(io::Error::other)?;
            return Ok(Some((s, a.handshake_timeout)));
        }
        Ok(None)
    }

    /// Register `fd` as a connection over `session` (TLS) or plain, and
    /// run `on_open`; `proxied`: the addresses a PROXY header named.
    pub(crate) fn open_with(
        &mut self,
        el: &mut EventLoop,
        fd: OwnedFd,
        tcp: bool,
        permit: Option<Permit>,
        session: Option<Session>,
        proxied: Option<ProxyHeader>,
    ) -> io::Result<()> {
        self.shared.cfg.apply(fd.as_raw_fd(), tcp)?;
        let gen = self.shared.gens.next();
        let key = pack(self.entries.vacant_key(), gen);
        let (path, token) = Path::open(el, fd.as_raw_fd(), self.shared.id, key, session)?;
        if let Some(d) = path.handshake_timeout() {
            self.shared.add_timer(el, d, Job::Handshake(key));
        }
        self.insert_conn(el, (key, gen), fd, token, path, permit, proxied);
        Ok(())
    }

    /// Put an opened connection in its slot and run `on_open`.
    #[allow(clippy::too_many_arguments)]
    fn insert_conn(
        &mut self,
        el: &mut EventLoop,
        (key, gen): (u64, u32),
        fd: OwnedFd,
        token: Token,
        path: Path,
        permit: Option<Permit>,
        proxied: Option<ProxyHeader>,
    ) {
        let stats = el.stats();
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        LoopStats::add(&stats.connections_total, 1);
        let mut core = Core::new(fd, token, &self.shared.cfg, el);
        core.permit = permit;
        if let Some(ProxyHeader::Proxy {
            source,
            destination,
        }) = proxied
        {
            core.proxied = Some(Box::new((source, destination)));
        }
        self.entries.insert(Entry {
            gen,
            kind: Kind::Conn(Box::new(Slot {
                core,
                path,
                ctx: H::Context::default(),
            })),
        });
        self.with_conn(el, key, |h, c| h.on_open(c));
    }

    /// The KCP socket at `index`, if that is one.
    fn receiver(&mut self, index: usize) -> Option<&mut Receiver> {
        match self.entries.get_mut(index) {
            Some(Entry {
                kind: Kind::Kcp(r), ..
            }) => Some(r),
            _ => None,
        }
    }

    /// KCP socket `index` is readable: pass each datagram on to its
    /// session, or open one.
    fn kcp_ready(&mut self, el: &mut EventLoop, index: usize) {
        let Some(r) = self.receiver(index) else {
            return;
        };
        let (fd, token) = (r.fd.clone(), r.token);
        let Some(mut batch) = r.batch.take() else {
            return;
        };
        let mut more = true;
        for _ in 0..receiver::READ_ROUNDS {
            let n = match batch.recv(fd.as_raw_fd()) {
                Ok(n) => n,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        // An ICMP error for something a session sent
                        // before its socket was connected: nothing to do.
                        tracing::debug!("kcp: recv: {e}");
                    }
                    more = false;
                    break;
                }
            };
            for i in 0..n {
                if let Some((peer, data, _)) = batch.get(i) {
                    self.kcp_datagram(el, index, peer, data);
                }
            }
            if n < batch.slots() {
                more = false;
                break;
            }
        }
        if let Some(r) = self.receiver(index) {
            r.batch = Some(batch);
            if more {
                el.defer(token, Event::new(token, Event::READABLE));
            }
        }
    }

    /// One datagram on KCP socket `index` from `peer`.
    fn kcp_datagram(&mut self, el: &mut EventLoop, index: usize, peer: SocketAddr, data: &[u8]) {
        let Some(r) = self.receiver(index) else {
            return;
        };
        if let Some(&key) = r.by_peer.get(&peer) {
            if self.on_conn(el, key, |one, el| one.kcp_input(el, data)) {
                return;
            }
            if let Some(r) = self.receiver(index) {
                r.by_peer.remove(&peer);
            }
        }
        let Some(conv) = receiver::push_conv(data) else {
            LoopStats::add(&el.stats().kcp_dropped[receiver::BAD_DATAGRAM], 1);
            return;
        };
        let Some(r) = self.receiver(index) else {
            return;
        };
        let (local, cfg, limit) = (r.local, r.cfg, r.limit.clone());
        let permit = match &limit {
            None => None,
            Some(l) => match l
                .acquire()
                .or_else(|| self.kcp_evict(el, index).then(|| l.acquire()).flatten())
            {
                Some(p) => Some(p),
                None => {
                    LoopStats::add(&el.stats().kcp_dropped[receiver::REFUSED_FULL], 1);
                    return;
                }
            },
        };
        let fd = match receiver::connect_to(local, peer) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!("kcp: cannot open a socket for {peer}: {e}");
                return;
            }
        };
        let gen = self.shared.gens.next();
        let key = pack(self.entries.vacant_key(), gen);
        let (path, token) =
            match KcpPath::open(el, fd.as_raw_fd(), self.shared.id, key, &cfg, conv, peer) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("kcp: cannot register a session for {peer}: {e}");
                    return;
                }
            };
        self.insert_conn(
            el,
            (key, gen),
            fd,
            token,
            Path::Kcp(Box::new(path)),
            permit,
            None,
        );
        self.on_conn(el, key, |one, el| one.kcp_input(el, data));
        let live = self.entries.len();
        let Some(r) = self.receiver(index) else {
            return;
        };
        r.by_peer.insert(peer, key);
        if r.by_peer.len() <= 2 * live {
            return;
        }
        // Closed sessions' entries: swept once they are as many as the
        // live ones (amortised: a sweep per that many new sessions).
        let mut by_peer = std::mem::take(&mut r.by_peer);
        by_peer.retain(|_, k| {
            let (i, g) = unpack(*k);
            self.entries
                .get(i)
                .is_some_and(|e| e.gen == g && matches!(e.kind, Kind::Conn(_)))
        });
        if let Some(r) = self.receiver(index) {
            r.by_peer = by_peer;
        }
    }

    /// At the session cap: end the session silent longest among the next
    /// few, if it has been silent long enough. Returns whether one ended.
    fn kcp_evict(&mut self, el: &mut EventLoop, index: usize) -> bool {
        let Some(mut i) = self.receiver(index).map(|r| r.cursor) else {
            return false;
        };
        let cap = self.entries.capacity().max(1);
        let mut looked = 0;
        let mut oldest: Option<(u64, Instant)> = None;
        // Bounded: at most one lap of the slab's slots.
        for _ in 0..cap {
            i = (i + 1) % cap;
            let Some(Entry {
                gen,
                kind: Kind::Conn(slot),
            }) = self.entries.get_mut(i)
            else {
                continue;
            };
            let Some(k) = slot.path.kcp() else {
                continue;
            };
            looked += 1;
            if oldest.is_none_or(|(_, t)| k.last_heard() < t) {
                oldest = Some((pack(i, *gen), k.last_heard()));
            }
            if looked == receiver::EVICT_SCAN {
                break;
            }
        }
        if let Some(r) = self.receiver(index) {
            r.cursor = i;
        }
        match oldest {
            Some((key, t)) if el.now().saturating_duration_since(t) >= receiver::EVICT_IDLE => {
                LoopStats::add(&el.stats().kcp_dropped[receiver::EVICTED], 1);
                self.on_conn(el, key, |one, el| {
                    one.close_now(el, CloseReason::IdleTimeout)
                });
                true
            }
            _ => false,
        }
    }

    fn accept(&mut self, el: &mut EventLoop, key: u64, index: usize) {
        let mut accepted = std::mem::take(&mut self.accepted);
        let Some(Entry {
            kind: Kind::Listener(l),
            ..
        }) = self.entries.get_mut(index)
        else {
            return;
        };
        let tcp = l.is_tcp();
        if let Some(pause) = l.accept(el, &mut accepted) {
            self.shared.add_timer(el, pause, Job::ResumeAccept(key));
        }
        for a in accepted.drain(..) {
            if let Err(e) = self.admit(el, a.fd, tcp, a.permit) {
                tracing::warn!("cannot register connection: {e}");
            }
        }
        self.accepted = accepted;
    }

    /// An accepted connection: open it, or with the PROXY protocol on,
    /// read its header first (from a trusted peer; any other is closed
    /// here, see [`ProxyProtocol`]).
    fn admit(
        &mut self,
        el: &mut EventLoop,
        fd: OwnedFd,
        tcp: bool,
        permit: Option<Permit>,
    ) -> io::Result<()> {
        let Some(p) = &self.proxy else {
            return self.open(el, fd, tcp, permit);
        };
        // A Unix socket's peers are whoever its file mode lets in: trusted.
        let trusted = !tcp
            || sys::socket::peer_addr(fd.as_raw_fd())
                .ok()
                .and_then(|a| a.as_socket())
                .is_some_and(|a| p.trusts(a.ip()));
        if !trusted {
            tracing::debug!("PROXY protocol: connection from an untrusted address closed");
            LoopStats::add(&el.stats().proxy_refused[preamble::UNTRUSTED], 1);
            return Ok(());
        }
        let timeout = p.timeout_value();
        let (gen, key, token) = self.register_next(el, fd.as_raw_fd())?;
        let mut pre = Box::new(Preamble::new(fd, token, tcp, permit));
        pre.timer = self.shared.add_timer(el, timeout, Job::Preamble(key));
        self.entries.insert(Entry {
            gen,
            kind: Kind::Preamble(pre),
        });
        // Edge-triggered pollers report bytes already queued on
        // registration; level-triggered ones keep reporting them.
        Ok(())
    }

    /// Accepted socket `key` is readable: read its PROXY header on.
    fn preamble_ready(&mut self, el: &mut EventLoop, index: usize) {
        let max = self
            .proxy
            .as_ref()
            .map_or(crate::net::proxy::DEFAULT_MAX_HEADER, |p| {
                p.max_header_value()
            });
        let Some(Entry {
            kind: Kind::Preamble(pre),
            ..
        }) = self.entries.get_mut(index)
        else {
            return;
        };
        let header = match pre.step(max) {
            Step::Wait => return,
            Step::Done(h) => Some(h),
            Step::Fail(slot, why) => {
                tracing::debug!("PROXY protocol: {why}; connection closed");
                LoopStats::add(&el.stats().proxy_refused[slot], 1);
                None
            }
        };
        let pre = self.end_preamble(el, index);
        if let Some(header) = header {
            if let Err(e) = self.open_as(el, pre.fd, pre.tcp, pre.permit, Some(header)) {
                tracing::warn!("cannot register connection: {e}");
            }
        }
    }

    /// Take preamble `index` out of the table and the loop (its socket
    /// closes when the caller drops it).
    fn end_preamble(&mut self, el: &mut EventLoop, index: usize) -> Box<Preamble> {
        let Kind::Preamble(pre) = self.entries.remove(index).kind else {
            unreachable!("end_preamble on another kind of entry");
        };
        let _ = el.deregister(pre.token);
        self.shared.cancel_timer(el, pre.timer);
        pre
    }

    // ---- dials ----------------------------------------------------------

    fn start_dial(&mut self, el: &mut EventLoop, mut dial: Box<Dial>) {
        let (fd, done) = match dial.issue() {
            Ok(r) => r,
            Err(e) => return self.dial_failed(el, dial, e),
        };
        if done {
            return self.dial_open(el, dial, fd);
        }
        let gen = self.shared.gens.next();
        let key = pack(self.entries.vacant_key(), gen);
        let token = match el.register(
            fd.as_raw_fd(),
            Some(Interest::WRITABLE),
            self.shared.id,
            key,
        ) {
            Ok(t) => t,
            Err(e) => return self.dial_failed(el, dial, e),
        };
        let timer = dial
            .timeout()
            .map(|d| self.shared.add_timer(el, d, Job::DialTimeout(key)));
        self.entries.insert(Entry {
            gen,
            kind: Kind::Dial(Dialing {
                fd,
                token,
                dial,
                timer,
            }),
        });
    }

    /// Take dial `key` out of the table and out of the loop.
    fn end_dial(&mut self, el: &mut EventLoop, key: u64) -> Option<(Dialing, io::Result<()>)> {
        let (index, gen) = unpack(key);
        match self.entries.get(index) {
            Some(Entry {
                gen: g,
                kind: Kind::Dial(_),
            }) if *g == gen => {}
            _ => return None,
        }
        let Kind::Dial(d) = self.entries.remove(index).kind else {
            unreachable!()
        };
        if let Some(t) = d.timer {
            self.shared.cancel_timer(el, t);
        }
        let r = el.deregister(d.token);
        Some((d, r))
    }

    fn dial_ready(&mut self, el: &mut EventLoop, key: u64, index: usize) {
        let Some(Entry {
            kind: Kind::Dial(d),
            ..
        }) = self.entries.get(index)
        else {
            return;
        };
        // A spurious wakeup leaves the connect in progress: keep waiting.
        let Some(result) = crate::net::connector::connect_result(d.fd.as_raw_fd()) else {
            return;
        };
        self.finish_dial(el, key, result);
    }

    fn finish_dial(&mut self, el: &mut EventLoop, key: u64, result: io::Result<()>) {
        let Some((d, deregistered)) = self.end_dial(el, key) else {
            return;
        };
        match result.and(deregistered) {
            Ok(()) => self.dial_open(el, d.dial, d.fd),
            Err(e) => {
                drop(d.fd);
                self.dial_failed(el, d.dial, e);
            }
        }
    }

    #[allow(clippy::boxed_local)] // a dial lives boxed in the table; moved whole
    fn dial_open(&mut self, el: &mut EventLoop, dial: Box<Dial>, fd: OwnedFd) {
        // TCP_NODELAY was set by the connector: `open` does not touch it.
        let opened = dial
            .session()
            .and_then(|session| self.open_with(el, fd, false, None, session, None));
        if let Err(e) = opened {
            dial.give_up(&mut LoopCtx::new(el), e);
        }
    }

    fn dial_failed(&mut self, el: &mut EventLoop, mut dial: Box<Dial>, e: io::Error) {
        match dial.retry_after(&e) {
            Some(delay) => {
                self.shared.add_timer(el, delay, Job::Redial(dial));
            }
            None => dial.give_up(&mut LoopCtx::new(el), e),
        }
    }

    fn run_local(&mut self, el: &mut EventLoop) {
        for _ in 0..64 {
            let ops = std::mem::take(&mut *self.local.borrow_mut());
            if ops.is_empty() {
                return;
            }
            for op in ops {
                match op {
                    LocalOp::Dial(d) => self.start_dial(el, d),
                    LocalOp::With(f) => f(&mut self.handler),
                }
            }
        }
    }
}

impl<H: EventHandler> Source for Table<H> {
    fn ready(&mut self, el: &mut EventLoop, key: u64, ev: Event) {
        // Connections first: the hot path is one slab lookup.
        if self.on_conn(el, key, |one, el| one.ready(el, ev)) {
            return;
        }
        let (index, gen) = unpack(key);
        match self.entries.get(index) {
            Some(e) if e.gen == gen => match e.kind {
                Kind::Listener(_) => self.accept(el, key, index),
                Kind::Dial(_) => self.dial_ready(el, key, index),
                Kind::Preamble(_) => self.preamble_ready(el, index),
                Kind::Kcp(_) => self.kcp_ready(el, index),
                Kind::Conn(_) => {}
            },
            _ => {}
        }
    }

    fn complete(&mut self, el: &mut EventLoop, key: u64, c: Completion) {
        let mut c = Some(c);
        self.on_conn(el, key, |one, el| {
            if let Some(c) = c.take() {
                one.complete(el, c);
            }
        });
        if let Some(c) = c {
            // Its connection is gone: give back the buffer it holds.
            el.release(c);
        }
    }

    fn timer(&mut self, el: &mut EventLoop, tag: u64) {
        let Some(t) = self.shared.take_timer(tag) else {
            return;
        };
        match t.job {
            Job::Watchdog(key) => {
                self.on_conn(el, key, |one, el| one.watchdog(el));
            }
            Job::Linger(key) => {
                self.on_conn(el, key, |one, el| {
                    one.s.core.linger_timer = None;
                    let (reason, lingering) = match &one.s.core.phase {
                        Phase::Closing(c) => (c.reason.clone(), c.lingering),
                        _ => (CloseReason::Local, true),
                    };
                    if !lingering {
                        // The close ran out of time before its output
                        // drained (a peer that does not read): reset.
                        one.s.core.reset();
                    }
                    one.close_now(el, reason);
                });
            }
            Job::User(key, f) => self.with_conn(el, key, f),
            Job::DialTimeout(key) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                if let Some(Entry {
                    kind: Kind::Dial(d),
                    ..
                }) = self.entries.get_mut(unpack(key).0)
                {
                    d.timer = None;
                }
                self.finish_dial(el, key, Err(e));
            }
            Job::Redial(dial) => self.start_dial(el, dial),
            Job::ResumeAccept(key) => {
                let (index, gen) = unpack(key);
                if let Some(Entry {
                    gen: g,
                    kind: Kind::Listener(l),
                }) = self.entries.get_mut(index)
                {
                    if *g == gen {
                        l.resume(el);
                    }
                }
            }
            Job::Handshake(key) => {
                self.on_conn(el, key, |one, el| {
                    if one.s.path.handshaking() {
                        one.s.core.doom.get_or_insert(CloseReason::Protocol(
                            "tls: handshake timed out".into(),
                        ));
                        one.settle(el);
                    }
                });
            }
            Job::Preamble(key) => {
                let (index, gen) = unpack(key);
                if let Some(Entry {
                    gen: g,
                    kind: Kind::Preamble(_),
                }) = self.entries.get(index)
                {
                    if *g == gen {
                        tracing::debug!("PROXY protocol: header timed out; connection closed");
                        LoopStats::add(&el.stats().proxy_refused[preamble::TIMEOUT], 1);
                        // The timer has fired: nothing to cancel.
                        if let Kind::Preamble(pre) = self.entries.remove(index).kind {
                            let _ = el.deregister(pre.token);
                        }
                    }
                }
            }
            Job::Kcp(key) => {
                self.on_conn(el, key, |one, el| {
                    let Slot { core, path, .. } = &mut *one.s;
                    if let Some(k) = path.kcp() {
                        k.timer = None;
                        k.tick(core, el);
                    }
                    one.settle(el);
                });
            }
            Job::Tick(every) => {
                self.handler.on_tick(&mut LoopCtx::new(el));
                self.shared.add_timer(el, every, Job::Tick(every));
            }
        }
    }

    fn notify(&mut self, el: &mut EventLoop) {
        self.run_local(el);
        // A connection closed somewhere: listeners paused at the cap accept again.
        for (_, e) in self.entries.iter_mut() {
            if let Kind::Listener(l) = &mut e.kind {
                l.uncap(el);
            }
        }
        let spare = std::mem::take(&mut self.spare_ops);
        let mut ops = self.shared.mailbox.take(spare);
        for op in ops.drain(..) {
            match op {
                Op::Write(key, data) => self.with_conn(el, key, |_, c| {
                    let _ = c.write_vec(data);
                }),
                Op::Close(key) => self.with_conn(el, key, |_, c| c.close()),
                Op::Run(key, f) => self.with_conn(el, key, |h, c| run(f, h, c)),
                Op::Adopt {
                    fd,
                    tcp,
                    in_flight,
                    permit,
                } => {
                    if let Err(e) = self.admit(el, fd, tcp, permit) {
                        tracing::warn!("cannot register connection: {e}");
                    }
                    // Released only once the connection counts as open here,
                    // so a least-connections pick never sees it in neither
                    // count (it may briefly see it in both, which errs
                    // towards the other loops).
                    if let Some((counts, i)) = in_flight {
                        counts[i].fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
        self.spare_ops = ops;
    }

    fn shutdown(&mut self, el: &mut EventLoop) {
        let keys: Vec<u64> = self.entries.iter().map(|(i, e)| pack(i, e.gen)).collect();
        for key in keys {
            self.on_conn(el, key, |one, el| one.close_now(el, CloseReason::Shutdown));
        }
        for (_, e) in self.entries.iter_mut() {
            match &mut e.kind {
                Kind::Listener(l) => l.close(el),
                Kind::Dial(d) => {
                    let _ = el.deregister(d.token);
                }
                Kind::Preamble(p) => {
                    let _ = el.deregister(p.token);
                }
                Kind::Kcp(r) => {
                    let _ = el.deregister(r.token);
                }
                Kind::Conn(_) => {}
            }
        }
        self.entries.clear();
    }

    fn drain(&mut self, el: &mut EventLoop) {
        let keys: Vec<(usize, u64)> = self
            .entries
            .iter()
            .map(|(i, e)| (i, pack(i, e.gen)))
            .collect();
        for (index, key) in keys {
            if let Some(Entry {
                kind: Kind::Listener(l),
                ..
            }) = self.entries.get_mut(index)
            {
                // Closing the listening socket refuses new connections
                // rather than leaving them waiting in a queue.
                l.close(el);
                self.entries.remove(index);
                continue;
            }
            if let Some(Entry {
                kind: Kind::Preamble(_),
                ..
            }) = self.entries.get(index)
            {
                // Not a connection yet: nothing in flight to finish.
                drop(self.end_preamble(el, index));
                continue;
            }
            if let Some(r) = self.receiver(index) {
                // No new sessions; the open ones finish on their own sockets.
                let _ = el.deregister(r.token);
                self.entries.remove(index);
                continue;
            }
            self.with_conn(el, key, |h, c| {
                if h.on_drain(c) {
                    c.close_with(CloseReason::Shutdown);
                }
            });
        }
    }
}

fn run<H: EventHandler>(f: RunFn<H>, h: &mut H, c: &mut Conn<'_, H>) {
    f(h, c)
}

/// The handler's view of connection `key` in slot `s`.
fn view<'a, H: EventHandler>(
    s: &'a mut Slot<H>,
    shared: &'a mut Shared<H>,
    el: &'a mut EventLoop,
    key: u64,
) -> Conn<'a, H> {
    let Slot { core, path, ctx } = s;
    Conn {
        core,
        path,
        ctx,
        lp: LoopCtx::new(el),
        shared,
        key,
    }
}

/// One connection with the handler and the table's shared part: where the
/// core's logic runs (reading and delivering, callbacks, settling, closing).
struct One<'a, H: EventHandler> {
    h: &'a mut H,
    s: &'a mut Slot<H>,
    shared: &'a mut Shared<H>,
    key: u64,
}

impl<H: EventHandler> One<'_, H> {
    /// Run a handler callback, then send what it staged.
    fn call(&mut self, el: &mut EventLoop, f: impl FnOnce(&mut H, &mut Conn<'_, H>)) {
        f(self.h, &mut view(self.s, self.shared, el, self.key));
        let Slot { core, path, .. } = &mut *self.s;
        path.flush_staged(core, el, &mut self.shared.staged);
    }

    fn ready(&mut self, el: &mut EventLoop, ev: Event) {
        if ev.is_readable() {
            let Slot { core, path, .. } = &mut *self.s;
            path.readable(core, el, ev);
            self.read(el);
        }
        let core = &mut self.s.core;
        if ev.is_writable() && core.out.is_some() && core.doom.is_none() {
            self.s.path.flush(core, el);
        }
        let core = &mut self.s.core;
        if ev.is_error() && core.doom.is_none() && !core.is_closed() {
            if let Ok(Some(e)) = sys::socket::take_error(core.fd.as_raw_fd()) {
                core.fail(&e);
            }
        }
        if ev.is_hup() && core.read == ReadState::Eof && matches!(core.phase, Phase::Closing(_)) {
            // Both directions are gone: nothing left to drain or send.
            OutQueue::put_spare(core.out.take());
        }
        self.settle(el);
    }

    /// Pull input from the path and deliver it, within the read budget.
    fn read(&mut self, el: &mut EventLoop) {
        let budget = el.config().read_budget;
        for _ in 0..budget {
            let core = &self.s.core;
            // (Whether a pause stops the pull is the path's call: input it
            // already holds, like an EOF behind stashed bytes, still comes.)
            if core.is_closed() || core.doom.is_some() || core.read == ReadState::Eof {
                return;
            }
            let mut rb = std::mem::take(&mut self.shared.read_buf);
            rb.clear();
            let Slot { core, path, .. } = &mut *self.s;
            match path.pull(core, el, &mut rb) {
                Input::Data if core.is_closing() => {
                    // Closing: input is read only to be discarded.
                    core.discard(rb.len() as u64, self.shared.cfg.closing_discard);
                    self.shared.read_buf = rb;
                }
                Input::Data => self.deliver(el, rb),
                Input::Tail => {
                    self.shared.read_buf = rb;
                    if let Some(tail) = self.s.core.input.take() {
                        self.hand_over_tail(el, tail);
                    }
                }
                Input::Eof => {
                    self.shared.read_buf = rb;
                    return self.eof(el);
                }
                Input::Stop => {
                    self.shared.read_buf = rb;
                    return;
                }
            }
        }
        let Slot { core, path, .. } = &mut *self.s;
        path.budget_spent(core, el);
    }

    fn complete(&mut self, el: &mut EventLoop, c: Completion) {
        let mut rb = std::mem::take(&mut self.shared.read_buf);
        rb.clear();
        let Slot { core, path, .. } = &mut *self.s;
        match path.complete(core, el, c, &mut rb) {
            Input::Data if core.is_closing() => {
                core.discard(rb.len() as u64, self.shared.cfg.closing_discard);
                self.shared.read_buf = rb;
            }
            Input::Data => self.deliver(el, rb),
            Input::Eof => {
                self.shared.read_buf = rb;
                self.eof(el);
            }
            Input::Tail | Input::Stop => self.shared.read_buf = rb,
        }
        self.settle(el);
    }

    /// The peer's EOF has been read.
    fn eof(&mut self, el: &mut EventLoop) {
        self.s.core.read = ReadState::Eof;
        if self.s.core.phase == Phase::Open {
            self.call(el, |h, c| h.on_read_closed(c));
        }
        // Closing: nothing more to deliver; settle finishes the close.
    }

    /// Hand freshly read bytes (in the table's read buffer `rb`) to the
    /// handler, behind any tail kept from before.
    fn deliver(&mut self, el: &mut EventLoop, mut rb: Vec<u8>) {
        if let Some(mut tail) = self.s.core.input.take() {
            tail.extend_from_slice(&rb);
            rb.clear();
            self.shared.read_buf = rb;
            return self.hand_over_tail(el, tail);
        }
        let mut input = Buffer::from(rb);
        self.call(el, |h, c| h.on_message(c, &mut input));
        if !input.is_empty() {
            self.s.core.input = Some(Box::new(Buffer::from(input.as_slice().to_vec())));
            if let Some(w) = self.s.core.watch.as_mut() {
                w.partial_since = Some(el.now());
            }
        }
        let mut rb = input.into_vec();
        rb.clear();
        self.shared.read_buf = rb;
    }

    /// Give the kept input to the handler; keep what it leaves.
    fn hand_over_tail(&mut self, el: &mut EventLoop, mut tail: Box<Buffer>) {
        self.call(el, |h, c| h.on_message(c, &mut tail));
        if !tail.is_empty() {
            self.s.core.input = Some(tail);
        } else if let Some(w) = self.s.core.watch.as_mut() {
            w.partial_since = None;
        }
    }

    /// Apply what the callbacks asked for: close, shutdown, deferred
    /// callbacks; then tell the driver what the connection wants.
    fn settle(&mut self, el: &mut EventLoop) {
        let Slot { core, path, .. } = &mut *self.s;
        if !core.is_closed() {
            path.prepare(core, el);
        }
        // Bounded: a handler that writes from every on_write_complete gets
        // its next turn later instead of starving the loop.
        for _ in 0..16 {
            let core = &mut self.s.core;
            if core.is_closed() {
                return;
            }
            if let Some(reason) = core.doom.take() {
                return self.close_now(el, reason);
            }
            if core.due.high_water {
                core.due.high_water = false;
                let queued = core.queued();
                self.call(el, |h, c| h.on_high_water(c, queued));
                continue;
            }
            if core.due.kept_input {
                core.due.kept_input = false;
                if core.reading() {
                    if let Some(tail) = core.input.take() {
                        self.hand_over_tail(el, tail);
                        continue;
                    }
                }
            }
            if core.out.is_some() || self.s.path.holds_output() {
                break;
            }
            if core.due.write_complete {
                core.due.write_complete = false;
                if core.phase == Phase::Open {
                    self.call(el, |h, c| h.on_write_complete(c));
                    continue;
                }
            }
            match &core.phase {
                Phase::Closing(c) => {
                    if core.read == ReadState::Eof {
                        let reason = c.reason.clone();
                        return self.close_now(el, reason);
                    }
                    if !c.linger && core.input.as_ref().is_none_or(|b| b.is_empty()) {
                        let reason = c.reason.clone();
                        return self.close_now(el, reason);
                    }
                    if !c.lingering {
                        self.start_linger(el);
                        if self.s.core.is_closed() {
                            return;
                        }
                    }
                }
                Phase::Open if core.write == WriteState::ShutWanted => {
                    core.write = WriteState::Shut;
                    if let Err(e) = sys::socket::shutdown_write(core.fd.as_raw_fd()) {
                        core.fail(&e);
                        continue;
                    }
                }
                _ => {}
            }
            break;
        }
        let Slot { core, path, .. } = &mut *self.s;
        if let Err(e) = path.settle(core, el) {
            return self.close_now(el, CloseReason::from_io(&e));
        }
        let core = &mut self.s.core;
        if core.watch.is_none() && core.out.is_some() && self.shared.cfg.write_timeout.is_some() {
            // Output has to wait for the first time: from now on the write
            // timeout counts.
            core.watch = Some(Box::new(Watchdog::new(&self.shared.cfg, el.now())));
        }
        if self.s.core.watch.is_some() {
            self.arm_watchdog(el);
        }
        self.arm_kcp(el);
    }

    /// A KCP connection: make sure its engine's timer fires no later than
    /// the engine (or its dead-peer deadline) needs.
    fn arm_kcp(&mut self, el: &mut EventLoop) {
        let Some(k) = self.s.path.kcp() else {
            return;
        };
        let now = el.now();
        let at = k.wake_at(now);
        if let Some((tag, armed)) = k.timer {
            if armed <= at {
                return; // fires early enough; the tick asks again
            }
            self.shared.cancel_timer(el, tag);
        }
        let tag = self
            .shared
            .add_timer(el, at.saturating_duration_since(now), Job::Kcp(self.key));
        if let Some(k) = self.s.path.kcp() {
            k.timer = Some((tag, at));
        }
    }

    /// A datagram for this KCP connection that reached the server's socket
    /// (its first, or one queued before its own socket was connected).
    fn kcp_input(&mut self, el: &mut EventLoop, data: &[u8]) {
        let Slot { core, path, .. } = &mut *self.s;
        if let Some(k) = path.kcp() {
            k.input(core, el, data);
        }
        self.read(el);
        self.settle(el);
    }

    /// Make sure a timer is set no later than the earliest deadline.
    fn arm_watchdog(&mut self, el: &mut EventLoop) {
        let writing = self.s.core.out.is_some();
        let Some(w) = self.s.core.watch.as_mut() else {
            return;
        };
        let Some((at, _)) = w.next(writing) else {
            return;
        };
        if let Some((_, armed)) = w.timer {
            if armed <= at {
                return; // fires early enough; it re-checks then
            }
        }
        if let Some((tag, _)) = w.timer.take() {
            self.shared.cancel_timer(el, tag);
        }
        let delay = at.saturating_duration_since(Instant::now());
        let tag = self.shared.add_timer(el, delay, Job::Watchdog(self.key));
        if let Some(w) = self.s.core.watch.as_mut() {
            w.timer = Some((tag, at));
        }
    }

    fn watchdog(&mut self, el: &mut EventLoop) {
        let core = &mut self.s.core;
        let writing = core.out.is_some();
        let Some(w) = core.watch.as_mut() else {
            return;
        };
        w.timer = None;
        if let Some((at, reason)) = w.next(writing) {
            if at <= Instant::now() {
                core.doom.get_or_insert(reason);
            }
        }
        self.settle(el);
    }

    /// Output drained on a closing connection: FIN, then wait for the peer's.
    fn start_linger(&mut self, el: &mut EventLoop) {
        let core = &mut self.s.core;
        let mut linger = self.shared.cfg.linger;
        if let Phase::Closing(c) = &mut core.phase {
            c.lingering = true;
            // Within what is left of the closing time.
            linger = linger.min(c.deadline.saturating_duration_since(el.now()));
        }
        core.write = WriteState::Shut;
        if let Err(e) = sys::socket::shutdown_write(core.fd.as_raw_fd()) {
            return self.close_now(el, CloseReason::from_io(&e));
        }
        if let Some(t) = self.s.core.linger_timer.take() {
            self.shared.cancel_timer(el, t);
        }
        let tag = self.shared.add_timer(el, linger, Job::Linger(self.key));
        self.s.core.linger_timer = Some(tag);
    }

    /// Close at once: out of the loop, tell the handler. The table forgets
    /// the slot (and so closes the fd) when this operation returns.
    fn close_now(&mut self, el: &mut EventLoop, reason: CloseReason) {
        let core = &mut self.s.core;
        if core.is_closed() {
            return;
        }
        // Mark closed first so writes from on_close fail cleanly.
        core.phase = Phase::Closed;
        if let Some(flag) = &core.closed_flag {
            flag.store(true, Ordering::Release);
        }
        if let Some(t) = core.linger_timer.take() {
            self.shared.cancel_timer(el, t);
        }
        if let Some((t, _)) = core.watch.as_mut().and_then(|w| w.timer.take()) {
            self.shared.cancel_timer(el, t);
        }
        if let Some((t, _)) = self.s.path.kcp().and_then(|k| k.timer.take()) {
            self.shared.cancel_timer(el, t);
        }
        let Slot { core, path, .. } = &mut *self.s;
        path.close(core, el);
        // The slot, and with it the connection's only fd, goes when this
        // operation returns: epoll forgets a closed fd by itself.
        let _ = el.deregister_closing(core.token);
        let stats = el.stats();
        stats.connections_open.fetch_sub(1, Ordering::Relaxed);
        LoopStats::add(&stats.closed[reason.slot()], 1);
        OutQueue::put_spare(core.out.take());
        core.input = None;
        let mut conn = view(self.s, self.shared, el, self.key);
        self.h.on_close(&mut conn, &reason);
        self.shared.staged.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ConnHandle;
    use crate::poller::PollerKind;
    use crate::reactor::LoopConfig;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Takes one message, then pauses reading; records what it is given.
    #[derive(Default)]
    struct Pauser {
        got: Vec<u8>,
        messages: usize,
        eof: bool,
        handle: Option<ConnHandle<Pauser>>,
    }

    impl EventHandler for Pauser {
        type Context = ();

        fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
            self.handle = Some(conn.handle());
        }

        fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
            self.got.extend_from_slice(input.as_slice());
            self.messages += 1;
            input.clear();
            conn.pause_read();
        }

        fn on_read_closed(&mut self, _conn: &mut Conn<'_, Self>) {
            self.eof = true;
        }
    }

    /// Proactor: completions already posted when reading pauses (data the
    /// recv took, then the peer's FIN) are kept, and handed over, in order,
    /// on resume. (With completions deferred to the loop's waits, the two
    /// writes would be read as one; posted as they happen, each is its own.)
    #[test]
    fn proactor_keeps_what_arrives_while_paused_and_the_eof_behind_it() {
        let mut el = EventLoop::new(LoopConfig {
            poller: PollerKind::Proactor,
            defer_completions: false,
            ..LoopConfig::default()
        })
        .unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut table = Table::new(&mut el, Pauser::default(), ConnConfig::default());
        table.open(&mut el, OwnedFd::from(a), false, None).unwrap();
        let table = table.attach(&mut el);
        el.turn(Some(Duration::ZERO)).unwrap(); // the recv goes to the kernel
                                                // Each write returns to user space on the loop's thread, which runs
                                                // the ring's pending work: one completion per write, none reaped yet.
        b.write_all(b"one").unwrap();
        b.write_all(b"two").unwrap();
        b.shutdown(std::net::Shutdown::Write).unwrap();
        for _ in 0..100 {
            el.turn(Some(Duration::from_millis(20))).unwrap();
            if table.with(&mut el, |h| h.messages).unwrap() > 0 {
                break;
            }
        }
        let (got, eof) = table.with(&mut el, |h| (h.got.clone(), h.eof)).unwrap();
        assert_eq!(got, b"one", "paused after the first message");
        assert!(!eof, "the EOF is behind stashed input");
        // More turns change nothing while paused.
        el.turn(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(table.with(&mut el, |h| h.messages).unwrap(), 1);
        let handle = table.with(&mut el, |h| h.handle.clone()).unwrap().unwrap();
        handle.run(|_, conn| conn.resume_read()).unwrap();
        for _ in 0..10 {
            el.turn(Some(Duration::from_millis(20))).unwrap();
            if table.with(&mut el, |h| h.eof).unwrap() {
                break;
            }
        }
        let (got, messages, eof) = table
            .with(&mut el, |h| (h.got.clone(), h.messages, h.eof))
            .unwrap();
        assert_eq!(got, b"onetwo");
        assert_eq!(messages, 2);
        assert!(eof);
    }

    /// Timers and handles name a connection by slot and generation: after
    /// the connection closes and another takes its slot, an operation for
    /// the old key finds nothing.
    #[test]
    fn a_stale_key_reaches_nothing_after_the_slot_is_reused() {
        let mut el = EventLoop::new(LoopConfig::default()).unwrap();
        let mut table = Table::new(&mut el, Pauser::default(), ConnConfig::default());
        let (a, a_peer) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        table.open(&mut el, OwnedFd::from(a), false, None).unwrap();
        let (index, entry) = table.entries.iter().next().unwrap();
        let stale = pack(index, entry.gen);
        let first = table.handler.handle.take().unwrap();
        let table = table.attach(&mut el);
        drop(a_peer);
        first.close();
        for _ in 0..100 {
            el.turn(Some(Duration::from_millis(20))).unwrap();
            if first.is_closed() {
                break;
            }
        }
        assert!(
            first.is_closed(),
            "the peer's EOF closed the first connection"
        );
        let (b, _b_peer) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let adopt = Op::Adopt {
            fd: OwnedFd::from(b),
            tcp: false,
            in_flight: None,
            permit: None,
        };
        table.mailbox.send(&el.handle(), table.id, adopt).unwrap();
        el.turn(Some(Duration::from_millis(20))).unwrap();
        let second = table.with(&mut el, |h| h.handle.clone()).unwrap().unwrap();
        assert!(!second.is_closed());
        // The old key names the reused slot with an old generation.
        table
            .mailbox
            .send(&el.handle(), table.id, Op::Close(stale))
            .unwrap();
        for _ in 0..5 {
            el.turn(Some(Duration::from_millis(5))).unwrap();
        }
        assert!(
            !second.is_closed(),
            "an operation for a stale key hit the newcomer"
        );
        assert_eq!(el.stats().connections_open.load(Ordering::Relaxed), 1);
    }
}
