//! The stream server: listeners, acceptors, thread models and balancing.
//!
//! | model | threads | who accepts |
//! |---|---|---|
//! | `loops(0)` | 1 | the single reactor accepts and serves |
//! | `loops(n)` (acceptor) | 1 + n | a main reactor accepts and hands each connection to a sub-reactor chosen by the [`Balance`] policy |
//! | `loops(n)` + [`AcceptMode::ReusePort`] | n | every loop has its own SO_REUSEPORT listener; the kernel spreads connections |
//! | `loops(n)` + [`AcceptMode::Exclusive`] | n | every loop watches one shared listener registered for exclusive wake-up (EPOLLEXCLUSIVE), so a connection wakes one loop where the driver honours it ([`Caps::exclusive`](crate::poller::Caps::exclusive)) |

use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{SockAddr, Socket, Type};

use super::conn::handle::{Mailbox, Op};
use super::conn::table::{Table, TableRef};
use super::conn::ConnConfig;
use super::limit::{show_bytes, show_timeout, ConnLimit, MaxConnections};
use super::listener::{Accepted, Listener};
use super::proxy::ProxyProtocol;
use super::{Addr, EventHandler};
use crate::kcp::KcpConfig;
use crate::poller::{Event, PollerKind, Trigger};
use crate::reactor::{EventLoop, LoopConfig, LoopGroup, LoopHandle, Source, SourceId};
use crate::sys;

/// How the acceptor picks a sub-reactor for a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Balance {
    /// Each sub-reactor in turn (the default).
    #[default]
    RoundRobin,
    /// The loop with the fewest open connections.
    LeastConnections,
    /// Hash of the peer's IP: one client always lands on the same loop.
    SourceHash,
}

impl std::str::FromStr for Balance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "round-robin" | "rr" => Ok(Balance::RoundRobin),
            "least-conn" | "least-connections" => Ok(Balance::LeastConnections),
            "source-hash" | "hash" => Ok(Balance::SourceHash),
            _ => Err(format!(
                "unknown balance {s:?} (round-robin, least-conn, source-hash)"
            )),
        }
    }
}

/// How loops share listening sockets when `loops > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AcceptMode {
    /// A main reactor accepts; sub-reactors serve.
    #[default]
    Acceptor,
    /// A SO_REUSEPORT listener per loop.
    ReusePort,
    /// One listener watched by every loop with exclusive wake-up
    /// (EPOLLEXCLUSIVE) where the driver honours it (epoll, uring,
    /// proactor); on the others every loop is woken and the losers'
    /// accept finds nothing.
    Exclusive,
}

impl std::str::FromStr for AcceptMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "acceptor" => Ok(AcceptMode::Acceptor),
            "reuseport" => Ok(AcceptMode::ReusePort),
            "exclusive" => Ok(AcceptMode::Exclusive),
            _ => Err(format!(
                "unknown accept mode {s:?} (acceptor, reuseport, exclusive)"
            )),
        }
    }
}

/// Builds a [`Server`]. Every setting has a named method; defaults: epoll,
/// level-triggered, one loop per CPU behind an acceptor, round-robin,
/// TCP_NODELAY on, backlog from /proc/sys/net/core/somaxconn.
#[derive(Clone, Debug)]
pub struct ServerBuilder {
    addrs: Vec<Addr>,
    loops: usize,
    poller: PollerKind,
    trigger: Trigger,
    balance: Balance,
    mode: AcceptMode,
    backlog: Option<i32>,
    conn: ConnConfig,
    read_buffer: usize,
    read_budget: usize,
    accept_pause: Duration,
    tick: Option<Duration>,
    unix_mode: u32,
    max_conns: MaxConnections,
    defer_accept: Option<Duration>,
    proxy: Option<Arc<ProxyProtocol>>,
    kcp: Option<KcpConfig>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addrs: Vec::new(),
            loops: sys::cpu_count(),
            poller: PollerKind::Epoll,
            trigger: Trigger::Level,
            balance: Balance::RoundRobin,
            mode: AcceptMode::Acceptor,
            backlog: None,
            conn: ConnConfig::default(),
            read_buffer: 64 * 1024,
            read_budget: 16,
            accept_pause: Duration::from_millis(100),
            tick: None,
            unix_mode: DEFAULT_UNIX_MODE,
            max_conns: MaxConnections::Auto,
            defer_accept: None,
            proxy: None,
            kcp: None,
        }
    }
}

impl ServerBuilder {
    /// A builder with the defaults listed on [`ServerBuilder`] and no
    /// address yet (add at least one with [`bind`](Self::bind)).
    pub fn new() -> ServerBuilder {
        ServerBuilder::default()
    }
    /// Serve KCP over UDP instead of TCP: the addresses are UDP ports, and
    /// each peer's conversation is a connection with the same handler API
    /// (`on_message` gets the reliable byte stream, or whole messages in
    /// message mode; writes go into the send window, the rest queued). Each
    /// loop has its own SO_REUSEPORT socket (whatever the accept mode); a
    /// session gets a UDP socket of its own, connected to its peer, so the
    /// connection cap ([`max_connections`](Self::max_connections)) is the
    /// session cap. See [`crate::kcp`].
    pub fn kcp(mut self, cfg: KcpConfig) -> Self {
        self.kcp = Some(cfg);
        self
    }

