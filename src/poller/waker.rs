//! Cross-thread wakeup: an eventfd the loop watches, plus a flag so that a
//! burst of wakeups costs one write(2) and one read(2).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// Wakes a loop blocked in its poller from any thread (`Send + Sync`): an
/// eventfd the loop watches for reading, written at most once per burst of
/// wakes. [`LoopHandle`](crate::reactor::LoopHandle) uses it for posted
/// tasks.
pub struct Waker {
    fd: OwnedFd,
    /// Set by the first `wake` after the loop last called `reset`; later
    /// wakes see it set and skip the syscall (coalescing).
    pending: AtomicBool,
}

impl Waker {
    /// Create the eventfd (non-blocking, close-on-exec). Errors are those
    /// of eventfd(2), e.g. EMFILE when out of file descriptors.
    pub fn new() -> io::Result<Waker> {
        Ok(Waker {
            fd: sys::eventfd()?,
            pending: AtomicBool::new(false),
        })
    }

    /// Wake the loop. Safe from any thread.
    pub fn wake(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        sys::eventfd_signal(self.fd.as_raw_fd())
    }

    /// Called by the loop when the waker fired, *before* it takes its task
    /// queue. The eventfd is drained first and the flag cleared second: in
    /// the other order a wake landing between the two would have its write
    /// drained while leaving the flag set, and every later wake would skip
    /// the syscall — the loop would sleep on queued tasks forever.
    pub fn reset(&self) -> io::Result<()> {
        let r = sys::eventfd_drain(self.fd.as_raw_fd());
        self.pending.store(false, Ordering::SeqCst);
        r
    }

    /// The eventfd, for the loop to register with its poller for reading.
    /// Owned by the waker: do not close it.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
