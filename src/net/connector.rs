//! The client side: dial without blocking and hand the connection to the
//! same [`EventHandler`] API servers use.
//!
//! A dial attempt: non-blocking `socket` (+ optional `bind` to a source
//! address) -> `connect` -> `EINPROGRESS` -> a `Connecting` source waits for
//! WRITABLE -> `SO_ERROR` decides. Success deregisters the probe and opens a
//! [`Conn`](super::Conn) on the same loop, running `on_open`; failure either
//! retries after an exponential backoff (with jitter) or reports the
//! `io::Error` to `on_fail`. A connect timeout is a loop timer that abandons
//! the attempt with `TimedOut`.
//!
//! Many client connections on one loop share one handler instance, exactly
//! like a server's connections: build a [`ClientService`] once per loop
//! ([`ClientService::per_loop`] stores it in the loop's locals) and pass it
//! to every `connect_on`.
//!
//! Name resolution blocks, so it never runs on a loop: [`Connector::resolve`]
//! resolves on a helper thread and posts the result to the loop.

use std::any::{Any, TypeId};
use std::hash::{Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Socket, Type};

use super::conn::{Service, StreamConn};
use super::{Addr, ConnConfig, EventHandler};
use crate::poller::{Event, Interest, Token};
use crate::reactor::{EventLoop, LoopConfig, LoopGroup, LoopHandle, Source, TimerId};
use crate::sys;

/// Exponential backoff between dial attempts.
///
/// Attempt `n` (from 0) waits `min(initial * multiplier^n, max)`; with
/// `jitter` the wait is drawn uniformly from its upper half, so a crowd of
/// clients refused together does not come back together.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    pub jitter: bool,
    /// Total attempts including the first; `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: true,
            max_attempts: Some(8),
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (0 = after the first failure).
    pub fn delay(&self, retry: u32, rng: &mut u64) -> Duration {
        let base = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(retry.min(64) as i32);
        let base = base.min(self.max.as_secs_f64());
        let secs = if self.jitter {
            base / 2.0 + base / 2.0 * unit(rng)
        } else {
            base
        };
        Duration::from_secs_f64(secs)
    }
}

/// xorshift64: jitter needs spread, not cryptographic quality.
fn unit(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed);
    (nanos ^ n) | 1
}

/// Called on the loop after each failed attempt that will be retried:
/// `(attempt number from 1, error)`.
pub type RetryHook = Arc<dyn Fn(u32, &io::Error) + Send + Sync>;

/// How to dial one address. Cheap to clone; `Send + Sync`, so one
/// `Connector` can be shared by the threads that start dials.
#[derive(Clone)]
pub struct Connector {
    addr: Addr,
    timeout: Option<Duration>,
    retry: Option<Backoff>,
    bind: Option<SocketAddr>,
    nodelay: bool,
    on_retry: Option<RetryHook>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("bind", &self.bind)
            .field("nodelay", &self.nodelay)
            .finish()
    }
}

impl Connector {
    /// Dial `addr` (TCP, Unix path or abstract name); no timeout, no retry,
    /// TCP_NODELAY on.
    pub fn new(addr: impl Into<Addr>) -> Connector {
        Connector {
            addr: addr.into(),
            timeout: None,
            retry: None,
            bind: None,
            nodelay: true,
            on_retry: None,
        }
    }

    /// Abandon an attempt that has not completed after `d` (`TimedOut`).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Retry failed attempts (refused, timed out, unreachable...) with backoff.
    pub fn retry(mut self, backoff: Backoff) -> Self {
        self.retry = Some(backoff);
        self
    }

    /// Bind the socket to this local (source) address before connecting;
    /// port 0 lets the kernel pick. Spreads many connections over
    /// 127.0.0.2, 127.0.0.3... when one source address runs out of ports.
    pub fn bind(mut self, local: SocketAddr) -> Self {
        self.bind = Some(local);
        self
    }

