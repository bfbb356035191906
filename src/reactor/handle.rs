//! What other threads may hold of a loop: its task queue, waker and counters.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use super::{stats, EventLoop};
use crate::poller::Waker;

pub(crate) type Task = Box<dyn FnOnce(&mut EventLoop) + Send>;

/// The loop has stopped; the task was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event loop has stopped")]
pub struct LoopClosed;

/// Live counters of one loop, readable from any thread (relaxed atomics,
/// each written only by its loop's thread).
#[derive(Default, Debug)]
pub struct LoopStats {
    /// Connections open on the loop now.
    pub connections_open: AtomicUsize,
    /// Connections ever opened on the loop.
    pub connections_total: AtomicU64,
    /// Bytes read from sockets.
    pub bytes_in: AtomicU64,
    /// Bytes the sockets took.
    pub bytes_out: AtomicU64,
    /// Messages handled, counted by the protocol that runs on the loop
    /// (an HTTP request, a RESP command...). The reactor never touches it.
    pub messages: AtomicU64,
    /// Connections closed, by reason: slots assigned by the net layer
    /// (`net::metrics::CLOSE_REASONS` names them).
    pub closed: [AtomicU64; stats::CLOSE_SLOTS],
    /// Failed accepts, by errno: slots assigned by the net layer
    /// (`net::metrics::ACCEPT_ERRORS` names them).
    pub accept_errors: [AtomicU64; stats::ACCEPT_ERROR_SLOTS],
    /// Accepted sockets closed before they opened because of the PROXY
    /// protocol: slots assigned by the net layer
    /// (`net::metrics::PROXY_REFUSED` names them).
    pub proxy_refused: [AtomicU64; stats::PROXY_REFUSED_SLOTS],
    /// KCP datagrams dropped and sessions ended to make room: slots
    /// assigned by the net layer (`net::metrics::KCP_DROPPED` names them).
    pub kcp_dropped: [AtomicU64; stats::KCP_DROPPED_SLOTS],
    /// Responses by status class (1xx at 0 ... 5xx at 4), counted by the
    /// protocol (HTTP).
    pub responses: [AtomicU64; stats::STATUS_CLASSES],
    /// Request latency, recorded by the protocol.
    pub latency: stats::Histogram,
}

impl LoopStats {
    /// Adds `n` to one of the counters. Call only on the loop's thread: with
    /// a single writer a plain load and store is exact (readers see either
    /// value), and it needs no locked read-modify-write.
    pub fn add(counter: &AtomicU64, n: u64) {
        stats::add(counter, n);
    }
}

pub(crate) struct Shared {
    pub(crate) id: usize,
    pub(crate) tasks: Mutex<Vec<Task>>,
    pub(crate) waker: Waker,
    pub(crate) stopped: AtomicBool,
    pub(crate) thread: Mutex<Option<ThreadId>>,
    pub(crate) stats: LoopStats,
}

/// A `Send + Sync` handle to an [`EventLoop`]. Every method is safe to call
/// from any thread.
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) shared: Arc<Shared>,
}

impl LoopHandle {
    /// Queue `task` to run on the loop's thread and wake the loop. Tasks from
    /// one thread run in the order they were posted.
    pub fn post(
        &self,
        task: impl FnOnce(&mut EventLoop) + Send + 'static,
    ) -> Result<(), LoopClosed> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(LoopClosed);
        }
        self.shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(task));
        // An eventfd write can only fail if the fd is gone, i.e. the loop is
        // being torn down; the task is then dropped with it.
        self.shared.waker.wake().map_err(|_| LoopClosed)
    }

    /// Run `f` on the loop after `delay`.
    pub fn run_after(
        &self,
        delay: Duration,
        f: impl FnOnce(&mut EventLoop) + Send + 'static,
    ) -> Result<(), LoopClosed> {
        self.post(move |el| {
            el.run_after(delay, f);
        })
    }

    /// Ask for source `id`'s [`Source::notify`](super::Source::notify) on
    /// the loop (a stale id finds nothing).
    pub fn notify(&self, id: super::SourceId) -> Result<(), LoopClosed> {
        self.post(move |el| el.notify(id))
    }

    /// Ask the loop to leave `run` after its current turn (the request is
    /// posted as a task and the loop woken). Returns at once, without
    /// waiting for the loop to stop; on the way out the loop shuts down its
    /// sources (a server's connections close with `CloseReason::Shutdown`).
    /// A loop that has already stopped ignores it.
    pub fn stop(&self) {
        let _ = self.post(|el| el.stop());
    }

    /// The loop's index among its server's loops (0 for a standalone loop).
    pub fn id(&self) -> usize {
        self.shared.id
    }

    /// The loop's live counters (connections, bytes, messages). Readable
    /// from any thread; values are relaxed snapshots, not a consistent set.
    pub fn stats(&self) -> &LoopStats {
        &self.shared.stats
    }

    /// Whether both handles reach the same loop.
    pub(crate) fn same_loop(&self, other: &LoopHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Whether the caller is running on this loop's thread.
    pub fn in_loop_thread(&self) -> bool {
        *self.shared.thread.lock().unwrap_or_else(|e| e.into_inner())
            == Some(std::thread::current().id())
    }

    /// Whether the loop has left `run` (or was dropped): from then on
    /// [`post`](Self::post) and the methods built on it return
    /// [`LoopClosed`].
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoopHandle({})", self.shared.id)
    }
}
