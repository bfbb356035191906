//! The reactor: one [`EventLoop`] per thread (wait -> dispatch -> timers ->
//! cross-thread tasks), reached from other threads only through a
//! [`LoopHandle`]; handlers see it through the narrow [`LoopCtx`]. A
//! [`LoopGroup`] starts a set of loop threads, each loop built on its own
//! thread, and stops and joins them all on drop or on a failed start.
//!
//! A loop waits on its driver: a readiness [`Poller`](crate::poller::Poller)
//! (epoll, io_uring polls, poll, select, busy-poll, sigio), or the io_uring
//! engine as a proactor ([`crate::ring`]), whose connections move their
//! bytes through completions. What the driver can do is its
//! [`Caps`](crate::poller::Caps), from [`EventLoop::caps`]: servers and
//! connections decide by those, never by a backend's name, and reach the
//! ring through [`EventLoop::ring`] (`Some` only on a completion driver).

mod ctx;
mod driver;
mod event_loop;
mod group;
mod handle;
pub(crate) mod key;
pub mod stats;
pub mod timer;

pub use ctx::LoopCtx;
pub use event_loop::{EventLoop, LoopConfig, Source, SourceId, TimerId, WatchId};
pub use group::{LoopGroup, LoopGroupBuilder, LoopStart};
pub use handle::{LoopClosed, LoopHandle, LoopStats};

#[allow(dead_code)]
fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LoopHandle>();
    send_sync::<SourceId>();
    send_sync::<LoopGroup>();
    // EventLoop is !Send: it holds Rc-based sources and must stay on its thread.
}
