//! The executor a loop carries once it has tasks: a [`Source`] on the loop
//! that polls the tasks woken since it last ran, and owns their timers.
//!
//! ```text
//!  waker.wake() (any thread) ──> Inbox.ready (mutex) ──first wake──> LoopHandle::notify
//!                                                                        │
//!  loop turn ──> Executor::notify / timer ──> Local::run: drain the inbox, poll each
//!                                                  task, then flush: arm and cancel
//!                                                  the timers the tasks asked for
//! ```
//!
//! Tasks and the futures they poll never hold the `EventLoop`: what they
//! need of it (a timer) they ask of [`Local`], reached through a
//! thread-local while the executor polls, and the executor does it with
//! the loop in hand right after the poll. `kicked` keeps the cost of a
//! wake to a push: only the first wake after the executor ran sends it a
//! notification; wakes while it runs are drained by the same run. Events
//! and completions for task sockets only wake (with `kicked` set) and ask
//! for one run after the turn's dispatch, so the tasks a turn woke are
//! polled in one batch and their I/O goes to the loop in one flush.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use slab::Slab;

use super::ready::{Registry, LINGER_TAG};
use super::task::{JoinHandle, JoinState, Task};
use crate::reactor::{EventLoop, LoopHandle, Source, SourceId, TimerId};

type BoxTask = Pin<Box<dyn Future<Output = ()>>>;

/// Task polls per executor run before the loop gets its turn back (the
/// rest run at once after, but I/O and timers are not starved meanwhile).
const RUN_BUDGET: usize = 1024;

/// The id `block_on`'s own future wakes with (it is not in the task slab).
pub(crate) const MAIN: u64 = u64::MAX;

fn pack(index: usize, gen: u32) -> u64 {
    (index as u64) | (u64::from(gen) << 32)
}

fn unpack(id: u64) -> (usize, u32) {
    ((id & 0xffff_ffff) as usize, (id >> 32) as u32)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where wakes land, from any thread.
pub(crate) struct Inbox {
    ready: Mutex<Vec<u64>>,
    /// A run of the executor is due or under way: a wake need only push.
    kicked: AtomicBool,
    handle: LoopHandle,
    source: SourceId,
}

impl Inbox {
    /// Queue task `id`; true if the executor must be told (the first wake
    /// since it last ran).
    fn push(&self, id: u64) -> bool {
        lock(&self.ready).push(id);
        !self.kicked.swap(true, Ordering::AcqRel)
    }

    fn wake(&self, id: u64) {
        if self.push(id) {
            // A stopped loop has dropped its tasks: nothing to wake.
            let _ = self.handle.notify(self.source);
        }
    }
}

/// A task's waker: its id and the inbox of its loop.
pub(crate) struct TaskWaker {
    inbox: Arc<Inbox>,
    id: u64,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.inbox.wake(self.id);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.inbox.wake(self.id);
    }
}

struct Slot {
    gen: u32,
    /// `None` while the task is being polled.
    task: Option<BoxTask>,
    waker: Waker,
}

/// A timer a future waits on (`Sleep`): armed on the loop's wheel by the
/// executor, fired back to it.
pub(crate) struct Sleeper {
    gen: u32,
    pub(crate) deadline: Instant,
    waker: Option<Waker>,
    /// On the wheel now.
    timer: Option<TimerId>,
}

enum TimerOp {
    Arm(u64),
    Cancel(TimerId),
}

/// One loop's executor state, shared (`Rc`) by the executor source, the
/// loop and the futures that need it.
pub(crate) struct Local {
    tasks: RefCell<Slab<Slot>>,
    sleepers: RefCell<Slab<Sleeper>>,
    ops: RefCell<Vec<TimerOp>>,
    next_gen: Cell<u32>,
    inbox: Arc<Inbox>,
    source: SourceId,
    main_woken: Cell<bool>,
    /// The sockets tasks wait on.
    pub(crate) ios: RefCell<Registry>,
    /// The inbox's other vector: runs swap them.
    spare: RefCell<Vec<u64>>,
    /// Counters for tests and stats.
    pub(crate) polls: Cell<u64>,
    pub(crate) timer_ops: Cell<u64>,
}

