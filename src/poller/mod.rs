//! The readiness pollers (Go calls them the netpoller): one narrow trait,
//! [`Poller`], and one file per backend. Each reports its [`Caps`]; code
//! above asks those, never a backend's name.
//!
//! | backend | [`Caps`] | limits |
//! |---|---|---|
//! | [`epoll`] | level, edge, exclusive | EPERM for regular files (they are always ready) |
//! | `uring` ([`crate::ring`]) | level, edge, exclusive | io_uring poll requests: one SQE per event in level mode, one multishot per fd in edge; Linux 5.11+, refused where io_uring is disabled |
//! | [`poll`]  | level | O(n) scan per wait |
//! | [`select`] | level | fds must be < FD_SETSIZE (1024); O(max fd) scan |
//! | [`busy_poll`] | level | never sleeps with a connection open: burns a core |
//! | [`sigio`] | edge (always), merges notices | one realtime signal per event; queue overflow forces a rescan |
//! | `proactor` ([`crate::ring`]) | level, exclusive, completion | not a readiness poller: the loop's driver is the ring itself (see [`crate::reactor`]) |
//!
//! The io_uring backend lives with the rest of the io_uring engine in
//! [`crate::ring`]; [`new_poller`] builds it like any other.
//!
//! Events carry the caller's [`Token`], never an fd: the reactor maps tokens
//! to its channels and uses the token's generation to drop stale events.

pub mod busy_poll;
pub mod epoll;
pub mod poll;
pub mod select;
pub mod sigio;
mod waker;

use std::fmt;
use std::io;
use std::num::NonZeroU8;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::ring::Uring;
pub use waker::Waker;

/// Caller-chosen identifier delivered with each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// What readiness to watch for. Never empty (a registration with no interest
/// is a deregistration, and says so).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Interest(NonZeroU8);

const R: u8 = 0b001;
const W: u8 = 0b010;
const X: u8 = 0b100;

impl Interest {
    /// Data to read, a connection to accept, or the peer's EOF/error
    /// (backends also watch for read-side shutdown: EPOLLRDHUP/POLLRDHUP).
    pub const READABLE: Interest = Interest(NonZeroU8::new(R).unwrap());
    /// Room in the send buffer, or a non-blocking connect that finished.
    pub const WRITABLE: Interest = Interest(NonZeroU8::new(W).unwrap());
    /// [`READABLE`](Self::READABLE) and [`WRITABLE`](Self::WRITABLE).
    pub const BOTH: Interest = Interest(NonZeroU8::new(R | W).unwrap());

    /// Wake only one of the pollers sharing this fd (epoll's EPOLLEXCLUSIVE,
    /// for a listener watched by several loops). Backends without
    /// [`Caps::exclusive`] ignore it and wake every one.
    pub const fn exclusive(self) -> Interest {
        Interest(NonZeroU8::new(self.0.get() | X).unwrap())
    }
    /// Whether readability is watched.
    pub const fn is_readable(self) -> bool {
        self.0.get() & R != 0
    }
    /// Whether writability is watched.
    pub const fn is_writable(self) -> bool {
        self.0.get() & W != 0
    }
    /// Whether exclusive wake-up was asked for (see
    /// [`exclusive`](Self::exclusive)).
    pub const fn is_exclusive(self) -> bool {
        self.0.get() & X != 0
    }
    /// `self` plus `other`.
    pub const fn add(self, other: Interest) -> Interest {
        Interest(NonZeroU8::new(self.0.get() | other.0.get()).unwrap())
    }
    /// `self` without `other`, or `None` if nothing would be left.
    pub fn remove(self, other: Interest) -> Option<Interest> {
        NonZeroU8::new(self.0.get() & !other.0.get() & (R | W))
            .map(|_| Interest(NonZeroU8::new(self.0.get() & !other.0.get()).unwrap()))
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        self.add(rhs)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.is_readable() {
            parts.push("READABLE");
        }
        if self.is_writable() {
            parts.push("WRITABLE");
        }
        if self.is_exclusive() {
            parts.push("EXCLUSIVE");
        }
        write!(f, "{}", parts.join("|"))
    }
}

/// One readiness report.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The token the fd was registered with.
    pub token: Token,
    flags: u8,
}

