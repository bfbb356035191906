//! What a handler sees of its loop: [`LoopCtx`].

use std::time::{Duration, Instant};

use super::{EventLoop, LoopHandle, LoopStats, TimerId};
use crate::poller::Trigger;

/// The narrow view of the loop that handler callbacks get: the time,
/// timers, the loop's handle and counters, and ways to ask the loop for
/// something *after* the callback returns.
///
/// Nothing here re-enters the dispatch that is running the callback: timers
/// and [`LoopCtx::later`] closures run after it, on the same thread. It
/// exists only on the loop's thread, for the length of one callback.
pub struct LoopCtx<'a> {
    pub(crate) el: &'a mut EventLoop,
}

impl<'a> LoopCtx<'a> {
    pub(crate) fn new(el: &'a mut EventLoop) -> LoopCtx<'a> {
        LoopCtx { el }
    }

    /// The time at the start of this loop turn (no syscall).
    pub fn now(&self) -> Instant {
        self.el.now()
    }

    /// The loop's number.
    pub fn id(&self) -> usize {
        self.el.id()
    }

    /// A `Send` handle to this loop, for other threads.
    pub fn handle(&self) -> LoopHandle {
        self.el.handle()
    }

    /// The loop's live counters.
    pub fn stats(&self) -> &LoopStats {
        self.el.stats()
    }

    /// The trigger mode of the loop's poller.
    pub fn trigger(&self) -> Trigger {
        self.el.trigger()
    }

    /// Run `f` once after `delay`, on this loop.
    pub fn run_after(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut LoopCtx<'_>) + 'static,
    ) -> TimerId {
        self.el.run_after(delay, move |el| f(&mut LoopCtx::new(el)))
    }

    /// Run `f` every `every` until cancelled.
    pub fn run_every(
        &mut self,
        every: Duration,
        mut f: impl FnMut(&mut LoopCtx<'_>) + 'static,
    ) -> TimerId {
        self.el.run_every(every, move |el| f(&mut LoopCtx::new(el)))
    }

    /// Cancel a timer from [`LoopCtx::run_after`] or [`LoopCtx::run_every`].
    pub fn cancel(&mut self, id: TimerId) {
        self.el.cancel(id);
    }

    /// Run `f` with the whole loop once the current callback (and the
    /// dispatch running it) has returned: register sources, dial, watch fds.
    pub fn later(&mut self, f: impl FnOnce(&mut EventLoop) + 'static) {
        self.el.later(f);
    }

    /// Stop the loop after this turn.
    pub fn stop(&mut self) {
        self.el.stop();
    }

    /// Begin a graceful shutdown of the loop (see [`EventLoop::drain`]),
    /// once the current callback has returned.
    pub fn drain(&mut self, deadline: Duration) {
        self.el.later(move |el| el.drain(deadline));
    }
}

impl EventLoop {
    /// The narrow view of this loop that handlers get (see [`LoopCtx`]).
    pub fn ctx(&mut self) -> LoopCtx<'_> {
        LoopCtx::new(self)
    }
}
