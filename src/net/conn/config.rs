//! Connection settings: [`ConnConfig`] and [`Keepalive`].

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::sys;

/// The default [`ConnConfig::high_water`]: 1 MiB.
pub const DEFAULT_HIGH_WATER: usize = 1 << 20;

/// The default [`ConnConfig::write_timeout`]: 60 s, nginx's `send_timeout`.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Per-connection settings, shared by a server's connections.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// Output queued beyond this many bytes calls `on_high_water` (once per
    /// crossing). Writes are not refused above it: the handler decides
    /// whether to pause (every server in evnet does, so this is also what
    /// one connection's output may cost in memory, plus one reply).
    /// Default 1 MiB ([`DEFAULT_HIGH_WATER`]).
    pub high_water: usize,
    /// How long a graceful close keeps reading (and discarding) after
    /// shutting down its write side, waiting for the peer's FIN, so that
    /// unread input does not turn the close into a reset that destroys the
    /// response in flight. Default 2 s.
    pub linger: Duration,
    /// The longest a closing connection may take, from the close decision
    /// to the end: sending what is queued, the FIN and the linger. A peer
    /// that reads nothing keeps the output from draining; past this the
    /// connection is reset. Default 30 s (nginx's `lingering_time`).
    pub closing_time: Duration,
    /// How many bytes a closing connection reads and discards before it is
    /// reset instead: input that arrives after the close decision is only
    /// read so that it does not turn the close into a reset while output is
    /// still in flight, and a peer that keeps sending must not make the
    /// server read forever. Default 1 MiB.
    pub closing_discard: u64,
    /// Set `TCP_NODELAY` (Nagle's algorithm off) on TCP connections, so small
    /// replies leave at once. Default `true`; `false` leaves the kernel's
    /// setting. Ignored for Unix sockets. A server sets it on its listening
    /// sockets, which pass it to every socket they accept.
    pub nodelay: bool,
    /// Close after this long with no bytes moving either way. Default `None`
    /// (never): like Redis's `timeout 0`, an idle connection is kept, since
    /// clients pool connections and expect them to stay; it costs a few
    /// hundred bytes, and the server's connection cap bounds how many there
    /// are.
    pub idle_timeout: Option<Duration>,
    /// Close when received bytes stay unconsumed (a message started but not
    /// completed) for this long. Default `None` (never).
    pub read_timeout: Option<Duration>,
    /// Close when queued output makes no progress for this long (the peer
    /// stopped reading). Default 60 s ([`DEFAULT_WRITE_TIMEOUT`], nginx's
    /// `send_timeout`); `None` waits forever. Costs nothing until output has
    /// to wait: the timer state is allocated then.
    pub write_timeout: Option<Duration>,
    /// TCP keepalive probes (SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT).
    /// Default `None`: the kernel's setting (normally off). Ignored for Unix
    /// sockets.
    pub keepalive: Option<Keepalive>,
    /// SO_LINGER on close: `Some(0)` resets instead of FIN. Off by default.
    pub so_linger: Option<Duration>,
    /// SO_SNDBUF in bytes (Linux doubles the value for its bookkeeping and
    /// caps it at `net.core.wmem_max`). Off by default: Linux autotunes it,
    /// and a fixed size turns autotuning off.
    pub send_buffer: Option<usize>,
    /// SO_RCVBUF in bytes (doubled by Linux, capped at
    /// `net.core.rmem_max`). Off by default, for the same reason as
    /// [`send_buffer`](Self::send_buffer).
    pub recv_buffer: Option<usize>,
    /// Speak TLS on accepted connections (feature `tls`): the handler sees
    /// plaintext. Default `None`.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::net::tls::TlsAcceptor>,
}

/// Kernel keepalive settings. With Linux defaults a dead peer takes over two
/// hours to notice; an application heartbeat (`net::heartbeat`) reacts faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// TCP_KEEPIDLE: how long the connection must be silent before the first
    /// probe is sent (whole seconds; Linux default 2 hours).
    pub idle: Duration,
    /// TCP_KEEPINTVL: time between unanswered probes (whole seconds; Linux
    /// default 75 s).
    pub interval: Duration,
    /// TCP_KEEPCNT: unanswered probes after which the kernel drops the
    /// connection; it then closes with
    /// [`CloseReason::Error`](crate::net::CloseReason::Error) (`ETIMEDOUT`).
    /// Linux default 9.
    pub count: u32,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            high_water: DEFAULT_HIGH_WATER,
            linger: Duration::from_secs(2),
            closing_time: Duration::from_secs(30),
            closing_discard: 1 << 20,
            nodelay: true,
            idle_timeout: None,
            read_timeout: None,
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            keepalive: None,
            so_linger: None,
            send_buffer: None,
            recv_buffer: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ConnConfig {
    /// Whether every connection needs its watchdog from the start (a write
    /// timeout alone gets one only once output has to wait).
    pub(crate) fn watches_from_open(&self) -> bool {
        self.idle_timeout.is_some() || self.read_timeout.is_some()
    }

    /// Apply the socket options to a new connection.
    pub(crate) fn apply(&self, fd: RawFd, tcp: bool) -> io::Result<()> {
        sys::socket::with_sock(fd, |sock| self.apply_to(&sock, tcp))
    }

    fn apply_to(&self, sock: &socket2::SockRef<'_>, tcp: bool) -> io::Result<()> {
        // `nodelay` is not set here: the server sets TCP_NODELAY on its
        // listeners and Linux copies it to every socket they accept, which
        // saves a setsockopt per connection (short connections pay it most).
        if tcp {
            if let Some(k) = self.keepalive {
                let ka = socket2::TcpKeepalive::new()
                    .with_time(k.idle)
                    .with_interval(k.interval)
                    .with_retries(k.count);
                sock.set_tcp_keepalive(&ka)?;
            }
        }
        if let Some(l) = self.so_linger {
            sock.set_linger(Some(l))?;
        }
        if let Some(n) = self.send_buffer {
            sock.set_send_buffer_size(n)?;
        }
        if let Some(n) = self.recv_buffer {
            sock.set_recv_buffer_size(n)?;
        }
        Ok(())
    }
}