    /// TCP_NODELAY on the connection (default on; ignored for Unix sockets).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Observe failed attempts that will be retried (metrics, tests).
    pub fn on_retry(mut self, hook: impl Fn(u32, &io::Error) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Resolve `host_port` (`Addr::parse` syntax) on a helper thread — name
    /// resolution blocks — then run `then` on the loop behind `lp` with the
    /// result. Safe to call from any thread.
    pub fn resolve(
        host_port: impl Into<String>,
        lp: &LoopHandle,
        then: impl FnOnce(&mut EventLoop, io::Result<Addr>) + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        let host_port = host_port.into();
        let lp = lp.clone();
        std::thread::Builder::new()
            .name("evnet-resolve".into())
            .spawn(move || {
                let r = Addr::parse(&host_port);
                let _ = lp.post(move |el| then(el, r));
            })
    }

    /// Start dialing on `el` (loop thread only). On success the connection
    /// opens on `el` with `service`'s handler (`on_open` runs); when every
    /// allowed attempt has failed, `on_fail` gets the last error.
    pub fn connect_on<H: EventHandler>(
        &self,
        el: &mut EventLoop,
        service: &ClientService<H>,
        on_fail: impl FnOnce(&mut EventLoop, io::Error) + 'static,
    ) {
        let dial = Dial {
            connector: self.clone(),
            service: service.0.clone(),
            on_fail: Box::new(on_fail),
            attempt: 0,
            rng: seed(),
        };
        dial.start(el);
    }

    /// A non-blocking socket with `connect` issued: `Ok((fd, true))` if it
    /// connected at once (Unix sockets usually do), `Ok((fd, false))` if in
    /// progress.
    fn issue(&self) -> io::Result<(OwnedFd, bool)> {
        let domain = self.addr.domain();
        let sock = Socket::new(domain, Type::STREAM.nonblocking().cloexec(), None)
            .map_err(|e| with_context(e, "socket"))?;
        if let Some(local) = self.bind {
            sock.bind(&local.into())
                .map_err(|e| with_context(e, "bind"))?;
        }
        if self.addr.is_tcp() {
            sock.set_nodelay(self.nodelay)
                .map_err(|e| with_context(e, "setsockopt TCP_NODELAY"))?;
        }
        let target = self.addr.to_sockaddr()?;
        match sock.connect(&target) {
            Ok(()) => Ok((sock.into(), true)),
            // EINTR on a non-blocking connect: the handshake goes on in the
            // background, exactly as with EINPROGRESS.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINPROGRESS) | Some(libc::EINTR)
                ) =>
            {
                Ok((sock.into(), false))
            }
            Err(e) => Err(e),
        }
    }
}

fn with_context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// One handler instance (and connection settings) shared by client
/// connections on one loop. `!Send`: it belongs to its loop.
pub struct ClientService<H>(Rc<Service<H>>);

impl<H> Clone for ClientService<H> {
    fn clone(&self) -> Self {
        ClientService(self.0.clone())
    }
}

impl<H: EventHandler> ClientService<H> {
    pub fn new(handler: H) -> ClientService<H> {
        ClientService::with_config(handler, ConnConfig::default())
    }

    /// `cfg.nodelay` is ignored here: the [`Connector`] sets it.
    pub fn with_config(handler: H, cfg: ConnConfig) -> ClientService<H> {
        ClientService(Service::new(handler, cfg))
    }

    /// The loop's shared service for handler type `H`, created by `make` the
    /// first time (kept in the loop's locals).
    pub fn per_loop(el: &mut EventLoop, make: impl FnOnce() -> H) -> ClientService<H> {
        let key = local_key::<H>();
        if let Some(s) = el.local::<ClientService<H>>(key) {
            return s.clone();
        }
        let s = ClientService::new(make());
        el.set_local(key, s.clone());
        s
    }

    /// Run `f` with the handler, outside any callback of its connections
    /// (panics if called from inside one: the handler is borrowed there).
    pub fn with<R>(&self, f: impl FnOnce(&mut H) -> R) -> R {
        f(&mut self.0.handler.borrow_mut())
    }
}

/// A loop-locals key for the per-loop client service of handler type `H`;
/// the high bit keeps it clear of server keys (small counters).
fn local_key<H: 'static>() -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    TypeId::of::<ClientService<H>>().hash(&mut h);
    h.finish() | (1 << 63)
}

type OnFail = Box<dyn FnOnce(&mut EventLoop, io::Error)>;

/// The state of one dial across its attempts.
struct Dial<H: EventHandler> {
    connector: Connector,
    service: Rc<Service<H>>,
    on_fail: OnFail,
    /// Attempts made so far.
    attempt: u32,
    rng: u64,
}

impl<H: EventHandler> Dial<H> {
    fn start(mut self, el: &mut EventLoop) {
        self.attempt += 1;
        let (fd, done) = match self.connector.issue() {
            Ok(r) => r,
            Err(e) => return self.failed(el, e),
        };
        if done {
            return self.open(el, fd);
        }
        let token = match el.reserve(fd.as_raw_fd(), Interest::WRITABLE) {
            Ok(t) => t,
            Err(e) => return self.failed(el, e),
        };
        let timer = self.connector.timeout.map(|d| {
            el.run_after(d, move |el| {
                el.with_source(token, |src, el| {
                    if let Some(c) = src.as_any().downcast_mut::<Connecting<H>>() {
                        c.timer = None;
                        let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                        c.finish(el, token, Err(e));
                    }
                });
            })
        });
        el.attach(
            token,
            Box::new(Connecting {
                fd: Some(fd),
                dial: Some(self),
                timer,
            }),
        );
    }

    fn open(self, el: &mut EventLoop, fd: OwnedFd) {
        // TCP_NODELAY was set by `issue`, so `open` is told not to touch it.
        if let Err(e) = StreamConn::open(el, self.service, fd, false) {
            (self.on_fail)(el, e);
        }
    }

