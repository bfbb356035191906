//! hyper's runtime traits on evnet loops (feature `hyper`): [`HyperTimer`]
//! (`hyper::rt::Timer`, on the loop's timing wheel) and [`HyperExecutor`]
//! (`hyper::rt::Executor`, a task on the current loop). The I/O traits come
//! through tokio's (feature `tokio-io`) and hyper-util's `TokioIo`.
//!
//! ```no_run
//! # #[cfg(feature = "tokio-io")]
//! # async fn serve(stream: evnet::rt::TcpStream) {
//! use hyper::server::conn::http1;
//! # let service = hyper::service::service_fn(|_req| async {
//! #     Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("hi")))
//! # });
//! let conn = http1::Builder::new()
//!     .timer(evnet::rt::HyperTimer)
//!     .header_read_timeout(std::time::Duration::from_secs(5))
//!     .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
//! # let _ = conn.await;
//! # }
//! ```
//!
//! hyper wants its sleeps `Send + Sync`; a loop's timers are not (they
//! live on its thread). A [`LoopSleep`] therefore names its executor by
//! identity, not by reference: it is polled and dropped on the loop that
//! made it (hyper keeps a connection's timers with the connection, which is
//! a task on that loop). Polled on another thread it panics; dropped on
//! another thread it leaves its sleeper behind, to go with its loop.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::executor::{current, Local};

/// `hyper::rt::Timer` on the current loop's timing wheel.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

/// `hyper::rt::Executor`: each future becomes a task on the current loop
/// (HTTP/1 servers never use it; HTTP/2 and clients do).
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor;

impl<F> hyper::rt::Executor<F> for HyperExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        drop(super::spawn_local(fut));
    }
}

/// The sleep [`HyperTimer`] hands to hyper.
#[derive(Debug)]
pub struct LoopSleep {
    deadline: Instant,
    /// The executor (by address) and the sleeper's key there, from the
    /// first poll.
    slot: Option<(usize, u64)>,
}

fn id(local: &Rc<Local>) -> usize {
    Rc::as_ptr(local) as usize
}

/// The current executor if it is the one `owner` names.
fn owner_local(owner: usize) -> Option<Rc<Local>> {
    current().filter(|l| id(l) == owner)
}

impl LoopSleep {
    fn new(deadline: Instant) -> LoopSleep {
        LoopSleep {
            deadline,
            slot: None,
        }
    }

    fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some((owner, key)) = self.slot {
            if let Some(local) = owner_local(owner) {
                local.reset_sleeper(key, deadline);
            }
        }
    }
}

impl Future for LoopSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let local = current().expect("evnet::rt::LoopSleep polled outside an evnet loop");
        if Instant::now() >= self.deadline {
            if let Some((owner, key)) = self.slot.take() {
                assert_eq!(owner, id(&local), "a LoopSleep polled on another loop");
                local.remove_sleeper(key);
            }
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        match self.slot {
            Some((owner, key)) => {
                assert_eq!(owner, id(&local), "a LoopSleep polled on another loop");
                local.update_sleeper(key, deadline, cx.waker());
            }
            None => {
                let key = local.add_sleeper(deadline, cx.waker().clone());
                self.slot = Some((id(&local), key));
            }
        }
        Poll::Pending
    }
}

impl Drop for LoopSleep {
    fn drop(&mut self) {
        if let Some((owner, key)) = self.slot.take() {
            if let Some(local) = owner_local(owner) {
                local.remove_sleeper(key);
            }
        }
    }
}

impl hyper::rt::Sleep for LoopSleep {}

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LoopSleep::new(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LoopSleep::new(deadline))
    }

    /// Move the sleep in place (one re-arm on the wheel) when it is ours.
    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<LoopSleep>() {
            Some(s) => Pin::into_inner(s).reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