    /// Serve TLS (feature `tls`): every accepted connection does the
    /// handshake, then the handler works on plaintext through the same
    /// `Conn` API. Build the acceptor with
    /// [`TlsServerBuilder`](crate::net::tls::TlsServerBuilder).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, acceptor: crate::net::tls::TlsAcceptor) -> Self {
        self.conn.tls = Some(acceptor);
        self
    }

    /// Accept TCP connections only once the client has sent something
    /// (TCP_DEFER_ACCEPT), waiting up to `d` (whole seconds, at least 1):
    /// the accept and the first read then come with one wake-up, and a
    /// client that connects and says nothing costs the server nothing
    /// until then. Only for protocols where the client speaks first (HTTP,
    /// TLS, RESP, a PROXY header). Off by default.
    pub fn defer_accept(mut self, d: Duration) -> Self {
        self.defer_accept = Some(d);
        self
    }

    /// Add an address to listen on (call repeatedly for several).
    pub fn bind(mut self, addr: impl Into<Addr>) -> Self {
        self.addrs.push(addr.into());
        self
    }
    /// 0: one reactor accepts and serves; n: n serving loops.
    pub fn loops(mut self, n: usize) -> Self {
        self.loops = n;
        self
    }
    /// The number of sub-reactors asked for (0: the single reactor).
    pub fn loop_count(&self) -> usize {
        self.loops
    }
    /// The readiness mechanism every loop uses. Default
    /// [`PollerKind::Epoll`]. A mechanism the kernel does not offer (e.g.
    /// io_uring disabled) makes `start`/`run` fail when the loops are
    /// created.
    pub fn poller(mut self, kind: PollerKind) -> Self {
        self.poller = kind;
        self
    }
    /// Level- or edge-triggered readiness. Default [`Trigger::Level`].
    /// Edge needs a poller that supports it (epoll, uring, sigio; see
    /// [`Caps`](crate::poller::Caps)): `start`/`run` refuse it on the
    /// others with `InvalidInput`. The sigio poller is edge-triggered
    /// whatever is asked.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }
    /// How the acceptor picks a sub-reactor for each new connection.
    /// Default [`Balance::RoundRobin`]. Used only with `loops(n > 0)` and
    /// [`AcceptMode::Acceptor`].
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }
    /// How the loops share the listening sockets when `loops > 0` (see the
    /// table in the module docs). Default [`AcceptMode::Acceptor`].
    pub fn accept_mode(mut self, mode: AcceptMode) -> Self {
        self.mode = mode;
        self
    }
    /// The `listen(2)` backlog: connections the kernel queues before they
    /// are accepted. Default [`somaxconn`] (the kernel caps any larger
    /// value at it).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = Some(backlog);
        self
    }
    /// Set `TCP_NODELAY` on accepted TCP connections (Nagle off, so small
    /// replies leave at once). Default `true`; `false` leaves the kernel's
    /// setting. Ignored for Unix sockets.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.conn.nodelay = on;
        self
    }
    /// Output queued beyond this many bytes calls the handler's
    /// `on_high_water` (once per crossing). Writes are not refused above
    /// it. Default 1 MiB ([`DEFAULT_HIGH_WATER`](super::DEFAULT_HIGH_WATER)).
    pub fn high_water(mut self, bytes: usize) -> Self {
        self.conn.high_water = bytes;
        self
    }
    /// How long a graceful close keeps reading (and discarding) after
    /// shutting down its write side, waiting for the peer's FIN, so unread
    /// input does not turn the close into a reset. Default 2 s. Not
    /// SO_LINGER (see [`so_linger`](Self::so_linger)).
    pub fn linger(mut self, d: Duration) -> Self {
        self.conn.linger = d;
        self
    }
    /// The longest a closing connection may take before it is reset
    /// (default 30 s; see [`ConnConfig::closing_time`]).
    pub fn closing_time(mut self, d: Duration) -> Self {
        self.conn.closing_time = d;
        self
    }
    /// Bytes a closing connection reads and discards before it is reset
    /// (default 1 MiB; see [`ConnConfig::closing_discard`]).
    pub fn closing_discard(mut self, bytes: u64) -> Self {
        self.conn.closing_discard = bytes;
        self
    }
    /// Close connections idle (no bytes either way) for this long; `None`
    /// (the default) never.
    pub fn idle_timeout(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.conn.idle_timeout = d.into();
        self
    }
    /// Close connections whose started message stays incomplete this long;
    /// `None` (the default) never.
    pub fn read_timeout(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.conn.read_timeout = d.into();
        self
    }
    /// Close connections whose queued output makes no progress this long;
    /// `None` waits forever. Default 60 s
    /// ([`DEFAULT_WRITE_TIMEOUT`](super::DEFAULT_WRITE_TIMEOUT)).
    pub fn write_timeout(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.conn.write_timeout = d.into();
        self
    }
    /// The most connections the server holds open at once, over all its
    /// loops. At the cap the server stops accepting, and new clients wait
    /// in the kernel's accept queue (the listen backlog) until a
    /// connection closes; see [`MaxConnections`]. Default
    /// [`MaxConnections::Auto`], derived from the fd limit.
    pub fn max_connections(mut self, max: MaxConnections) -> Self {
        self.max_conns = max;
        self
    }
    /// Turn on TCP keepalive probes with these timings on accepted TCP
    /// connections. Default off (the kernel's setting). Ignored for Unix
    /// sockets.
    pub fn keepalive(mut self, k: super::conn::Keepalive) -> Self {
        self.conn.keepalive = Some(k);
        self
    }
    /// SO_LINGER for accepted sockets (`Duration::ZERO`: reset on close).
    pub fn so_linger(mut self, d: Duration) -> Self {
        self.conn.so_linger = Some(d);
        self
    }
    /// SO_SNDBUF in bytes for accepted sockets (Linux doubles it and caps
    /// it at `net.core.wmem_max`). Default unset: the kernel autotunes,
    /// which a fixed size turns off.
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.conn.send_buffer = Some(bytes);
        self
    }
    /// SO_RCVBUF in bytes for accepted sockets (Linux doubles it and caps
    /// it at `net.core.rmem_max`). Default unset: the kernel autotunes,
    /// which a fixed size turns off.
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.conn.recv_buffer = Some(bytes);
        self
    }
    /// Call the handler's `on_tick` every `every` on each serving loop.
    /// Default: no tick.
    pub fn tick(mut self, every: Duration) -> Self {
        self.tick = Some(every);
        self
    }

    /// Size in bytes of each loop's shared read buffer (one read takes at
    /// most this much). Default 64 KiB; values below 512 are raised to 512.
    pub fn read_buffer(mut self, bytes: usize) -> Self {
        self.read_buffer = bytes.max(512);
        self
    }
    /// Reads per connection per turn before the others get theirs.
    /// Default 16; 0 is raised to 1.
    pub fn read_budget(mut self, reads: usize) -> Self {
        self.read_budget = reads.max(1);
        self
    }
    /// How long accepting pauses after EMFILE/ENFILE before trying again.
    /// Default 100 ms.
    pub fn accept_pause(mut self, d: Duration) -> Self {
        self.accept_pause = d;
        self
    }

    /// Expect a PROXY protocol header (v1 or v2) at the start of every
    /// accepted connection, from the networks `p` trusts; the connection
    /// opens (`on_open`) only once the header is read, and
    /// [`Conn::peer_addr`](crate::net::Conn::peer_addr) reports the client
    /// it names. A connection from an untrusted address, or with a
    /// malformed, oversized or late header, is closed without reaching the
    /// handler. Off by default.
    pub fn proxy_protocol(mut self, p: ProxyProtocol) -> Self {
        self.proxy = Some(Arc::new(p));
        self
    }

    /// Permission bits given to Unix-domain socket files after binding
    /// (default 0o660: owner and group may connect).
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = mode;
        self
    }

    /// A one-line summary of the configuration for logs and banners, e.g.
    /// `poller=epoll trigger=Level model=main reactor + 4 sub-reactors
    /// (RoundRobin)`. The trigger shown is the one the poller will really
    /// use.
    pub fn describe(&self) -> String {
        let model = match (self.loops, self.mode) {
            (0, _) if self.kcp.is_some() => "single reactor, KCP over UDP".to_string(),
            (n, _) if self.kcp.is_some() => {
                format!("{n} reactors, KCP over UDP, SO_REUSEPORT socket each")
            }
            (0, _) => "single reactor".to_string(),
            (n, AcceptMode::Acceptor) => {
                format!("main reactor + {n} sub-reactors ({:?})", self.balance)
            }
            (n, AcceptMode::ReusePort) => format!("{n} reactors, SO_REUSEPORT listener each"),
            (n, AcceptMode::Exclusive) => {
                format!("{n} reactors sharing one EPOLLEXCLUSIVE listener")
            }
        };
        // sigio is edge-triggered whatever was asked for.
        let trigger = self
            .poller
            .caps()
            .trigger_for(self.trigger)
            .unwrap_or(self.trigger);
        let proxy = self
            .proxy
            .as_ref()
            .map_or(String::new(), |p| format!("; {}", p.describe()));
        format!(
            "poller={} trigger={trigger:?} model={model}; {}{proxy}",
            self.poller.name(),
            self.describe_limits()
        )
    }

    /// The per-connection limits in force, e.g. `max-connections=17500
    /// idle-timeout=off read-timeout=off write-timeout=60s high-water=1MiB
    /// closing-time=30s closing-discard=1MiB`.
    pub fn describe_limits(&self) -> String {
        let max = match self.max_conns.resolve() {
            Some(n) => n.to_string(),
            None => "unlimited".to_string(),
        };
        let c = &self.conn;
        format!(
            "max-connections={max} idle-timeout={} read-timeout={} write-timeout={} high-water={} closing-time={} closing-discard={}",
            show_timeout(c.idle_timeout),
            show_timeout(c.read_timeout),
            show_timeout(c.write_timeout),
            show_bytes(c.high_water as u64),
            show_timeout(Some(c.closing_time)),
            show_bytes(c.closing_discard),
        )
    }

    fn loop_config(&self, id: usize) -> LoopConfig {
        LoopConfig {
            poller: self.poller,
            trigger: self.trigger,
            read_buffer: self.read_buffer,
            read_budget: self.read_budget,
            id,
            ..Default::default()
        }
    }

    /// What both [`ServerBuilder::start`] and [`ServerBuilder::run`] refuse.
    fn check(&self) -> io::Result<()> {
        if self.addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "server has no address to bind",
            ));
        }
        if self.kcp.is_some() && self.addrs.iter().any(|a| !a.is_tcp()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "kcp serves on IP addresses (a UDP port), not Unix sockets",
            ));
        }
        if self.poller.caps().trigger_for(self.trigger).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "edge trigger needs the epoll or uring poller",
            ));
        }
        Ok(())
    }

    /// Bind every address up front, so errors surface at once and port 0
    /// resolves once: (actual address, listener).
    fn bind_all(&self, backlog: i32) -> io::Result<Vec<(Addr, Arc<OwnedFd>)>> {
        // Single-reactor ReusePort binds with SO_REUSEPORT too, so several
        // processes (see `net::process`) can each own a listener on one port.
        let reuseport = self.mode == AcceptMode::ReusePort;
        let mut bound = Vec::new();
        for addr in &self.addrs {
            if let (Some(_), Addr::Tcp(a)) = (&self.kcp, addr) {
                let fd = crate::kcp::receiver::bind(*a)?;
                let actual = Addr::from_sockaddr(&sys::socket::local_addr(fd.as_raw_fd())?)
                    .unwrap_or(addr.clone());
                let fd = Arc::new(fd);
                super::inherit::hold(&fd);
                bound.push((actual, fd));
                continue;
            }
            let fd = listen_with(
                addr,
                &ListenOptions {
                    backlog,
                    reuseport,
                    unix_mode: self.unix_mode,
                },
            )?;
            let actual = Addr::from_sockaddr(&sys::socket::local_addr(fd.as_raw_fd())?)
                .unwrap_or(addr.clone());
            self.prepare_listener(addr, &fd)?;
            let fd = Arc::new(fd);
            super::inherit::hold(&fd);
            bound.push((actual, fd));
        }
        Ok(bound)
    }

    /// Options accepted sockets inherit from their listener, set once on
    /// the listener instead of once per connection: TCP_NODELAY (Linux
    /// copies a listener's TCP options to each socket it accepts).
    fn prepare_listener(&self, addr: &Addr, fd: &OwnedFd) -> io::Result<()> {
        if let (true, Some(d)) = (addr.is_tcp(), self.defer_accept) {
            let secs =
                u32::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(u32::MAX);
            sys::socket::set_defer_accept(fd.as_raw_fd(), secs.max(1)).map_err(|e| {
                io::Error::new(e.kind(), format!("setsockopt TCP_DEFER_ACCEPT {addr}: {e}"))
            })?;
        }
        if addr.is_tcp() && self.conn.nodelay {
            sys::socket::with_sock(fd.as_raw_fd(), |s| s.set_nodelay(true)).map_err(|e| {
                io::Error::new(e.kind(), format!("setsockopt TCP_NODELAY {addr}: {e}"))
            })?;
        }
        Ok(())
    }

    /// The listeners serving loop `id` watches, each with whether it is
    /// shared for exclusive wake-up. ReusePort binds loop `id`'s own here.
    fn loop_listeners(
        &self,
        id: usize,
        bound: &[(Addr, Arc<OwnedFd>)],
        backlog: i32,
    ) -> io::Result<Vec<(Arc<OwnedFd>, bool)>> {
        if self.kcp.is_some() {
            // Every loop its own SO_REUSEPORT socket, whatever the mode.
            return bound
                .iter()
                .map(|(a, fd)| match (id, a) {
                    (0, _) => Ok((fd.clone(), false)),
                    (_, Addr::Tcp(a)) => crate::kcp::receiver::bind(*a).map(|fd| {
                        let fd = Arc::new(fd);
                        super::inherit::hold(&fd);
                        (fd, false)
                    }),
                    _ => Ok((fd.clone(), false)),
                })
                .collect();
        }
        Ok(match (self.loops, self.mode) {
            (0, _) => bound.iter().map(|(_, fd)| (fd.clone(), false)).collect(),
            (_, AcceptMode::Acceptor) => Vec::new(),
            // Unix-domain sockets have no SO_REUSEPORT: every loop
            // watches the one listener (a connection may wake several;
            // the losers' accept sees EAGAIN).
            (_, AcceptMode::ReusePort) if id == 0 => {
                bound.iter().map(|(_, fd)| (fd.clone(), false)).collect()
            }
            (_, AcceptMode::ReusePort) => bound
                .iter()
                .map(|(a, fd)| match a.is_tcp() {
                    true => listen(a, backlog, true).and_then(|fd| {
                        self.prepare_listener(a, &fd)?;
                        let fd = Arc::new(fd);
                        super::inherit::hold(&fd);
                        Ok((fd, false))
                    }),
                    false => Ok((fd.clone(), false)),
                })
                .collect::<io::Result<_>>()?,
            (_, AcceptMode::Exclusive) => bound.iter().map(|(_, fd)| (fd.clone(), true)).collect(),
        })
    }

    /// Build a serving loop on the calling thread: its handler from
    /// `factory`, the tick, and the listeners it accepts on. Returns the
    /// loop and the address of its table.
    fn serving_loop<H: EventHandler>(
        &self,
        id: usize,
        factory: &dyn Fn(usize) -> H,
        listeners: Vec<(Arc<OwnedFd>, bool)>,
        limit: &Option<Arc<ConnLimit>>,
    ) -> io::Result<(EventLoop, TableRef<H>)> {
        let cfg = self.loop_config(
            id + usize::from(
                self.loops > 0 && self.mode == AcceptMode::Acceptor && self.kcp.is_none(),
            ),
        );
        let mut el = EventLoop::new(cfg)?;
        let mut table = Table::new(&mut el, factory(id), self.conn.clone());
        table.proxy_protocol(self.proxy.clone());
        if let Some(every) = self.tick {
            table.tick(&mut el, every);
        }
        for (fd, exclusive) in listeners {
            match self.kcp {
                Some(cfg) => table.listen_kcp(&mut el, fd, cfg, limit.clone())?,
                None => table.listen(&mut el, fd, exclusive, self.accept_pause, limit.clone())?,
            }
        }
        let table = table.attach(&mut el);
        Ok((el, table))
    }

    /// Build the main reactor on the calling thread: it accepts on every
    /// listener and hands each connection to a sub-reactor in `subs`.
    fn acceptor_loop<H: EventHandler>(
        &self,
        subs: Vec<SubLoop<H>>,
        listeners: Vec<Arc<OwnedFd>>,
        limit: Option<Arc<ConnLimit>>,
    ) -> io::Result<EventLoop> {
        let mut el = EventLoop::new(self.loop_config(0))?;
        let picker = Picker::new(subs, self.balance);
        MainAcceptor::install(&mut el, listeners, self.accept_pause, limit, picker)?;
        Ok(el)
    }

    /// Serve with the single reactor (`loops(0)`) on the calling thread;
    /// returns when the loop stops ([`EventLoop::drain`], [`EventLoop::stop`]
    /// or [`LoopHandle::stop`]).
    ///
    /// No thread is started, so a process that does nothing else stays
    /// single-threaded, and the kernel rewards that: with an unshared fd
    /// table, every socket call skips taking a reference on the file. `ready`
    /// runs on the loop before it starts, with the [`Server`] (addresses,
    /// loop handle): the place to print a banner or watch a signalfd.
    pub fn run<H, F>(
        self,
        factory: F,
        ready: impl FnOnce(&mut EventLoop, &Server),
    ) -> io::Result<()>
    where
        H: EventHandler,
        F: Fn(usize) -> H,
    {
        self.check()?;
        if self.loops != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "run() serves on the calling thread: loops must be 0 (use start() for more)",
            ));
        }
        let bound = self.bind_all(self.backlog.unwrap_or_else(somaxconn))?;
        let listeners = bound.iter().map(|(_, fd)| (fd.clone(), false)).collect();
        let limit = self.max_conns.resolve().map(ConnLimit::new);
        let (mut el, _) = self.serving_loop(0, &factory, listeners, &limit)?;
        let server = Server {
            addrs: bound.into_iter().map(|(a, _)| a).collect(),
            serving: vec![el.handle()],
            loops: vec![el.handle()],
            groups: Vec::new(),
            description: self.describe(),
            limit,
        };
        ready(&mut el, &server);
        el.run()
    }

    /// Bind, spawn the loops and start serving. `factory` makes one handler
    /// per serving loop (called on that loop's thread). If a loop fails to
    /// start, the loops already started are stopped and joined, and the
    /// error names the loop.
    pub fn start<H, F>(self, factory: F) -> io::Result<Server>
    where
        H: EventHandler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.check()?;
        let backlog = self.backlog.unwrap_or_else(somaxconn);
        let factory = Arc::new(factory);
        let bound = self.bind_all(backlog)?;
        let addrs: Vec<Addr> = bound.iter().map(|(a, _)| a.clone()).collect();
        // Every loop's listeners before any thread starts: a ReusePort bind
        // that fails leaves nothing to undo.
        let per_loop = (0..self.loops.max(1))
            .map(|id| self.loop_listeners(id, &bound, backlog))
            .collect::<io::Result<Vec<_>>>()?;
        let limit = self.max_conns.resolve().map(ConnLimit::new);
        let this = Arc::new(self);

        // Each serving loop reports its table, for the main acceptor.
        type Reported<H> = Option<(SourceId, Arc<Mailbox<H>>)>;
        let tables: Arc<Mutex<Vec<Reported<H>>>> =
            Arc::new(Mutex::new((0..per_loop.len()).map(|_| None).collect()));
        let setups = per_loop.into_iter().map(|listeners| {
            let (this, factory, tables) = (this.clone(), factory.clone(), tables.clone());
            let limit = limit.clone();
            move |id: usize| {
                let (el, table) = this.serving_loop(id, &*factory, listeners, &limit)?;
                tables.lock().unwrap_or_else(|e| e.into_inner())[id] =
                    Some((table.id, table.mailbox));
                Ok(el)
            }
        });
        let serving = LoopGroup::builder().name("evnet-loop").start_each(setups)?;

        let mut groups = Vec::new();
        let serving_handles = serving.handles().to_vec();
        let mut loops = serving_handles.clone();
        if this.loops > 0 && this.mode == AcceptMode::Acceptor && this.kcp.is_none() {
            let reported = std::mem::take(&mut *tables.lock().unwrap_or_else(|e| e.into_inner()));
            let subs: Vec<SubLoop<H>> = reported
                .into_iter()
                .zip(serving.handles())
                .map(|(t, handle)| {
                    let (table, mailbox) = t.expect("every serving loop reported its table");
                    SubLoop {
                        handle: handle.clone(),
                        table,
                        mailbox,
                    }
                })
                .collect();
            let listeners: Vec<Arc<OwnedFd>> = bound.iter().map(|(_, fd)| fd.clone()).collect();
            let this = this.clone();
            let limit = limit.clone();
            // If the acceptor cannot start, `serving` drops: its loops are
            // stopped and joined.
            let acceptor = LoopGroup::builder()
                .name("evnet-accept")
                .start_each([move |_| this.acceptor_loop::<H>(subs, listeners, limit)])?;
            loops.insert(0, acceptor.handles()[0].clone());
            // Stopped and joined first: no connection is handed to a loop
            // that is going away.
            groups.push(acceptor);
        }
        groups.push(serving);

        Ok(Server {
            addrs,
            serving: serving_handles,
            loops,
            groups,
            description: this.describe(),
            limit,
        })
    }
}

