//! The server-wide cap on open connections ([`MaxConnections`]).
//!
//! Every accept first takes a [`Permit`] from the server's [`ConnLimit`];
//! the connection carries it and gives it back when it is dropped, on
//! whatever loop that happens. At the cap a listener stops watching its
//! socket and waits on the limit: the kernel keeps new clients in the accept
//! queue (the listen backlog) meanwhile, and the first connection to close
//! wakes every waiting listener's loop. Stopping is the same thing nginx
//! does when a worker is out of connections, and it is chosen over
//! accept-and-close because a queued client is served as soon as there is
//! room instead of being refused, and because an attacker reconnecting in a
//! loop then costs the server no accept, no close and no log line per try.
//! When the backlog is full too, the kernel drops further SYNs and the
//! clients retry.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::reactor::{LoopHandle, SourceId};

/// How many connections a server holds open at once, over all its loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaxConnections {
    /// Derived from the process's fd limit when the server starts:
    /// [`auto_max_connections`] of the soft `RLIMIT_NOFILE`. The default.
    #[default]
    Auto,
    /// At most this many (at least 1).
    Max(usize),
    /// No cap: accepting pauses only when the process runs out of fds.
    Unlimited,
}

impl MaxConnections {
    /// The cap in force, `None` for no cap; `Auto` reads the fd limit now.
    pub fn resolve(self) -> Option<usize> {
        match self {
            MaxConnections::Auto => {
                let (soft, _) = crate::sys::nofile_limit().unwrap_or((1024, 1024));
                Some(auto_max_connections(soft))
            }
            MaxConnections::Max(n) => Some(n.max(1)),
            MaxConnections::Unlimited => None,
        }
    }
}

/// The default cap for a process allowed `nofile` open files: all of them
/// but a reserve of one eighth (at least 32) for listeners, the loops' own
/// fds (epoll, eventfd, timers) and files that handlers open. A server that
/// opens a file per connection (static files) wants about half.
pub fn auto_max_connections(nofile: u64) -> usize {
    let reserve = (nofile / 8).max(32);
    usize::try_from(nofile.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// The count of a server's open connections against its cap, and the
/// listeners waiting for room.
pub(crate) struct ConnLimit {
    max: usize,
    open: AtomicUsize,
    /// Whether `waiting` has entries (read on every release without the lock).
    has_waiting: AtomicBool,
    /// The loops (and their sources) whose listeners paused at the cap.
    waiting: Mutex<Vec<(LoopHandle, SourceId)>>,
    /// How many times a listener paused at the cap.
    pauses: AtomicU64,
    /// When the last warning was logged (seconds since the epoch).
    warned_at: AtomicU64,
}

/// One open connection's place under the cap; dropping it gives the place
/// back and wakes the listeners waiting for one.
pub(crate) struct Permit(Arc<ConnLimit>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl ConnLimit {
    pub(crate) fn new(max: usize) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            max,
            open: AtomicUsize::new(0),
            has_waiting: AtomicBool::new(false),
            waiting: Mutex::new(Vec::new()),
            pauses: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
        })
    }

    /// A place for one more connection, unless the cap is reached.
    pub(crate) fn acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut n = self.open.load(Ordering::SeqCst);
        loop {
            if n >= self.max {
                return None;
            }
            match self
                .open
                .compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(Permit(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Ask to be woken (`handle.notify(source)`) when a connection closes.
    /// Returns `true` if there is room already, so the caller need not wait
    /// (a release may have come between its failed acquire and this call).
    pub(crate) fn wait(&self, handle: LoopHandle, source: SourceId) -> bool {
        self.pauses.fetch_add(1, Ordering::Relaxed);
        self.warn_at_cap();
        {
            let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            if !w.iter().any(|(h, s)| *s == source && h.same_loop(&handle)) {
                w.push((handle, source));
            }
            self.has_waiting.store(true, Ordering::SeqCst);
        }
        // Dekker-style: the waiter stores `has_waiting` then loads `open`;
        // a release stores `open` then loads `has_waiting`. With SeqCst one
        // of the two sees the other, so no wake-up is lost.
        self.open.load(Ordering::SeqCst) < self.max
    }

    fn release(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        if !self.has_waiting.load(Ordering::SeqCst) {
            return;
        }
        let waiting = {
            let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            self.has_waiting.store(false, Ordering::SeqCst);
            std::mem::take(&mut *w)
        };
        for (handle, source) in waiting {
            let _ = handle.notify(source);
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The cap.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// How many times a listener paused at the cap.
    pub(crate) fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// At most one warning every 10 s: at the cap a listener pauses once
    /// per closing connection.
    fn warn_at_cap(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.warned_at.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "{} connections open, the cap: accepting paused until one closes (new clients wait in the listen backlog)",
                self.max
            );
        }
    }
}

/// A timeout as the CLI takes it: `60s`, `250ms`, `2m`, or `off`.
pub(crate) fn show_timeout(d: Option<Duration>) -> String {
    let Some(d) = d else {
        return "off".to_string();
    };
    let ms = d.as_millis();
    if ms >= 120_000 && ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A byte count in the largest binary unit that divides it: `1MiB`, `64KiB`.
pub(crate) fn show_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_leaves_a_reserve() {
        assert_eq!(auto_max_connections(20_000), 17_500);
        assert_eq!(auto_max_connections(1024), 896);
        assert_eq!(auto_max_connections(100), 68);
        assert_eq!(auto_max_connections(10), 1);
    }

    #[test]
    fn permits_stop_at_the_cap_and_come_back() {
        let limit = ConnLimit::new(2);
        let a = limit.acquire().expect("first");
        let b = limit.acquire().expect("second");
        assert!(limit.acquire().is_none(), "a third past a cap of 2");
        assert_eq!(limit.open(), 2);
        drop(a);
        assert_eq!(limit.open(), 1);
        let c = limit.acquire().expect("room again after a release");
        drop((b, c));
        assert_eq!(limit.open(), 0);
    }

    #[test]
    fn limits_print_the_way_the_cli_takes_them() {
        assert_eq!(show_timeout(None), "off");
        assert_eq!(show_timeout(Some(Duration::from_secs(60))), "60s");
        assert_eq!(show_timeout(Some(Duration::from_secs(120))), "2m");
        assert_eq!(show_timeout(Some(Duration::from_millis(1500))), "1500ms");
        assert_eq!(show_bytes(1 << 20), "1MiB");
        assert_eq!(show_bytes(65536), "64KiB");
        assert_eq!(show_bytes(1000), "1000");
    }
}