impl Event {
    /// Flag: the fd is readable (EPOLLIN / POLLIN).
    pub const READABLE: u8 = 1;
    /// Flag: the fd is writable (EPOLLOUT / POLLOUT).
    pub const WRITABLE: u8 = 2;
    /// An error is pending on the fd (read SO_ERROR or just try the I/O).
    pub const ERROR: u8 = 4;
    /// Both directions are closed (EPOLLHUP / POLLHUP).
    pub const HUP: u8 = 8;
    /// The peer shut down its write side (EPOLLRDHUP); reads will hit EOF.
    pub const READ_CLOSED: u8 = 16;

    /// An event for `token` with `flags`, a bitwise OR of the flag
    /// constants above ([`READABLE`](Self::READABLE),
    /// [`WRITABLE`](Self::WRITABLE), [`ERROR`](Self::ERROR),
    /// [`HUP`](Self::HUP), [`READ_CLOSED`](Self::READ_CLOSED)). Backends
    /// build these; tests and custom sources may too.
    pub const fn new(token: Token, flags: u8) -> Event {
        Event { token, flags }
    }
    /// Readable, or in a state where a read returns at once (EOF, error).
    pub fn is_readable(&self) -> bool {
        self.flags & (Self::READABLE | Self::ERROR | Self::HUP | Self::READ_CLOSED) != 0
    }
    /// Writable, or in a state where a write fails at once.
    pub fn is_writable(&self) -> bool {
        self.flags & (Self::WRITABLE | Self::ERROR | Self::HUP) != 0
    }
    /// An error is pending on the fd ([`ERROR`](Self::ERROR)).
    pub fn is_error(&self) -> bool {
        self.flags & Self::ERROR != 0
    }
    /// Both directions are closed ([`HUP`](Self::HUP)).
    pub fn is_hup(&self) -> bool {
        self.flags & Self::HUP != 0
    }
    /// The peer will send nothing more: its write side is shut down
    /// ([`READ_CLOSED`](Self::READ_CLOSED)) or the connection hung up
    /// ([`HUP`](Self::HUP)).
    pub fn is_read_closed(&self) -> bool {
        self.flags & (Self::READ_CLOSED | Self::HUP) != 0
    }
    /// The raw flag bits (the constants above, OR-ed).
    pub fn flags(&self) -> u8 {
        self.flags
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Event({:?}, {:#07b})", self.token, self.flags)
    }
}

/// Level-triggered: an fd is reported while it is ready. Edge-triggered: only
/// when it becomes ready, so the owner must drain it to EAGAIN (or remember
/// that it has not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Trigger {
    /// Report an fd on every wait for as long as it is ready (the default;
    /// every backend but sigio).
    #[default]
    Level,
    /// Report an fd once each time it becomes ready (epoll EPOLLET, io_uring
    /// multishot polls, sigio).
    Edge,
}

/// The drivers a loop can run on: the readiness backends, and io_uring as a
/// proactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PollerKind {
    /// epoll(7), level or edge (the default).
    #[default]
    Epoll,
    /// poll(2): level only, an O(n) scan per wait.
    Poll,
    /// select(2): level only, fds must be below FD_SETSIZE (1024).
    Select,
    /// Report every connection ready on every wait (a teaching baseline).
    BusyPoll,
    /// Signal-driven I/O (O_ASYNC + F_SETSIG), always edge-triggered.
    SigIo,
    /// io_uring poll requests (IORING_OP_POLL_ADD), level or edge.
    Uring,
    /// io_uring as a proactor: connections recv and send through the ring
    /// (completions, not readiness); listeners and other fds are polled.
    Proactor,
}

impl PollerKind {
    /// Every kind, in the order benchmarks list them.
    pub const ALL: [PollerKind; 7] = [
        PollerKind::Epoll,
        PollerKind::Uring,
        PollerKind::Proactor,
        PollerKind::Poll,
        PollerKind::Select,
        PollerKind::BusyPoll,
        PollerKind::SigIo,
    ];

    /// The name `FromStr` accepts.
    pub const fn name(self) -> &'static str {
        match self {
            PollerKind::Epoll => "epoll",
            PollerKind::Poll => "poll",
            PollerKind::Select => "select",
            PollerKind::BusyPoll => "busy-poll",
            PollerKind::SigIo => "sigio",
            PollerKind::Uring => "uring",
            PollerKind::Proactor => "proactor",
        }
    }

    /// What a driver of this kind can do, known before one is built
    /// (builders check a trigger with it). Each backend reports the same
    /// from [`Poller::caps`]; the table is in [`Caps`].
    pub const fn caps(self) -> Caps {
        match self {
            PollerKind::Epoll => Caps {
                level: true,
                edge: true,
                exclusive: true,
                close_deregisters: true,
                ..Caps::NONE
            },
            PollerKind::Uring => Caps {
                level: true,
                edge: true,
                exclusive: true,
                ..Caps::NONE
            },
            PollerKind::Proactor => Caps {
                level: true,
                exclusive: true,
                completion: true,
                ..Caps::NONE
            },
            PollerKind::Poll | PollerKind::Select | PollerKind::BusyPoll => Caps {
                level: true,
                ..Caps::NONE
            },
            PollerKind::SigIo => Caps {
                edge: true,
                merges_notices: true,
                ..Caps::NONE
            },
        }
    }
}

