//! A group of loop threads, started together and stopped together
//! (muduo's `EventLoopThreadPool`).
//!
//! Each loop is built on its own thread (a driver may be thread-affine:
//! sigio routes its signals to the thread that registered the fd), by a
//! setup the caller supplies. The group waits until every loop is up or
//! its setup has failed; then either every loop runs and the group holds
//! their [`LoopHandle`]s, or none does: the loops already up are stopped,
//! every thread is joined, and the first failure comes back naming its
//! loop. Dropping the group stops and joins every loop, so no loop thread
//! outlives what started it.
//!
//! ```text
//!  start ──spawn──> setup(0) ──up──┐
//!        ──spawn──> setup(1) ──up──┤ all up:   handles, loops run
//!        ──spawn──> setup(2) ──X───┘ a failure: stop those up, join all,
//!                                               Err("loop evnet-loop-2 ...")
//! ```

use std::any::Any;
use std::io;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};

use super::{EventLoop, LoopHandle};

/// The prefix of loop thread names unless the builder gives another.
pub const DEFAULT_NAME: &str = "evnet-loop";

/// Loop threads started together; each loop's run gives a `T` (`()` for
/// a loop run for its side effects). Dropping the group stops every loop
/// and joins its thread. Every method is safe to call from any thread
/// except a loop of the group's own (joining it from there would wait on
/// itself).
pub struct LoopGroup<T = ()> {
    name: String,
    handles: Vec<LoopHandle>,
    threads: Vec<JoinHandle<io::Result<T>>>,
}

/// Configures and starts a [`LoopGroup`].
#[derive(Clone, Debug)]
pub struct LoopGroupBuilder {
    name: String,
}

/// Handed to a loop's body by [`LoopGroupBuilder::spawn`]: running the loop
/// through it is what tells the group the loop is up.
pub struct LoopStart {
    id: usize,
    up: mpsc::Sender<LoopHandle>,
}

impl LoopStart {
    /// The loop's index in its group (0-based, the `N` of its thread name).
    pub fn id(&self) -> usize {
        self.id
    }

    /// Give the group `el`'s handle, then run `el` until it stops
    /// ([`EventLoop::run`]). A stop the group asks for meanwhile is queued
    /// on the loop and honoured once it runs.
    pub fn run(self, el: &mut EventLoop) -> io::Result<()> {
        // The group is waiting on the other end; if it is gone, so is
        // everything that could stop this loop except the loop itself.
        let _ = self.up.send(el.handle());
        el.run()
    }
}

impl Default for LoopGroupBuilder {
    fn default() -> Self {
        LoopGroupBuilder {
            name: DEFAULT_NAME.to_string(),
        }
    }
}

impl LoopGroupBuilder {
    /// Threads are named `{prefix}-{N}` (default `evnet-loop-N`). Linux
    /// shows the first 15 bytes in `ps` and `top`.
    pub fn name(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// Start `n` loops, loop `N` built by `setup(N)` on its own thread.
    pub fn start<S>(self, n: usize, setup: S) -> io::Result<LoopGroup>
    where
        S: Fn(usize) -> io::Result<EventLoop> + Send + Sync + 'static,
    {
        let setup = Arc::new(setup);
        self.start_each((0..n).map(|_| {
            let setup = setup.clone();
            move |id| setup(id)
        }))
    }

    /// Start one loop per setup, in order: each gets its index and builds
    /// its loop on its own thread (a setup may own what only its loop
    /// uses, such as that loop's sockets).
    pub fn start_each<S>(self, setups: impl IntoIterator<Item = S>) -> io::Result<LoopGroup>
    where
        S: FnOnce(usize) -> io::Result<EventLoop> + Send + 'static,
    {
        self.spawn(setups.into_iter().map(|setup| {
            move |start: LoopStart| {
                let mut el = setup(start.id())?;
                start.run(&mut el)
            }
        }))
    }

    /// The general form: one thread per body. A body builds its loop, runs
    /// it with [`LoopStart::run`], and returns what the caller wants back
    /// from that loop (collected by [`LoopGroup::join`]). A body that
    /// returns or panics before `run` has failed to start.
    pub fn spawn<T, B>(self, bodies: impl IntoIterator<Item = B>) -> io::Result<LoopGroup<T>>
    where
        T: Send + 'static,
        B: FnOnce(LoopStart) -> io::Result<T> + Send + 'static,
    {
        let mut group = LoopGroup {
            name: self.name,
            handles: Vec::new(),
            threads: Vec::new(),
        };
        let mut ups = Vec::new();
        let mut failed: Option<io::Error> = None;
        for (id, body) in bodies.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            let start = LoopStart { id, up: tx };
            let spawned = thread::Builder::new()
                .name(group.thread_name(id))
                .spawn(move || body(start));
            match spawned {
                Ok(t) => {
                    group.threads.push(t);
                    ups.push(rx);
                }
                Err(e) => {
                    let e = io::Error::new(
                        e.kind(),
                        format!(
                            "loop {}: cannot spawn its thread: {e}",
                            group.thread_name(id)
                        ),
                    );
                    failed = Some(e);
                    break;
                }
            }
        }
        // Every thread started is waited for, up or not, so none is left
        // in its setup when the group gives up.
        let mut down = Vec::new();
        for (id, rx) in ups.iter().enumerate() {
            match rx.recv() {
                Ok(h) => group.handles.push(h),
                // The body dropped its LoopStart without running: it failed.
                Err(mpsc::RecvError) => down.push(id),
            }
        }
        if down.is_empty() && failed.is_none() {
            return Ok(group);
        }
        group.stop();
        let threads = std::mem::take(&mut group.threads);
        let mut first: Option<io::Error> = None;
        for (id, t) in threads.into_iter().enumerate() {
            let r = t.join();
            if first.is_none() && down.contains(&id) {
                let name = group.thread_name(id);
                first = Some(match r {
                    Ok(Err(e)) => {
                        io::Error::new(e.kind(), format!("loop {name} failed to start: {e}"))
                    }
                    Ok(Ok(_)) => io::Error::other(format!(
                        "loop {name} failed to start: its setup returned without running it"
                    )),
                    Err(panic) => io::Error::other(format!(
                        "loop {name} panicked while starting: {}",
                        panic_message(&*panic)
                    )),
                });
            }
        }
        // A spawn failure comes after every thread that did start.
        Err(first.or(failed).expect("a failure was recorded"))
    }
}

