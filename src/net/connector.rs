//! The client side: dial without blocking and hand the connection to the
//! same [`EventHandler`] API servers use.
//!
//! A dial attempt: non-blocking `socket` (+ optional `bind` to a source
//! address) -> `connect` -> `EINPROGRESS` -> the service's table waits for
//! WRITABLE -> `SO_ERROR` decides. Success deregisters the probe and opens a
//! [`Conn`](super::Conn) on the same loop, running `on_open`; failure either
//! retries after an exponential backoff (with jitter) or reports the
//! `io::Error` to `on_fail`. A connect timeout is a loop timer that abandons
//! the attempt with `TimedOut`.
//!
//! Many client connections on one loop share one handler instance, exactly
//! like a server's connections: build a [`ClientService`] once per loop
//! (it is that handler's per-loop table) and pass it to every `connect_on`.
//!
//! Name resolution blocks, so it never runs on a loop: [`Connector::resolve`]
//! resolves on a helper thread and posts the result to the loop.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Socket, Type};

use super::conn::table::{LocalOp, Table, TableRef};
use super::{Addr, ConnConfig, EventHandler};
use crate::reactor::{EventLoop, LoopConfig, LoopCtx, LoopGroup, LoopHandle};
use crate::sys;

/// Exponential backoff between dial attempts.
///
/// Attempt `n` (from 0) waits `min(initial * multiplier^n, max)`; with
/// `jitter` the wait is drawn uniformly from its upper half, so a crowd of
/// clients refused together does not come back together.
#[derive(Clone, Debug, PartialEq)]
///
/// The default: 50 ms initial, x2, capped at 5 s, with jitter, 8 attempts
/// in all.
pub struct Backoff {
    /// The wait before the first retry (before jitter). Default 50 ms.
    pub initial: Duration,
    /// Upper bound on any one wait (before jitter). Default 5 s.
    pub max: Duration,
    /// Growth factor from one wait to the next; values below 1.0 are
    /// treated as 1.0 (constant waits). Default 2.0.
    pub multiplier: f64,
    /// Draw each wait uniformly from `[w/2, w]` rather than waiting `w`.
    /// Default `true`.
    pub jitter: bool,
    /// Total attempts including the first; `None` retries forever.
    /// Default `Some(8)`.
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
    #[cfg(feature = "tls")]
    tls: Option<super::tls::TlsConnector>,
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
            #[cfg(feature = "tls")]
            tls: None,
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

    /// Speak TLS over the connection (feature `tls`): the handler sees
    /// plaintext, exactly as on a plain connection.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: super::tls::TlsConnector) -> Self {
        self.tls = Some(tls);
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