    fn failed(mut self, el: &mut EventLoop, e: io::Error) {
        let retry = match &self.connector.retry {
            Some(b) if b.max_attempts.is_none_or(|m| self.attempt < m) && retriable(&e) => {
                Some(b.delay(self.attempt - 1, &mut self.rng))
            }
            _ => None,
        };
        match retry {
            Some(delay) => {
                if let Some(hook) = &self.connector.on_retry {
                    hook(self.attempt, &e);
                }
                el.run_after(delay, move |el| self.start(el));
            }
            None => (self.on_fail)(el, e),
        }
    }
}

/// Failures worth another attempt; a bad address or a local resource limit
/// will not improve by waiting.
fn retriable(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    )
}

/// A socket whose `connect` is in progress, waiting for WRITABLE.
struct Connecting<H: EventHandler> {
    fd: Option<OwnedFd>,
    dial: Option<Dial<H>>,
    timer: Option<TimerId>,
}

impl<H: EventHandler> Connecting<H> {
    /// Leave the loop, then open the connection or fail the attempt.
    fn finish(&mut self, el: &mut EventLoop, token: Token, result: io::Result<()>) {
        let (Some(fd), Some(dial)) = (self.fd.take(), self.dial.take()) else {
            return;
        };
        if let Some(t) = self.timer.take() {
            el.cancel(t);
        }
        let deregistered = el.deregister(token);
        match result.and(deregistered.map(drop)) {
            Ok(()) => dial.open(el, fd),
            Err(e) => {
                drop(fd);
                dial.failed(el, e);
            }
        }
    }
}

impl<H: EventHandler> Source for Connecting<H> {
    fn ready(&mut self, el: &mut EventLoop, token: Token, _ev: Event) {
        let Some(fd) = self.fd.as_ref() else { return };
        let result = match sys::socket::take_error(fd.as_raw_fd()) {
            Ok(None) => {
                // Writable without a pending error normally means connected;
                // confirm (a spurious wakeup leaves ENOTCONN: keep waiting).
                match sys::socket::peer_addr(fd.as_raw_fd()) {
                    Ok(_) => Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                    Err(e) => Err(e),
                }
            }
            Ok(Some(e)) => Err(e),
            Err(e) => Err(e),
        };
        self.finish(el, token, result);
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// A client on its own loop thread: dials `connections` connections with one
/// shared handler and keeps them until stopped. Dropping it stops the loop
/// (connections get `on_close` with `Shutdown`) and joins the thread.
pub struct Client {
    group: LoopGroup,
}

impl Client {
    /// Spawn the loop, build the handler there with `make`, and dial.
    /// `on_fail` runs on the loop for every dial that gives up.
    pub fn start<H, F>(
        connector: Connector,
        connections: usize,
        make: F,
        on_fail: impl Fn(io::Error) + Send + Sync + 'static,
    ) -> io::Result<Client>
    where
        H: EventHandler,
        F: FnOnce() -> H + Send + 'static,
    {
        Client::start_with(
            LoopConfig::default(),
            vec![connector],
            connections,
            make,
            on_fail,
        )
    }

    /// Like [`Client::start`] with a loop configuration, and connections
    /// assigned round-robin over `connectors` (e.g. one per source address).
    pub fn start_with<H, F>(
        config: LoopConfig,
        connectors: Vec<Connector>,
        connections: usize,
        make: F,
        on_fail: impl Fn(io::Error) + Send + Sync + 'static,
    ) -> io::Result<Client>
    where
        H: EventHandler,
        F: FnOnce() -> H + Send + 'static,
    {
        if connectors.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no connector"));
        }
        let on_fail = Arc::new(on_fail);
        let group = LoopGroup::builder()
            .name("evnet-client")
            .start_each([move |_| {
                let mut el = EventLoop::new(config)?;
                let service = ClientService::per_loop(&mut el, make);
                for i in 0..connections {
                    let on_fail = on_fail.clone();
                    connectors[i % connectors.len()]
                        .connect_on(&mut el, &service, move |_, e| on_fail(e));
                }
                Ok(el)
            }])?;
        Ok(Client { group })
    }

    /// The client loop's handle (post tasks, stop). Any thread.
    pub fn handle(&self) -> &LoopHandle {
        &self.group.handles()[0]
    }

    /// Stop the loop and wait for its thread.
    pub fn shutdown(self) -> io::Result<()> {
        self.group.stop();
        self.join()
    }

    /// Wait until the loop stops by itself (a handler called `el.stop()`).
    pub fn join(self) -> io::Result<()> {
        self.group.join().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_max() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            multiplier: 2.0,
            jitter: false,
            max_attempts: None,
        };
        let mut rng = 1;
        let got: Vec<u128> = (0..6).map(|i| b.delay(i, &mut rng).as_millis()).collect();
        assert_eq!(got, [10, 20, 40, 80, 100, 100]);
    }

    #[test]
    fn jitter_stays_in_upper_half() {
        let b = Backoff {
            jitter: true,
            ..Backoff::default()
        };
        let mut rng = seed();
        for i in 0..100 {
            let full = Backoff {
                jitter: false,
                ..b.clone()
            }
            .delay(i % 8, &mut 1);
            let d = b.delay(i % 8, &mut rng);
            assert!(d <= full && d >= full / 2, "{d:?} vs {full:?}");
        }
    }
}