impl LoopGroup {
    /// A builder, to name the threads or run loops that return a value.
    pub fn builder() -> LoopGroupBuilder {
        LoopGroupBuilder::default()
    }

    /// Start `n` loops named `evnet-loop-N`; see [`LoopGroupBuilder::start`].
    pub fn start<S>(n: usize, setup: S) -> io::Result<LoopGroup>
    where
        S: Fn(usize) -> io::Result<EventLoop> + Send + Sync + 'static,
    {
        LoopGroup::builder().start(n, setup)
    }
}

impl<T> LoopGroup<T> {
    /// The loops' handles, in the order of their setups.
    pub fn handles(&self) -> &[LoopHandle] {
        &self.handles
    }

    /// The prefix of the threads' names.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn thread_name(&self, id: usize) -> String {
        format!("{}-{id}", self.name)
    }

    /// Ask every loop to stop (a loop that already stopped ignores it).
    /// Returns at once; [`LoopGroup::join`] waits.
    pub fn stop(&self) {
        for h in &self.handles {
            h.stop();
        }
    }

    /// Wait until every loop has stopped (by [`LoopGroup::stop`], or by
    /// itself) and return what each run gave, in order. Every thread is
    /// joined even when one failed; the first failure (an error or a
    /// panic) comes back naming its loop.
    pub fn join(mut self) -> io::Result<Vec<T>> {
        let threads = std::mem::take(&mut self.threads);
        let mut out = Vec::with_capacity(threads.len());
        let mut first = None;
        for (id, t) in threads.into_iter().enumerate() {
            let name = self.thread_name(id);
            match t.join() {
                Ok(Ok(v)) => out.push(v),
                Ok(Err(e)) => {
                    first.get_or_insert_with(|| {
                        io::Error::new(e.kind(), format!("loop {name}: {e}"))
                    });
                }
                Err(panic) => {
                    first.get_or_insert_with(|| {
                        io::Error::other(format!(
                            "loop {name} panicked: {}",
                            panic_message(&*panic)
                        ))
                    });
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl<T> Drop for LoopGroup<T> {
    fn drop(&mut self) {
        self.stop();
        for t in self.threads.drain(..) {
            // What a loop returned, or its panic, is dropped with the group:
            // `join` is the way to see it.
            let _ = t.join();
        }
    }
}

impl<T> std::fmt::Debug for LoopGroup<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopGroup")
            .field("name", &self.name)
            .field("loops", &self.handles.len())
            .finish()
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(not a string)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::LoopConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Counts the loops alive. Its drop is slow, so a group that returned
    /// before joining its threads is caught with the count still up.
    struct Alive(Arc<AtomicUsize>);

    impl Alive {
        fn new(count: &Arc<AtomicUsize>) -> Alive {
            count.fetch_add(1, Ordering::SeqCst);
            Alive(count.clone())
        }
    }

    impl Drop for Alive {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(50));
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A loop holding an `Alive` until the loop (and so its thread's body)
    /// ends.
    fn guarded_loop(id: usize, count: &Arc<AtomicUsize>) -> io::Result<EventLoop> {
        let mut el = EventLoop::new(LoopConfig {
            id,
            ..Default::default()
        })?;
        struct Holder(#[allow(dead_code)] Alive);
        impl crate::reactor::Source for Holder {
            fn ready(&mut self, _: &mut EventLoop, _: u64, _: crate::poller::Event) {}
        }
        el.add_source(Box::new(Holder(Alive::new(count))));
        Ok(el)
    }

    /// Threads of this process whose name starts with `prefix`, waiting up
    /// to a second for the kernel to release exited ones.
    fn threads_named(prefix: &str, want: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let n = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|comm| comm.starts_with(prefix))
                .count();
            if n == want || Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_failed_setup_stops_and_joins_the_loops_already_started() {
        let alive = Arc::new(AtomicUsize::new(0));
        let a = alive.clone();
        let err = LoopGroup::builder()
            .name("tgrp-fail")
            .start(4, move |id| {
                if id == 2 {
                    // Let the others come up first, so there is something to stop.
                    std::thread::sleep(Duration::from_millis(20));
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, "no room"));
                }
                guarded_loop(id, &a)
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("loop tgrp-fail-2 "), "{err}");
        assert!(err.to_string().contains("no room"), "{err}");
        assert_eq!(alive.load(Ordering::SeqCst), 0, "a loop still runs");
        assert_eq!(threads_named("tgrp-fail-", 0), 0, "a loop thread is left");
    }

    #[test]
    fn a_panicking_setup_is_a_named_error_too() {
        let alive = Arc::new(AtomicUsize::new(0));
        let a = alive.clone();
        let err = LoopGroup::builder()
            .name("tgrp-panic")
            .start(3, move |id| {
                if id == 1 {
                    panic!("setup exploded");
                }
                guarded_loop(id, &a)
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("loop tgrp-panic-1 panicked"),
            "{err}"
        );
        assert!(err.to_string().contains("setup exploded"), "{err}");
        assert_eq!(alive.load(Ordering::SeqCst), 0, "a loop still runs");
    }

    #[test]
    fn dropping_a_running_group_stops_and_joins_every_loop() {
        let alive = Arc::new(AtomicUsize::new(0));
        let a = alive.clone();
        let group = LoopGroup::builder()
            .name("tgrp-drop")
            .start(3, move |id| guarded_loop(id, &a))
            .unwrap();
        assert_eq!(group.handles().len(), 3);
        assert_eq!(alive.load(Ordering::SeqCst), 3);
        assert_eq!(threads_named("tgrp-drop-", 3), 3);
        for (i, h) in group.handles().iter().enumerate() {
            assert_eq!(h.id(), i);
        }
        drop(group);
        assert_eq!(alive.load(Ordering::SeqCst), 0, "a loop still runs");
        assert_eq!(threads_named("tgrp-drop-", 0), 0, "a loop thread is left");
    }

    #[test]
    fn setups_run_on_their_loops_threads() {
        let group = LoopGroup::builder()
            .name("tgrp-thread")
            .start(2, |id| {
                let name = std::thread::current().name().map(str::to_string);
                assert_eq!(name.as_deref(), Some(&*format!("tgrp-thread-{id}")));
                EventLoop::new(LoopConfig::default())
            })
            .unwrap();
        for h in group.handles() {
            let (tx, rx) = mpsc::channel();
            h.post(move |_| tx.send(std::thread::current().id()).unwrap())
                .unwrap();
            let loop_thread = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_ne!(loop_thread, std::thread::current().id());
        }
    }

    #[test]
    fn join_returns_each_loops_value_in_order() {
        let group = LoopGroup::builder()
            .name("tgrp-value")
            .spawn((0..3).map(|i| {
                move |start: LoopStart| {
                    let mut el = EventLoop::new(LoopConfig::default())?;
                    start.run(&mut el)?;
                    Ok(i * 10)
                }
            }))
            .unwrap();
        group.stop();
        assert_eq!(group.join().unwrap(), vec![0, 10, 20]);
    }

    #[test]
    fn join_names_the_loop_that_failed_or_panicked() {
        let group = LoopGroup::builder()
            .name("tgrp-join")
            .start(3, |_| EventLoop::new(LoopConfig::default()))
            .unwrap();
        group.handles()[1]
            .post(|_| panic!("boom in a task"))
            .unwrap();
        group.stop();
        let err = group.join().unwrap_err();
        assert!(
            err.to_string().contains("loop tgrp-join-1 panicked"),
            "{err}"
        );
        assert!(err.to_string().contains("boom in a task"), "{err}");

        let group = LoopGroup::builder()
            .name("tgrp-err")
            .spawn((0..2).map(|i| {
                move |start: LoopStart| -> io::Result<()> {
                    let mut el = EventLoop::new(LoopConfig::default())?;
                    start.run(&mut el)?;
                    match i {
                        1 => Err(io::Error::new(io::ErrorKind::BrokenPipe, "after the run")),
                        _ => Ok(()),
                    }
                }
            }))
            .unwrap();
        group.stop();
        let err = group.join().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(
            err.to_string().contains("loop tgrp-err-1: after the run"),
            "{err}"
        );
    }

    #[test]
    fn a_body_that_returns_without_running_has_failed_to_start() {
        let err = LoopGroup::builder()
            .name("tgrp-noop")
            .spawn([|_start: LoopStart| Ok(())])
            .unwrap_err();
        assert!(
            err.to_string().contains("loop tgrp-noop-0 failed to start"),
            "{err}"
        );
    }
}