/// What a driver can do. Servers and connections decide by these, never by
/// a backend's name.
///
/// | driver | level | edge | exclusive | completion | merges_notices | close_deregisters |
/// |---|---|---|---|---|---|---|
/// | epoll | yes | yes | yes | | | yes |
/// | uring | yes | yes | yes | | | |
/// | proactor | yes | | yes | yes | | |
/// | poll, select, busy-poll | yes | | | | | |
/// | sigio | | yes (always) | | | yes | |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Caps {
    /// Can report an fd for as long as it is ready (level-triggered).
    pub level: bool,
    /// Can report an fd when it becomes ready (edge-triggered). A driver
    /// with `edge` and without `level` is edge-triggered whatever is asked.
    pub edge: bool,
    /// Honours [`Interest::exclusive`]: of several loops watching one
    /// listener, a new connection wakes one, not all.
    pub exclusive: bool,
    /// Connections move their bytes through completions on the loop's ring
    /// (`EventLoop::ring`), not through readiness and their own syscalls.
    pub completion: bool,
    /// Several readiness notices for one fd can merge into one event that
    /// stays the only one (sigio folds a batch of signals per fd). Then a
    /// short read does not prove the fd drained: an EOF may be behind it.
    pub merges_notices: bool,
    /// Closing an fd (its last reference) removes it from the driver, so
    /// an fd about to be closed needs no deregistering call (epoll drops a
    /// closed file from its interest list; a short connection saves one
    /// `epoll_ctl` this way).
    pub close_deregisters: bool,
}

impl Caps {
    /// Nothing at all (a base for struct updates).
    pub const NONE: Caps = Caps {
        level: false,
        edge: false,
        exclusive: false,
        completion: false,
        merges_notices: false,
        close_deregisters: false,
    };

    /// The trigger a driver with these caps delivers when `asked` for one:
    /// `asked` if it can, edge for level on an edge-only driver (sigio),
    /// `None` for edge on a driver without it.
    pub const fn trigger_for(self, asked: Trigger) -> Option<Trigger> {
        match asked {
            Trigger::Level if self.level => Some(Trigger::Level),
            Trigger::Level => Some(Trigger::Edge),
            Trigger::Edge if self.edge => Some(Trigger::Edge),
            Trigger::Edge => None,
        }
    }
}

impl std::str::FromStr for PollerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "epoll" => Ok(PollerKind::Epoll),
            "poll" => Ok(PollerKind::Poll),
            "select" => Ok(PollerKind::Select),
            "busy-poll" | "busypoll" => Ok(PollerKind::BusyPoll),
            "sigio" => Ok(PollerKind::SigIo),
            "uring" | "io_uring" | "io-uring" => Ok(PollerKind::Uring),
            "proactor" | "uring-proactor" => Ok(PollerKind::Proactor),
            _ => Err(format!(
                "unknown poller {s:?} (epoll, uring, proactor, poll, select, busy-poll, sigio)"
            )),
        }
    }
}

impl std::str::FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "level" | "lt" => Ok(Trigger::Level),
            "edge" | "et" => Ok(Trigger::Edge),
            _ => Err(format!("unknown trigger {s:?} (level, edge)")),
        }
    }
}

/// A readiness poller. Not thread-safe: it belongs to one loop; other threads
/// reach that loop through its [`Waker`].
pub trait Poller: Send {
    /// Start watching `fd`. The fd must stay open until deregistered.
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Change the token or interest of a registered fd.
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Stop watching `fd`.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;
    /// Wait until at least one fd is ready or `timeout` passes (`None`: no
    /// limit), replacing `events` with what is ready. EINTR is retried.
    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()>;
    /// The trigger mode this poller delivers.
    fn trigger(&self) -> Trigger;
    /// Backend name for logs and benchmark tables.
    fn name(&self) -> &'static str;
    /// What this backend can do (the same as its [`PollerKind::caps`]).
    fn caps(&self) -> Caps;
}