    /// The address this connector dials.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Resolve `host_port` (`Addr::parse` syntax) on a helper thread — name
    /// resolution blocks — then run `then` on the loop behind `lp` with the
    /// result. Safe to call from any thread.
    pub fn resolve(
        host_port: impl Into<String>,
        lp: &LoopHandle,
        then: impl FnOnce(&mut LoopCtx<'_>, io::Result<Addr>) + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        let host_port = host_port.into();
        let lp = lp.clone();
        std::thread::Builder::new()
            .name("evnet-resolve".into())
            .spawn(move || {
                let r = Addr::parse(&host_port);
                let _ = lp.post(move |el| then(&mut el.ctx(), r));
            })
    }

    /// Start dialing on the loop of `lp` (loop thread only; from a callback
    /// the dial starts once it returns). On success the connection opens on
    /// that loop with `service`'s handler (`on_open` runs); when every
    /// allowed attempt has failed, `on_fail` gets the last error.
    pub fn connect_on<H: EventHandler>(
        &self,
        lp: &mut LoopCtx<'_>,
        service: &ClientService<H>,
        on_fail: impl FnOnce(&mut LoopCtx<'_>, io::Error) + 'static,
    ) {
        let dial = Dial {
            connector: self.clone(),
            on_fail: Box::new(on_fail),
            attempt: 0,
            rng: seed(),
        };
        service.0.local(lp.el, LocalOp::Dial(Box::new(dial)));
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

/// The client connections of one handler on one loop: the handler instance
/// they share, and their per-loop table. `!Send`: it belongs to its loop;
/// clone it freely there.
pub struct ClientService<H: EventHandler>(TableRef<H>);

impl<H: EventHandler> Clone for ClientService<H> {
    fn clone(&self) -> Self {
        ClientService(self.0.clone())
    }
}

impl<H: EventHandler> ClientService<H> {
    /// A service for `handler` on loop `el` (default connection settings).
    pub fn new(el: &mut EventLoop, handler: H) -> ClientService<H> {
        ClientService::with_config(el, handler, ConnConfig::default())
    }

    /// `cfg.nodelay` is ignored here: the [`Connector`] sets it.
    pub fn with_config(el: &mut EventLoop, handler: H, cfg: ConnConfig) -> ClientService<H> {
        ClientService(Table::new(el, handler, cfg).attach(el))
    }

    /// Run `f` with the handler, from outside its connections' callbacks
    /// (`None` if called from inside one: the handler is in use there).
    pub fn with<R: 'static>(
        &self,
        el: &mut EventLoop,
        f: impl FnOnce(&mut H) -> R + 'static,
    ) -> Option<R> {
        self.0.with(el, f)
    }
}

type OnFail = Box<dyn FnOnce(&mut LoopCtx<'_>, io::Error)>;

/// The state of one dial across its attempts; the table that will own the
/// connection runs it.
pub(crate) struct Dial {
    connector: Connector,
    on_fail: OnFail,
    /// Attempts made so far.
    attempt: u32,
    rng: u64,
}

impl Dial {
    /// Start an attempt: see [`Connector::issue`].
    pub(crate) fn issue(&mut self) -> io::Result<(OwnedFd, bool)> {
        self.attempt += 1;
        self.connector.issue()
    }

    /// How long an attempt may take.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.connector.timeout
    }

    /// The TLS session the connection starts with, if the connector dials TLS.
    pub(crate) fn session(&self) -> io::Result<Option<super::conn::path::Session>> {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.connector.tls {
            let s = t.session().map_err(io::Error::other)?;
            return Ok(Some((s, t.handshake_timeout)));
        }
        Ok(None)
    }

    /// The attempt failed with `e`: the wait before the next one, or `None`
    /// to give up.
    pub(crate) fn retry_after(&mut self, e: &io::Error) -> Option<Duration> {
        let delay = match &self.connector.retry {
            Some(b) if b.max_attempts.is_none_or(|m| self.attempt < m) && retriable(e) => {
                b.delay(self.attempt - 1, &mut self.rng)
            }
            _ => return None,
        };
        if let Some(hook) = &self.connector.on_retry {
            hook(self.attempt, e);
        }
        Some(delay)
    }

    /// Every allowed attempt failed.
    pub(crate) fn give_up(self, lp: &mut LoopCtx<'_>, e: io::Error) {
        (self.on_fail)(lp, e);
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

/// The outcome of a connect in progress whose socket became writable:
/// `None` if it is still in progress (a spurious wakeup).
pub(crate) fn connect_result(fd: RawFd) -> Option<io::Result<()>> {
    match sys::socket::take_error(fd) {
        Ok(None) => {
            // Writable without a pending error normally means connected;
            // confirm (a spurious wakeup leaves ENOTCONN: keep waiting).
            match sys::socket::peer_addr(fd) {
                Ok(_) => Some(Ok(())),
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => None,
                Err(e) => Some(Err(e)),
            }
        }
        Ok(Some(e)) => Some(Err(e)),
        Err(e) => Some(Err(e)),
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
                let service = ClientService::new(&mut el, make());
                for i in 0..connections {
                    let on_fail = on_fail.clone();
                    connectors[i % connectors.len()].connect_on(
                        &mut el.ctx(),
                        &service,
                        move |_, e| on_fail(e),
                    );
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