/// The kernel's cap on the accept queue; asking for more is silently
/// truncated, asking for less wastes it.
pub fn somaxconn() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Permission bits of a Unix-domain socket file unless the builder says otherwise.
pub const DEFAULT_UNIX_MODE: u32 = 0o660;

/// How [`listen_with`] sets up a listener.
#[derive(Clone, Copy, Debug)]
pub struct ListenOptions {
    /// The `listen(2)` backlog (the kernel caps it at [`somaxconn`]).
    pub backlog: i32,
    /// SO_REUSEPORT (TCP only).
    pub reuseport: bool,
    /// Permission bits for a Unix-domain socket file.
    pub unix_mode: u32,
}

/// Create a non-blocking listening socket with SO_REUSEADDR (and
/// SO_REUSEPORT if asked). IPv6 listeners are v6-only so `[::]` and
/// `0.0.0.0` can be bound side by side. Unix paths are prepared as
/// [`listen_with`] describes, with [`DEFAULT_UNIX_MODE`].
pub fn listen(addr: &Addr, backlog: i32, reuseport: bool) -> io::Result<OwnedFd> {
    listen_with(
        addr,
        &ListenOptions {
            backlog,
            reuseport,
            unix_mode: DEFAULT_UNIX_MODE,
        },
    )
}