/// Build a readiness poller of `kind` in `trigger` mode. Only epoll and
/// uring can be asked for either trigger; sigio is edge-triggered whatever
/// is asked (signals mark changes, not states: check [`Poller::trigger`]),
/// the others level only. [`PollerKind::Proactor`] is refused: it is not a
/// readiness poller but a completion driver, which the reactor builds from
/// the ring itself. Call it on the thread that will run the loop (sigio
/// routes its signals to the calling thread).
pub fn new_poller(kind: PollerKind, trigger: Trigger) -> io::Result<Box<dyn Poller>> {
    if kind.caps().trigger_for(trigger).is_none() {
        return Err(no_edge(kind));
    }
    match kind {
        PollerKind::Epoll => Ok(Box::new(epoll::Epoll::new(trigger)?)),
        PollerKind::Uring => Ok(Box::new(Uring::new(trigger)?)),
        PollerKind::SigIo => Ok(Box::new(sigio::SigIo::new()?)),
        PollerKind::Poll => Ok(Box::new(poll::Poll::new())),
        PollerKind::Select => Ok(Box::new(select::Select::new())),
        PollerKind::BusyPoll => Ok(Box::new(busy_poll::BusyPoll::new())),
        PollerKind::Proactor => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the proactor is a completion driver, not a readiness poller (run it as a loop's driver: LoopConfig::poller)",
        )),
    }
}

/// The refusal of an edge trigger on a backend without one.
pub(crate) fn no_edge(kind: PollerKind) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{kind:?} has no edge-triggered mode; use epoll or uring"),
    )
}

/// Milliseconds for a poll-style timeout, rounded up: the kernel takes whole
/// milliseconds, and rounding down would wake the loop just before a timer is
/// due, spinning until it is.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as i32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_never_empty_and_composes() {
        let both = Interest::READABLE | Interest::WRITABLE;
        assert!(both.is_readable() && both.is_writable());
        assert_eq!(both.remove(Interest::WRITABLE), Some(Interest::READABLE));
        assert_eq!(Interest::READABLE.remove(Interest::READABLE), None);
        assert!(Interest::READABLE.exclusive().is_exclusive());
        assert_eq!(
            Interest::READABLE.exclusive().remove(Interest::READABLE),
            None
        );
    }

    #[test]
    fn timeout_rounds_up() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
    }

    #[test]
    fn edge_needs_epoll_or_uring() {
        assert!(new_poller(PollerKind::Poll, Trigger::Edge).is_err());
        assert!(new_poller(PollerKind::Select, Trigger::Edge).is_err());
        assert!(new_poller(PollerKind::BusyPoll, Trigger::Edge).is_err());
        assert_eq!(
            new_poller(PollerKind::SigIo, Trigger::Level)
                .unwrap()
                .trigger(),
            Trigger::Edge
        );
        for k in PollerKind::ALL {
            assert_eq!(k.name().parse::<PollerKind>(), Ok(k));
        }
        for k in [PollerKind::Epoll, PollerKind::Uring] {
            for t in [Trigger::Level, Trigger::Edge] {
                assert_eq!(new_poller(k, t).unwrap().trigger(), t, "{k:?}");
            }
        }
        for k in PollerKind::ALL {
            let edge = new_poller(k, Trigger::Edge).is_ok();
            assert_eq!(k.caps().edge, edge, "{k:?}");
        }
    }

    #[test]
    fn trigger_for_follows_the_caps() {
        use Trigger::{Edge, Level};
        let cases = [
            (PollerKind::Epoll, Level, Some(Level)),
            (PollerKind::Epoll, Edge, Some(Edge)),
            (PollerKind::Uring, Edge, Some(Edge)),
            (PollerKind::Proactor, Level, Some(Level)),
            (PollerKind::Proactor, Edge, None),
            (PollerKind::Poll, Edge, None),
            (PollerKind::Select, Level, Some(Level)),
            (PollerKind::SigIo, Level, Some(Edge)),
            (PollerKind::SigIo, Edge, Some(Edge)),
        ];
        for (kind, asked, got) in cases {
            assert_eq!(kind.caps().trigger_for(asked), got, "{kind:?} {asked:?}");
        }
    }

    #[test]
    fn the_proactor_is_not_a_readiness_poller() {
        let err = new_poller(PollerKind::Proactor, Trigger::Level)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("completion driver"), "{err}");
    }
}
