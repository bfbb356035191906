//! The user's side of a connection: callbacks and close reasons.

use std::fmt;
use std::io;

use super::{Buffer, Conn};

/// Why a connection closed, as the handler's `on_close` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer shut down its side and we finished ours.
    PeerClosed,
    /// The peer reset the connection (ECONNRESET, or EPIPE on write).
    Reset,
    /// The handler called `close` (after the output drained).
    Local,
    /// The handler called `abort`: closed at once, output dropped.
    Aborted,
    /// No bytes moved either way for the idle timeout.
    IdleTimeout,
    /// A started request was not completed within the read timeout.
    ReadTimeout,
    /// Queued output did not drain within the write timeout.
    WriteTimeout,
    /// The server or loop is shutting down.
    Shutdown,
    /// The peer broke the protocol (a codec or parser error).
    Protocol(String),
    /// Another socket error (kind and errno).
    Error(io::ErrorKind, i32),
}

impl CloseReason {
    /// This reason's slot in the per-loop close counters
    /// ([`LoopStats::closed`](crate::reactor::LoopStats::closed)); its name
    /// is `net::metrics::CLOSE_REASONS[slot]`.
    pub fn slot(&self) -> usize {
        match self {
            CloseReason::PeerClosed => 0,
            CloseReason::Reset => 1,
            CloseReason::Local => 2,
            CloseReason::Aborted => 3,
            CloseReason::IdleTimeout => 4,
            CloseReason::ReadTimeout => 5,
            CloseReason::WriteTimeout => 6,
            CloseReason::Shutdown => 7,
            CloseReason::Protocol(_) => 8,
            CloseReason::Error(..) => 9,
        }
    }

    pub(crate) fn from_io(err: &io::Error) -> CloseReason {
        match crate::sys::errno_of(err) {
            // ECONNREFUSED on an open connection: an ICMP port-unreachable
            // for a datagram (KCP), the peer's socket is gone.
            Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ECONNREFUSED) => {
                CloseReason::Reset
            }
            Some(errno) => CloseReason::Error(err.kind(), errno),
            None => CloseReason::Error(err.kind(), 0),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::Reset => f.write_str("connection reset by peer"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Aborted => f.write_str("aborted"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::ReadTimeout => f.write_str("read timeout"),
            CloseReason::WriteTimeout => f.write_str("write timeout"),
            CloseReason::Shutdown => f.write_str("server shutdown"),
            CloseReason::Protocol(m) => write!(f, "protocol error: {m}"),
            CloseReason::Error(kind, errno) => {
                write!(
                    f,
                    "socket error: {kind:?} ({})",
                    io::Error::from_raw_os_error(*errno)
                )
            }
        }
    }
}

/// Connection callbacks. One instance serves every connection of one loop
/// (servers build one per loop from a factory), so a handler needs no locks;
/// per-connection state lives in [`EventHandler::Context`].
///
/// All callbacks run on the connection's loop thread; none may block (use
/// `Conn::offload` for blocking work).
pub trait EventHandler: Sized + 'static {
    /// Per-connection state, created with `Default` when the connection opens.
    type Context: Default + 'static;

    /// The connection is established.
    fn on_open(&mut self, _conn: &mut Conn<'_, Self>) {}

    /// Bytes arrived. Consume what forms whole messages (`input.consume(n)`);
    /// what is left is kept and presented again, with more, next time.
    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer);

    /// All output written so far has been handed to the kernel after some of
    /// it had to wait in the connection's output queue.
    fn on_write_complete(&mut self, _conn: &mut Conn<'_, Self>) {}

    /// The output queue grew past the high-water mark (`queued` bytes).
    /// A typical reaction is `conn.pause_read()`, resumed in `on_write_complete`.
    fn on_high_water(&mut self, _conn: &mut Conn<'_, Self>, _queued: usize) {}

    /// The peer shut down its write side (EOF). The default finishes sending
    /// what is queued and closes.
    fn on_read_closed(&mut self, conn: &mut Conn<'_, Self>) {
        conn.close();
    }

    /// The server is draining (a graceful shutdown or an upgrade): no new
    /// connection comes, and this one should end once what it is doing is
    /// done. Return `true` (the default) to close it now, after its queued
    /// output; `false` to close it yourself when the exchange under way is
    /// over (it is closed anyway when the drain deadline passes). HTTP
    /// finishes the request being read and answers it with
    /// `Connection: close`.
    fn on_drain(&mut self, _conn: &mut Conn<'_, Self>) -> bool {
        true
    }

    /// Called every `ServerBuilder::tick` on each loop (not per connection).
    fn on_tick(&mut self, _lp: &mut crate::reactor::LoopCtx<'_>) {}

    /// The connection is closed; writes now fail. Called exactly once per
    /// connection that got `on_open`.
    fn on_close(&mut self, _conn: &mut Conn<'_, Self>, _reason: &CloseReason) {}
}
