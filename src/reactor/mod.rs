//! The reactor: one [`EventLoop`] per thread (wait -> dispatch -> timers ->
//! cross-thread tasks), reached from other threads only through a
//! [`LoopHandle`]; handlers see it through the narrow [`LoopCtx`].

mod ctx;
mod event_loop;
mod handle;
pub mod timer;

pub use ctx::LoopCtx;
pub use event_loop::{EventLoop, LoopConfig, Source, SourceId, TimerId, WatchId};
pub use handle::{LoopClosed, LoopHandle, LoopStats};

#[allow(dead_code)]
fn _assert_kinds() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LoopHandle>();
    send_sync::<SourceId>();
    // EventLoop is !Send: it holds Rc-based sources and must stay on its thread.
}