thread_local! {
    /// The executor whose task (or `block_on` future) is being polled.
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

/// Makes `local` current until dropped (restoring the one before).
pub(crate) struct Enter {
    prev: Option<Rc<Local>>,
}

pub(crate) fn enter(local: &Rc<Local>) -> Enter {
    let prev = CURRENT.with(|c| c.replace(Some(local.clone())));
    Enter { prev }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// The current executor (inside a task or `block_on`), if any.
pub(crate) fn current() -> Option<Rc<Local>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The executor of `el`, made (and added to the loop as a source) on first
/// use.
pub(crate) fn local_for(el: &mut EventLoop) -> Rc<Local> {
    if let Some(l) = el.executor() {
        return l;
    }
    let source = el.reserve_source();
    let local = Rc::new(Local {
        tasks: RefCell::new(Slab::new()),
        sleepers: RefCell::new(Slab::new()),
        ops: RefCell::new(Vec::new()),
        next_gen: Cell::new(1),
        inbox: Arc::new(Inbox {
            ready: Mutex::new(Vec::new()),
            kicked: AtomicBool::new(false),
            handle: el.handle(),
            source,
        }),
        source,
        main_woken: Cell::new(true),
        ios: RefCell::new(Registry::new(
            el.config().poller != crate::poller::PollerKind::SigIo,
            el.ring().is_some_and(|r| r.is_proactor()),
        )),
        spare: RefCell::new(Vec::new()),
        polls: Cell::new(0),
        timer_ops: Cell::new(0),
    });
    el.attach_source(
        source,
        Box::new(Executor {
            local: local.clone(),
        }),
    );
    el.set_executor(Some(local.clone()));
    local
}

impl Local {
    fn gen(&self) -> u32 {
        let g = self.next_gen.get();
        self.next_gen.set(g.wrapping_add(1).max(1));
        g
    }

    /// The waker `block_on` polls its future with.
    pub(crate) fn main_waker(&self) -> Waker {
        Waker::from(Arc::new(TaskWaker {
            inbox: self.inbox.clone(),
            id: MAIN,
        }))
    }

    /// Whether `block_on`'s future was woken since the last call.
    pub(crate) fn take_main_woken(&self) -> bool {
        self.main_woken.replace(false)
    }

    /// Add a task and schedule its first poll.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let state = JoinState::new();
        self.spawn_with(future, state.clone());
        JoinHandle::new(state)
    }

    /// Add a task from code holding the loop: its first poll is scheduled
    /// without a trip through the loop's task queue.
    pub(crate) fn spawn_in_loop<F>(
        &self,
        el: &mut EventLoop,
        future: F,
        state: Arc<JoinState<F::Output>>,
    ) where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = self.insert(future, state);
        if self.inbox.push(id) {
            el.notify(self.source);
        }
    }

    pub(crate) fn spawn_with<F>(&self, future: F, state: Arc<JoinState<F::Output>>)
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = self.insert(future, state);
        self.inbox.wake(id);
    }

    fn insert<F>(&self, future: F, state: Arc<JoinState<F::Output>>) -> u64
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let gen = self.gen();
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let id = pack(entry.key(), gen);
        let waker = Waker::from(Arc::new(TaskWaker {
            inbox: self.inbox.clone(),
            id,
        }));
        state.set_task_waker(waker.clone());
        entry.insert(Slot {
            gen,
            task: Some(Box::pin(Task::new(future, state))),
            waker,
        });
        id
    }

    /// Tasks alive on this loop.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.borrow().len()
    }

    fn poll_task(&self, id: u64) {
        let (index, gen) = unpack(id);
        let (mut task, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(index) {
                Some(s) if s.gen == gen => match s.task.take() {
                    Some(t) => (t, s.waker.clone()),
                    None => return,
                },
                _ => return,
            }
        };
        self.polls.set(self.polls.get() + 1);
        let done = task
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        if done {
            let removed = {
                let mut tasks = self.tasks.borrow_mut();
                tasks
                    .get(index)
                    .is_some_and(|s| s.gen == gen)
                    .then(|| tasks.remove(index))
            };
            // Dropped outside the borrow: a future's drop may spawn.
            drop(removed);
            drop(task);
        } else if let Some(s) = self.tasks.borrow_mut().get_mut(index) {
            if s.gen == gen {
                s.task = Some(task);
            }
        }
    }

    /// Poll what was woken, then do what the polls asked of the loop.
    pub(crate) fn run(self: &Rc<Self>, el: &mut EventLoop) {
        let _enter = enter(self);
        let mut budget = RUN_BUDGET;
        loop {
            self.inbox.kicked.store(true, Ordering::Release);
            // Swap the inbox with this run's spare vector (both keep their
            // allocations).
            let mut batch = self.spare.take();
            std::mem::swap(&mut batch, &mut *lock(&self.inbox.ready));
            if batch.is_empty() {
                self.spare.replace(batch);
                self.inbox.kicked.store(false, Ordering::Release);
                // A wake between the take and the store saw `kicked` set
                // and sent nothing: look once more.
                if lock(&self.inbox.ready).is_empty()
                    || self.inbox.kicked.swap(true, Ordering::AcqRel)
                {
                    break;
                }
                continue;
            }
            for (i, &id) in batch.iter().enumerate() {
                if budget == 0 {
                    // Out of budget: the rest waits for the next run, which
                    // comes after the loop has looked at its fds.
                    lock(&self.inbox.ready).extend_from_slice(&batch[i..]);
                    batch.clear();
                    self.spare.replace(batch);
                    el.notify(self.source);
                    self.flush(el);
                    return;
                }
                if id == MAIN {
                    self.main_woken.set(true);
                    continue;
                }
                budget -= 1;
                self.poll_task(id);
            }
            batch.clear();
            self.spare.replace(batch);
            self.flush(el);
        }
        self.flush(el);
    }

    /// Arm and cancel the timers, and watch and forget the sockets, asked
    /// for since the last flush.
    pub(crate) fn flush(&self, el: &mut EventLoop) {
        self.ios.borrow_mut().flush(el, self.source);
        if self.ops.borrow().is_empty() {
            return;
        }
        let ops = std::mem::take(&mut *self.ops.borrow_mut());
        for op in ops {
            self.timer_ops.set(self.timer_ops.get() + 1);
            match op {
                TimerOp::Cancel(id) => el.cancel(id),
                TimerOp::Arm(key) => {
                    let (index, gen) = unpack(key);
                    let mut sleepers = self.sleepers.borrow_mut();
                    let Some(s) = sleepers.get_mut(index).filter(|s| s.gen == gen) else {
                        continue;
                    };
                    if let Some(old) = s.timer.take() {
                        el.cancel(old);
                    }
                    s.timer = Some(el.timer_at(self.source, s.deadline, key));
                }
            }
        }
    }

    // ---- timers ---------------------------------------------------------

    /// A new sleeper for `deadline`, armed at the next flush.
    pub(crate) fn add_sleeper(&self, deadline: Instant, waker: Waker) -> u64 {
        let gen = self.gen();
        let index = self.sleepers.borrow_mut().insert(Sleeper {
            gen,
            deadline,
            waker: Some(waker),
            timer: None,
        });
        let key = pack(index, gen);
        self.ops.borrow_mut().push(TimerOp::Arm(key));
        key
    }

    /// Keep `waker` for sleeper `key`; with a new `deadline`, re-arm it.
    pub(crate) fn update_sleeper(&self, key: u64, deadline: Instant, waker: &Waker) {
        let (index, gen) = unpack(key);
        let mut sleepers = self.sleepers.borrow_mut();
        let Some(s) = sleepers.get_mut(index).filter(|s| s.gen == gen) else {
            return;
        };
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            s.waker = Some(waker.clone());
        }
        if s.deadline != deadline || s.timer.is_none() {
            s.deadline = deadline;
            self.ops.borrow_mut().push(TimerOp::Arm(key));
        }
    }

    /// Move sleeper `key` to `deadline`: re-armed at the next flush, or
    /// its waiter woken at once if the deadline has passed.
    pub(crate) fn reset_sleeper(&self, key: u64, deadline: Instant) {
        let (index, gen) = unpack(key);
        let waker = {
            let mut sleepers = self.sleepers.borrow_mut();
            let Some(s) = sleepers.get_mut(index).filter(|s| s.gen == gen) else {
                return;
            };
            if s.deadline == deadline && s.timer.is_some() {
                return;
            }
            s.deadline = deadline;
            if deadline <= Instant::now() {
                s.waker.clone()
            } else {
                self.ops.borrow_mut().push(TimerOp::Arm(key));
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Forget sleeper `key`, taking its timer off the wheel.
    pub(crate) fn remove_sleeper(&self, key: u64) {
        let (index, gen) = unpack(key);
        let mut sleepers = self.sleepers.borrow_mut();
        if sleepers.get(index).is_some_and(|s| s.gen == gen) {
            if let Some(id) = sleepers.remove(index).timer {
                self.ops.borrow_mut().push(TimerOp::Cancel(id));
            }
        }
    }

    /// The wheel fired sleeper `key`'s timer.
    fn fire(&self, key: u64) {
        let (index, gen) = unpack(key);
        let waker = {
            let mut sleepers = self.sleepers.borrow_mut();
            let Some(s) = sleepers.get_mut(index).filter(|s| s.gen == gen) else {
                return;
            };
            s.timer = None;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Timers the executor holds on the wheel.
    pub(crate) fn armed_timers(&self) -> usize {
        self.sleepers
            .borrow()
            .iter()
            .filter(|(_, s)| s.timer.is_some())
            .count()
    }

    /// The loop is going away: drop every task (their handles report
    /// `Cancelled`; their sockets are forgotten, then closed) and sleeper.
    fn shutdown(&self, el: &mut EventLoop) {
        let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        // Dropped outside the borrow: a task's drop may touch the executor.
        drop(tasks);
        self.flush(el);
        self.sleepers.borrow_mut().clear();
        self.ops.borrow_mut().clear();
        self.ios.borrow_mut().shutdown();
    }
}

/// The executor's face on the loop.
struct Executor {
    local: Rc<Local>,
}

impl Source for Executor {
    fn ready(&mut self, el: &mut EventLoop, sub: u64, event: crate::poller::Event) {
        self.local.inbox.kicked.store(true, Ordering::Release);
        self.local.ios.borrow_mut().event(el, sub, event);
        // One run after this turn's events and completions: the tasks they
        // woke are polled together and their I/O flushed at once.
        el.notify(self.local.source);
    }

    fn timer(&mut self, el: &mut EventLoop, tag: u64) {
        if tag & LINGER_TAG != 0 {
            self.local
                .ios
                .borrow_mut()
                .linger_expired(el, tag & !LINGER_TAG);
            return;
        }
        self.local.inbox.kicked.store(true, Ordering::Release);
        self.local.fire(tag);
        self.local.run(el);
    }

    fn complete(&mut self, el: &mut EventLoop, sub: u64, c: crate::ring::Completion) {
        self.local.inbox.kicked.store(true, Ordering::Release);
        self.local.ios.borrow_mut().complete(el, sub, c);
        el.notify(self.local.source);
    }

    fn notify(&mut self, el: &mut EventLoop) {
        self.local.run(el);
    }

    fn shutdown(&mut self, el: &mut EventLoop) {
        el.set_executor(None);
        self.local.shutdown(el);
    }
}

/// Poll `future` once with `local` current (for `block_on`).
pub(crate) fn poll_main<F: Future>(
    local: &Rc<Local>,
    future: Pin<&mut F>,
    waker: &Waker,
) -> Poll<F::Output> {
    let _enter = enter(local);
    future.poll(&mut Context::from_waker(waker))
}
