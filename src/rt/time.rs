//! Time for tasks, on the loop's timing wheel: [`sleep`], [`sleep_until`],
//! [`timeout`], [`interval`].
//!
//! A [`Sleep`] holds a slot in its loop's executor from its first poll
//! until it completes or is dropped; the timer goes on the wheel when the
//! poll returns and comes off when the `Sleep` does, so a timeout that
//! did not fire costs an insert and a cancel, and leaves nothing behind.
//! The wheel never fires early; a `Sleep` also checks the clock itself.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::executor::{current, Local};

/// Waits until `duration` has passed.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        slot: None,
    }
}

/// The future of [`sleep`] and [`sleep_until`]. Poll it on an evnet loop
/// (inside a task or `block_on`).
#[must_use = "a Sleep does nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// The executor and the sleeper's key there, from the first poll.
    slot: Option<(Rc<Local>, u64)>,
}

impl Sleep {
    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Move the deadline (earlier or later); a task waiting on this `Sleep`
    /// now waits for the new one.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some((local, key)) = &self.slot {
            local.reset_sleeper(*key, deadline);
        }
    }

    fn release(&mut self) {
        if let Some((local, key)) = self.slot.take() {
            local.remove_sleeper(key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.release();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        match &self.slot {
            Some((local, key)) => local.update_sleeper(*key, deadline, cx.waker()),
            None => {
                let local = current().expect("evnet::rt::Sleep polled outside an evnet loop");
                let key = local.add_sleeper(deadline, cx.waker().clone());
                self.slot = Some((local, key));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// A [`timeout`] ran out before its future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline has elapsed")]
pub struct Elapsed;

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::ErrorKind::TimedOut.into()
    }
}

/// Run `future` for at most `duration`: its value, or [`Elapsed`] (the
/// future is dropped then). A future ready at its first poll wins even if
/// `duration` is zero.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    timeout_at(Instant::now() + duration, future)
}

/// [`timeout`] with an absolute deadline.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future: Box::pin(future),
        sleep: sleep_until(deadline),
    }
}

/// The future of [`timeout`].
#[must_use = "a Timeout does nothing unless awaited"]
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Ticks every `period`, the first tick at once. A tick that falls behind
/// (the task was busy) is not made up in a burst: the next one is a whole
/// period after the late one.
///
/// # Panics
/// If `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "interval: the period must be > 0");
    Interval {
        next: Instant::now(),
        period,
        sleep: None,
    }
}

/// The ticker of [`interval`].
#[derive(Debug)]
pub struct Interval {
    next: Instant,
    period: Duration,
    sleep: Option<Sleep>,
}

impl Interval {
    /// Wait for the next tick; returns when it was due.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Poll for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let due = self.next;
        let sleep = self.sleep.get_or_insert_with(|| sleep_until(due));
        sleep.reset(due);
        if Pin::new(sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let now = Instant::now();
        self.next = if due + self.period <= now {
            now + self.period
        } else {
            due + self.period
        };
        Poll::Ready(due)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}
