//! The watchdog: one wheel timer per connection for its idle, read and
//! write timeouts, re-armed lazily (I/O only stamps times; the timer, when
//! it fires, checks them and sleeps again for what is left).

use std::time::{Duration, Instant};

use super::config::ConnConfig;
use crate::net::CloseReason;

/// Per-connection timeout state, allocated only when a timeout is set. One
/// wheel timer per connection, re-armed lazily: I/O only stamps times, and
/// the timer, when it fires, checks them and sleeps again for what is left.
pub(crate) struct Watchdog {
    pub(crate) idle: Option<Duration>,
    pub(crate) read: Option<Duration>,
    pub(crate) write: Option<Duration>,
    pub(crate) last_io: Instant,
    pub(crate) partial_since: Option<Instant>,
    pub(crate) write_progress: Instant,
    /// The table timer armed for the earliest deadline, and when it fires.
    pub(crate) timer: Option<(u64, Instant)>,
}

impl Watchdog {
    pub(crate) fn new(cfg: &ConnConfig, now: Instant) -> Watchdog {
        Watchdog {
            idle: cfg.idle_timeout,
            read: cfg.read_timeout,
            write: cfg.write_timeout,
            last_io: now,
            partial_since: None,
            write_progress: now,
            timer: None,
        }
    }

    /// The earliest deadline in force, with the reason it would close for.
    pub(crate) fn next(&self, writing: bool) -> Option<(Instant, CloseReason)> {
        let mut best: Option<(Instant, CloseReason)> = None;
        let mut consider = |at: Option<Instant>, why: CloseReason| {
            if let Some(at) = at {
                if best.as_ref().is_none_or(|(b, _)| at < *b) {
                    best = Some((at, why));
                }
            }
        };
        consider(
            self.idle.map(|d| self.last_io + d),
            CloseReason::IdleTimeout,
        );
        consider(
            self.read.zip(self.partial_since).map(|(d, t)| t + d),
            CloseReason::ReadTimeout,
        );
        if writing {
            consider(
                self.write.map(|d| self.write_progress + d),
                CloseReason::WriteTimeout,
            );
        }
        best
    }
}