/// Make room for a Unix-domain listener at `path`. A socket file left behind
/// by a server that is gone (connecting is refused) is removed; a live one
/// (someone accepts) is never taken over; anything that is not a socket is
/// left alone. Both refusals are errors naming the path.
pub fn prepare_unix_path(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("unix:{}: {e}", path.display()),
            ))
        }
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "unix:{} exists and is not a socket; refusing to replace it",
                path.display()
            ),
        ));
    }
    // Non-blocking, so a live server with a full backlog answers EAGAIN
    // instead of making us wait.
    let probe = Socket::new(
        socket2::Domain::UNIX,
        Type::STREAM.nonblocking().cloexec(),
        None,
    )?;
    match probe.connect(&SockAddr::unix(path)?) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            tracing::info!("removing stale socket file {}", path.display());
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
                    e.kind(),
                    format!("removing stale unix:{}: {e}", path.display()),
                )),
                _ => Ok(()),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Ok(()) => Err(live_unix_error(path)),
        Err(e)
            if e.raw_os_error() == Some(libc::EAGAIN)
                || e.raw_os_error() == Some(libc::EINPROGRESS) =>
        {
            Err(live_unix_error(path))
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("probing unix:{}: {e}", path.display()),
        )),
    }
}

fn live_unix_error(path: &std::path::Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "unix:{}: another server is listening there; refusing to take it over",
            path.display()
        ),
    )
}

