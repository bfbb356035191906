//! A connection's lifecycle, as three enums and the callbacks that are due.
//!
//! ```text
//!  phase:  Open ──close()──> Closing{lingering: false} ──output drained, FIN sent──>
//!          Closing{lingering: true} ──peer's FIN or linger timer──> Closed
//!          Closing{linger: false} ──output drained, nothing unread──> Closed (FIN by close(2))
//!          Closing ──closing_discard bytes read, or closing_time over──> reset, Closed
//!          (any phase ──error, abort, timeout, shutdown──> Closed)
//!  read:   Reading <──pause/resume──> Paused;  Reading|Paused ──EOF read──> Eof
//!  write:  Open ──shutdown_write()──> ShutWanted ──output drained──> Shut
//! ```
//!
//! Legal combinations, and what holds in them:
//! - `Open`: input is delivered (unless `Paused`); writes are taken while
//!   `write` is `Open`.
//! - `Closing`: writes fail; input is still read (unless `Paused`) but only
//!   to be discarded, so the peer's unread bytes do not turn the close into
//!   a reset. `lingering` implies `write == Shut` and an empty output queue.
//!   `Closing` with `read == Eof` and no output left closes at once.
//! - `Closed`: the fd is deregistered and `on_close` has run (once); every
//!   operation fails or does nothing. Nothing leaves `Closed`.
//! - `read == Eof` is final: the peer's FIN has been read and reported.
//!
//! A path-specific state (edge-triggered re-check, the proactor's stash)
//! lives with its I/O path, not here.

use std::time::Instant;

use crate::net::CloseReason;

/// Where the connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Delivering input and taking writes.
    Open,
    /// A graceful close is under way (boxed: an open connection does not
    /// pay for it).
    Closing(Box<Closing>),
    /// Closed: `on_close` has run.
    Closed,
}

/// A graceful close in progress. Its cost is bounded: at most
/// `ConnConfig::closing_discard` bytes of input are read and discarded,
/// and it ends by `ConnConfig::closing_time` at the latest; past either the
/// connection is reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Closing {
    /// Reported to `on_close` when the close ends.
    pub(crate) reason: CloseReason,
    /// The write side is shut (FIN sent) and the linger timer runs,
    /// waiting for the peer's FIN.
    pub(crate) lingering: bool,
    /// Linger at all once the output is sent. `false` (`Conn::close_done`:
    /// the peer sends nothing more and nothing unread is pending): the
    /// socket is closed at once, its FIN going out with `close(2)`.
    pub(crate) linger: bool,
    /// Input read and discarded since the close decision.
    pub(crate) discarded: u64,
    /// When the whole close must be over.
    pub(crate) deadline: Instant,
}

/// The read side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadState {
    Reading,
    /// The handler paused reading; the kernel buffers what the peer sends.
    Paused,
    /// The peer's FIN has been read.
    Eof,
}

/// The write side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteState {
    Open,
    /// `shutdown_write`: send what is queued, then FIN.
    ShutWanted,
    /// FIN sent.
    Shut,
}

/// Callbacks owed to the handler, called when the current one returns.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Due {
    /// The output queue drained after something had to wait in it.
    pub(crate) write_complete: bool,
    /// The queue crossed the high-water mark (`on_high_water` not yet called).
    pub(crate) high_water: bool,
    /// The queue is above the mark (reset when it drains), so the callback
    /// comes once per crossing.
    pub(crate) above_high_water: bool,
    /// Reading resumed with input kept from before: hand it to the handler
    /// again (it may hold whole messages a handler left while paused).
    pub(crate) kept_input: bool,
}
