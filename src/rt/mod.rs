//! Tasks on the loops: async/await on evnet's event loops, thread per
//! core.
//!
//! Every [`EventLoop`] can also run tasks — futures polled on the loop's
//! own thread, next to its callback handlers — so code can be written in
//! the blocking style and still be multiplexed: a task waiting on a timer
//! (or, later, a socket) costs no thread, only its future's memory.
//!
//! - [`spawn_local`] adds a task to the loop the caller runs on (from inside
//!   a task or `block_on`); [`spawn_in`] does the same given the loop
//!   (from a callback handler); [`spawn_on`] sends a task to another loop
//!   through its [`LoopHandle`], from any thread.
//! - Tasks are `!Send`: they live and die on their loop. Their
//!   [`JoinHandle`]s are `Send` (when the value is) and can be awaited
//!   anywhere; [`JoinHandle::abort`] cancels. A task that panics ends with
//!   [`JoinError::Panic`] in its handle; the loop goes on serving.
//! - [`block_on`] runs a program's main future on a loop of its own, on
//!   this thread.
//! - Time: [`sleep`], [`sleep_until`], [`timeout`], [`interval`], on the
//!   loop's timing wheel.
//! - Sockets: [`TcpListener`], [`TcpStream`] (with owned read and write
//!   halves) and Go's per-direction deadlines; with the features `tokio-io`
//!   and `futures-io` they implement those crates' `AsyncRead`/`AsyncWrite`,
//!   so code written against them runs on evnet loops. With the feature
//!   `hyper`, [`HyperTimer`] and [`HyperExecutor`] are hyper's runtime
//!   traits on the loop.
//!
//! ```
//! use std::time::Duration;
//! use evnet::rt;
//!
//! let sum = rt::block_on(async {
//!     let a = rt::spawn_local(async { 20 });
//!     let b = rt::spawn_local(async {
//!         rt::sleep(Duration::from_millis(5)).await;
//!         22
//!     });
//!     a.await.unwrap() + b.await.unwrap()
//! });
//! assert_eq!(sum, 42);
//! ```

mod compat;
mod executor;
#[cfg(feature = "hyper")]
mod hyper_rt;
mod net;
mod ready;
mod ring;
mod task;
mod time;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::Poll;

pub(crate) use executor::Local;
#[cfg(feature = "hyper")]
pub use hyper_rt::{HyperExecutor, HyperTimer, LoopSleep};
pub use net::{
    OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream,
};
pub use task::{JoinError, JoinHandle};
pub use time::{
    interval, sleep, sleep_until, timeout, timeout_at, Elapsed, Interval, Sleep, Timeout,
};

use crate::reactor::{EventLoop, LoopClosed, LoopConfig, LoopHandle};

/// Spawn `future` as a task on the loop this code runs on.
///
/// # Panics
/// Outside an evnet task or [`block_on`] (use [`spawn_in`] from a callback
/// handler, [`spawn_on`] from another thread).
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    executor::current()
        .expect("evnet::rt::spawn_local called outside an evnet task")
        .spawn(future)
}

/// Spawn `future` as a task on `el` (from code that holds the loop: a
/// callback handler, a loop's start hook).
pub fn spawn_in<F>(el: &mut EventLoop, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = task::JoinState::new();
    executor::local_for(el).spawn_in_loop(el, future, state.clone());
    JoinHandle::new(state)
}

/// Spawn a task on the loop behind `handle`, from any thread: `make` runs
/// there and builds the future (which need not be `Send`; only `make` and
/// the value cross threads). If the loop stops before the task ends, the
/// handle yields [`JoinError::Cancelled`].
pub fn spawn_on<M, F>(handle: &LoopHandle, make: M) -> Result<JoinHandle<F::Output>, LoopClosed>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    let state = task::JoinState::new();
    let posted = Posted(Some(state.clone()));
    handle.post(move |el| {
        let mut posted = posted;
        if let Some(state) = posted.0.take() {
            executor::local_for(el).spawn_in_loop(el, make(), state);
        }
    })?;
    Ok(JoinHandle::new(state))
}

/// A spawn in transit to its loop: if the loop drops it unrun (it
/// stopped), the handle learns the task was cancelled.
struct Posted<T>(Option<std::sync::Arc<task::JoinState<T>>>);

impl<T> Drop for Posted<T> {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.finish(Err(JoinError::Cancelled));
        }
    }
}

/// Run `future` to completion on a new event loop on this thread (the
/// default [`LoopConfig`]: epoll), with the tasks it spawns; return its
/// value. Tasks still running when it returns are dropped; streams they
/// dropped with output still queued (on the proactor) finish sending first.
///
/// # Panics
/// If the loop cannot be created (no fds left) or fails while waiting.
pub fn block_on<F: Future>(future: F) -> F::Output {
    block_on_with(LoopConfig::default(), future).expect("evnet::rt::block_on: event loop failed")
}

/// [`block_on`] on a loop built from `config` (another poller, the io_uring
/// proactor...).
pub fn block_on_with<F: Future>(config: LoopConfig, future: F) -> io::Result<F::Output> {
    let mut el = EventLoop::new(config)?;
    let local = executor::local_for(&mut el);
    let waker = local.main_waker();
    let mut future = pin!(future);
    let out = loop {
        if local.take_main_woken() {
            let r = executor::poll_main(&local, future.as_mut(), &waker);
            local.flush(&mut el);
            if let Poll::Ready(v) = r {
                break v;
            }
        }
        if let Err(e) = el.turn(None) {
            el.shut_down();
            return Err(e);
        }
    };
    // Streams dropped with output still queued for the ring (proactor)
    // finish sending before the loop goes, as the kernel would have sent
    // what a readiness-path write had already handed it.
    let until = std::time::Instant::now() + ring::LINGER;
    while local.ios.borrow().lingering() > 0 {
        let now = std::time::Instant::now();
        if now >= until || el.turn(Some(until - now)).is_err() {
            break;
        }
    }
    el.shut_down();
    Ok(out)
}

/// Let the other tasks on this loop run before going on.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Tasks alive on `el` (spawned and not yet finished or dropped).
pub fn task_count(el: &EventLoop) -> usize {
    el.executor().map_or(0, |l| l.task_count())
}

/// Timers the tasks on `el` hold on its wheel now (each [`Sleep`] pending
/// in a poll holds one).
pub fn armed_timers(el: &EventLoop) -> usize {
    el.executor().map_or(0, |l| l.armed_timers())
}

/// Timer-wheel operations (arm, re-arm, cancel) the tasks on `el` have
/// made: what a timeout costs, counted rather than timed.
pub fn timer_operations(el: &EventLoop) -> u64 {
    el.executor().map_or(0, |l| l.timer_ops.get())
}