/// [`listen`] with every option. A listener for `addr` passed to this
/// process ([`inherit`](super::inherit): socket activation, an upgrade) is
/// taken instead of binding, as it is. For a Unix path: a stale socket file
/// is removed first and a live one refused ([`prepare_unix_path`]), and the
/// new file gets `unix_mode` permissions.
pub fn listen_with(addr: &Addr, opts: &ListenOptions) -> io::Result<OwnedFd> {
    if let Some(fd) = super::inherit::stream_or_bind(addr)? {
        return Ok(fd);
    }
    let (backlog, reuseport) = (opts.backlog, opts.reuseport);
    if let Addr::Unix(path) = addr {
        prepare_unix_path(path)?;
    }
    let sock = Socket::new(addr.domain(), Type::STREAM.nonblocking().cloexec(), None)?;
    if addr.is_tcp() {
        sock.set_reuse_address(true)?;
        if reuseport {
            sock.set_reuse_port(true)?;
        }
        if let Addr::Tcp(std::net::SocketAddr::V6(_)) = addr {
            sock.set_only_v6(true)?;
        }
    }
    sock.bind(&addr.to_sockaddr()?)
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    if let Addr::Unix(path) = addr {
        use std::os::unix::fs::PermissionsExt;
        let set = std::fs::set_permissions(path, std::fs::Permissions::from_mode(opts.unix_mode));
        if let Err(e) = set {
            let _ = std::fs::remove_file(path);
            return Err(io::Error::new(e.kind(), format!("chmod {addr}: {e}")));
        }
    }
    if let Err(e) = sock.listen(backlog) {
        if let Addr::Unix(path) = addr {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    Ok(sock.into())
}

/// A sub-reactor as the main acceptor sees it: its loop and its table.
struct SubLoop<H: EventHandler> {
    handle: LoopHandle,
    table: SourceId,
    mailbox: Arc<Mailbox<H>>,
}

/// Chooses the sub-reactor for a new connection.
struct Picker<H: EventHandler> {
    loops: Vec<SubLoop<H>>,
    balance: Balance,
    next: usize,
    /// Connections handed to each loop that it has not registered yet: a
    /// burst of accepts must count them, or least-connections sends the
    /// whole burst to one loop.
    in_flight: Arc<Vec<AtomicUsize>>,
}

impl<H: EventHandler> Picker<H> {
    fn new(loops: Vec<SubLoop<H>>, balance: Balance) -> Picker<H> {
        let in_flight = Arc::new(loops.iter().map(|_| AtomicUsize::new(0)).collect());
        Picker {
            loops,
            balance,
            next: 0,
            in_flight,
        }
    }

    /// Choose a loop; returns its index. The loop releases the in-flight
    /// count once the connection is registered there.
    fn pick(&mut self, peer: &SockAddr) -> usize {
        let n = self.loops.len();
        let i = match self.balance {
            Balance::RoundRobin => {
                self.next = self.next.wrapping_add(1);
                self.next % n
            }
            Balance::LeastConnections => (0..n)
                .min_by_key(|&i| {
                    self.loops[i]
                        .handle
                        .stats()
                        .connections_open
                        .load(Ordering::Relaxed)
                        + self.in_flight[i].load(Ordering::Relaxed)
                })
                .unwrap_or(0),
            Balance::SourceHash => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                match peer.as_socket() {
                    Some(a) => a.ip().hash(&mut h),
                    None => 0u8.hash(&mut h),
                }
                (h.finish() as usize) % n
            }
        };
        self.in_flight[i].fetch_add(1, Ordering::Relaxed);
        i
    }

    /// Hand an accepted connection to the sub-reactor chosen for its peer.
    fn dispatch(&mut self, a: Accepted, tcp: bool) {
        let i = self.pick(&a.peer);
        let sub = &self.loops[i];
        let op = Op::Adopt {
            fd: a.fd,
            tcp,
            in_flight: Some((self.in_flight.clone(), i)),
            permit: a.permit,
        };
        if sub.mailbox.send(&sub.handle, sub.table, op).is_err() {
            self.in_flight[i].fetch_sub(1, Ordering::Relaxed);
            tracing::debug!("sub-reactor stopped; connection dropped");
        }
    }
}

/// The main reactor's source: its listeners, handing every connection to a
/// sub-reactor.
struct MainAcceptor<H: EventHandler> {
    id: SourceId,
    listeners: Vec<Listener>,
    picker: Picker<H>,
    accepted: Vec<Accepted>,
}

impl<H: EventHandler> MainAcceptor<H> {
    fn install(
        el: &mut EventLoop,
        fds: Vec<Arc<OwnedFd>>,
        pause: Duration,
        limit: Option<Arc<ConnLimit>>,
        picker: Picker<H>,
    ) -> io::Result<()> {
        let id = el.reserve_source();
        let mut listeners = Vec::new();
        for (i, fd) in fds.into_iter().enumerate() {
            match Listener::register(el, fd, false, pause, limit.clone(), id, i as u64) {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    for mut l in listeners {
                        l.close(el);
                    }
                    el.remove_source(id);
                    return Err(e);
                }
            }
        }
        let acceptor = MainAcceptor {
            id,
            listeners,
            picker,
            accepted: Vec::new(),
        };
        el.attach_source(id, Box::new(acceptor));
        Ok(())
    }
}

