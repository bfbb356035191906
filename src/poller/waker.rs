//! Cross-thread wakeup: an eventfd the loop watches, plus a flag so that a
//! burst of wakeups costs one write(2) and one read(2).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

pub struct Waker {
    fd: OwnedFd,
    /// Set by the first `wake` after the loop last called `reset`; later
    /// wakes see it set and skip the syscall (coalescing).
    pending: AtomicBool,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        Ok(Waker { fd: sys::eventfd()?, pending: AtomicBool::new(false) })
    }

    /// Wake the loop. Safe from any thread.
    pub fn wake(&self) -> io::Result<()> {
        if self.pending.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        sys::eventfd_signal(self.fd.as_raw_fd())
    }

    /// Called by the loop when the waker fired, *before* it drains its task
    /// queue: a wake racing with the drain then writes the eventfd again.
    ///
    /// Drain the eventfd *before* clearing the flag. The other order loses
    /// wakeups for good: a wake landing between the store and the drain
    /// sets the flag and writes the eventfd, the drain eats the write, and
    /// the flag stays set, so every later wake skips its write while the
    /// loop sleeps (a server's shutdown hung on this in the test suite).
    pub fn reset(&self) -> io::Result<()> {
        let r = sys::eventfd_drain(self.fd.as_raw_fd());
        self.pending.store(false, Ordering::SeqCst);
        r
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
