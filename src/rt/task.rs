//! A task's completion as seen from outside: [`JoinHandle`], [`JoinError`],
//! and the wrapper that runs a task's future, catching its panic.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Why a task gave no value.
#[derive(thiserror::Error)]
pub enum JoinError {
    /// It was aborted ([`JoinHandle::abort`]) or its loop shut down first.
    #[error("task was cancelled")]
    Cancelled,
    /// It panicked; the payload is what `panic!` was given.
    #[error("task panicked")]
    Panic(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    /// Whether the task was cancelled (aborted, or its loop stopped).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panic(_))
    }

    /// The panic's message, when it was a string (as `panic!("...")` makes).
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            JoinError::Panic(p) => p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
            JoinError::Cancelled => None,
        }
    }
}

impl std::fmt::Debug for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::Cancelled => write!(f, "JoinError::Cancelled"),
            JoinError::Panic(_) => match self.panic_message() {
                Some(m) => write!(f, "JoinError::Panic({m:?})"),
                None => write!(f, "JoinError::Panic(..)"),
            },
        }
    }
}

struct Outcome<T> {
    /// `Some` once the task has ended, until the handle takes it.
    result: Option<Result<T, JoinError>>,
    ended: bool,
    /// The task awaiting the handle.
    waiter: Option<Waker>,
}

/// What a task and its handle share.
pub(crate) struct JoinState<T> {
    outcome: Mutex<Outcome<T>>,
    aborted: AtomicBool,
    /// Wakes the task (so that an abort is seen); set when it is spawned.
    task: Mutex<Option<Waker>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> JoinState<T> {
    pub(crate) fn new() -> Arc<JoinState<T>> {
        Arc::new(JoinState {
            outcome: Mutex::new(Outcome {
                result: None,
                ended: false,
                waiter: None,
            }),
            aborted: AtomicBool::new(false),
            task: Mutex::new(None),
        })
    }

    /// Record the task's end (once) and wake whoever awaits the handle.
    pub(crate) fn finish(&self, r: Result<T, JoinError>) {
        let waiter = {
            let mut o = lock(&self.outcome);
            if o.ended {
                return;
            }
            o.ended = true;
            o.result = Some(r);
            o.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }

    pub(crate) fn set_task_waker(&self, w: Waker) {
        *lock(&self.task) = Some(w);
    }
}

/// Owns a spawned task's completion: await it for the task's value (or a
/// [`JoinError`]). Dropping the handle detaches the task, which runs on.
/// `Send` when the value is, so a task spawned onto another loop can be
/// awaited from here.
pub struct JoinHandle<T> {
    state: Arc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: Arc<JoinState<T>>) -> JoinHandle<T> {
        JoinHandle { state }
    }

    /// Cancel the task: it is dropped at its next scheduling point (at
    /// once if it is waiting), and the handle yields
    /// [`JoinError::Cancelled`] — unless it had already finished. Safe from
    /// any thread.
    pub fn abort(&self) {
        self.state.aborted.store(true, Ordering::Release);
        let w = lock(&self.state.task).clone();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Whether the task has ended (its value may still be waiting here).
    pub fn is_finished(&self) -> bool {
        lock(&self.state.outcome).ended
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut o = lock(&self.state.outcome);
        if let Some(r) = o.result.take() {
            return Poll::Ready(r);
        }
        assert!(!o.ended, "JoinHandle polled after it completed");
        match &o.waiter {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => o.waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A task as the executor holds it: the user's future and its handle's
/// state. A panic in the future ends the task with [`JoinError::Panic`];
/// an abort, or dropping the task unfinished (its loop shut down), ends it
/// with [`JoinError::Cancelled`].
pub(crate) struct Task<F: Future> {
    future: Pin<Box<F>>,
    state: Arc<JoinState<F::Output>>,
}

impl<F: Future> Task<F> {
    pub(crate) fn new(future: F, state: Arc<JoinState<F::Output>>) -> Task<F> {
        Task {
            future: Box::pin(future),
            state,
        }
    }
}

impl<F: Future> Future for Task<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.aborted.load(Ordering::Acquire) {
            self.state.finish(Err(JoinError::Cancelled));
            return Poll::Ready(());
        }
        let future = self.future.as_mut();
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => {
                self.state.finish(Ok(v));
                Poll::Ready(())
            }
            Err(payload) => {
                self.state.finish(Err(JoinError::Panic(payload)));
                Poll::Ready(())
            }
        }
    }
}

impl<F: Future> Drop for Task<F> {
    fn drop(&mut self) {
        // Does nothing if the task finished.
        self.state.finish(Err(JoinError::Cancelled));
    }
}