impl<H: EventHandler> Source for MainAcceptor<H> {
    fn ready(&mut self, el: &mut EventLoop, sub: u64, _ev: Event) {
        let Some(l) = self.listeners.get_mut(sub as usize) else {
            return;
        };
        let tcp = l.is_tcp();
        if let Some(pause) = l.accept(el, &mut self.accepted) {
            // The timer names the listener to resume.
            el.timer_for(self.id, pause, sub);
        }
        for a in self.accepted.drain(..) {
            self.picker.dispatch(a, tcp);
        }
    }

    fn timer(&mut self, el: &mut EventLoop, tag: u64) {
        if let Some(l) = self.listeners.get_mut(tag as usize) {
            l.resume(el);
        }
    }

    fn notify(&mut self, el: &mut EventLoop) {
        // A connection closed on some loop: accept again if paused at the cap.
        for l in &mut self.listeners {
            l.uncap(el);
        }
    }

    fn drain(&mut self, el: &mut EventLoop) {
        // Closing the listening sockets refuses new connections rather than
        // leaving them waiting in a queue.
        for l in &mut self.listeners {
            l.close(el);
        }
        self.listeners.clear();
    }

    fn shutdown(&mut self, el: &mut EventLoop) {
        self.drain(el);
    }
}

/// A running server. Dropping it stops every loop and joins their threads.
pub struct Server {
    addrs: Vec<Addr>,
    /// The loops that serve connections.
    serving: Vec<LoopHandle>,
    /// Every loop, the acceptor first if there is one.
    loops: Vec<LoopHandle>,
    /// The loop threads, joined in this order (none when
    /// [`ServerBuilder::run`] serves on the caller's thread).
    groups: Vec<LoopGroup>,
    description: String,
    /// The connection cap, if there is one.
    limit: Option<Arc<ConnLimit>>,
}

impl Server {
    /// A [`ServerBuilder`] with the defaults (same as
    /// [`ServerBuilder::new`]).
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    /// The cap on open connections in force (`None`: no cap).
    pub fn max_connections(&self) -> Option<usize> {
        self.limit.as_ref().map(|l| l.max())
    }

    /// Connections accepted and not yet dropped, as the cap counts them
    /// (0 without a cap).
    pub fn connections_open(&self) -> usize {
        self.limit.as_ref().map_or(0, |l| l.open())
    }

    /// How many times a listener stopped accepting because the server was
    /// at its connection cap.
    pub fn cap_pauses(&self) -> u64 {
        self.limit.as_ref().map_or(0, |l| l.pauses())
    }

    /// The bound addresses (port 0 resolved).
    pub fn addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// The first bound TCP address.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.addrs.iter().find_map(|a| a.tcp())
    }

    /// Handles of the loops that serve connections.
    pub fn serving_loops(&self) -> &[LoopHandle] {
        &self.serving
    }

    /// Handles of every loop of the server, the acceptor first if there is
    /// one, then the serving loops. Each handle may be used from any thread
    /// (e.g. to post tasks or read [`LoopStats`](crate::reactor::LoopStats)).
    pub fn loops(&self) -> &[LoopHandle] {
        &self.loops
    }

    /// The configuration summary from [`ServerBuilder::describe`].
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Ask every loop to stop (connections are closed with `Shutdown`).
    pub fn stop(&self) {
        for h in &self.loops {
            h.stop();
        }
    }

    /// Wait for every loop thread to finish.
    pub fn join(mut self) -> io::Result<()> {
        self.join_threads()
    }

    fn join_threads(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for group in self.groups.drain(..) {
            if let Err(e) = group.join() {
                result = result.and(Err(e));
            }
        }
        for a in &self.addrs {
            if let Addr::Unix(p) = a {
                // Not a file a successor or systemd serves on.
                if super::inherit::may_remove_path(p) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        result
    }

    /// Graceful shutdown: stop accepting at once (listeners close), let each
    /// connection send what is queued and close, calling `on_close` for
    /// every one; after `deadline` whatever is left is closed. Then join.
    pub fn shutdown_graceful(self, deadline: Duration) -> io::Result<()> {
        for h in &self.loops {
            let _ = h.post(move |el| el.drain(deadline));
        }
        self.join()
    }

    /// Stop and join.
    pub fn shutdown(self) -> io::Result<()> {
        self.stop();
        self.join()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.groups.is_empty() {
            self.stop();
            let _ = self.join_threads();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::Echo;

    /// The acceptor once asked the driver's name ("epoll...") whether it
    /// honours exclusive wake-up, so the uring poller, which does, woke
    /// every loop. Now each driver's caps decide.
    #[test]
    fn exclusive_mode_registers_exclusive_interest_where_the_driver_honours_it() {
        for kind in PollerKind::ALL {
            let builder = ServerBuilder::new()
                .bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
                .poller(kind)
                .loops(2)
                .accept_mode(AcceptMode::Exclusive);
            let bound = builder.bind_all(16).unwrap();
            let listener = bound[0].1.as_raw_fd();
            let listeners = builder.loop_listeners(1, &bound, 16).unwrap();
            let (el, _table) = builder
                .serving_loop(1, &|_| Echo, listeners, &None)
                .unwrap();
            use crate::poller::Interest;
            let want = if kind.caps().exclusive {
                Interest::READABLE.exclusive()
            } else {
                Interest::READABLE
            };
            assert_eq!(el.interest_of_fd(listener), Some(want), "{kind:?}");
        }
        assert!(PollerKind::Uring.caps().exclusive);
        assert!(PollerKind::Epoll.caps().exclusive);
    }
}
