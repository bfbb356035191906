//! The event loop. One per thread; `!Send`.
//!
//! A turn: wait (timeout = nearest timer, or 0 if work is pending) ->
//! dispatch each ready fd to its source -> completions (a completion driver) ->
//! re-dispatch fds that used up their read budget (edge-triggered) -> due
//! timers -> tasks other threads posted. Between stages, sources that were
//! notified ([`EventLoop::notify`]) get their [`Source::notify`] and
//! closures queued with [`EventLoop::later`] run.
//!
//! Two registries, both slabs whose keys carry a generation:
//!
//! ```text
//!  poller event (Token) --> fd registry [slot | gen] --> (SourceId, sub)
//!                                                            |
//!  timer_for(id, tag) / notify(id) ----------------> source registry [slot | gen]
//!                                                            |
//!                                      Source::ready(el, sub, event) / timer / notify
//! ```
//!
//! A [`Token`] packs an fd slot (low 32 bits) with its generation (high 32
//! bits); a [`SourceId`] does the same for a source. A source owns any number
//! of fds (a server's per-loop table owns its connections and listeners) and
//! tells them apart by the `sub` value it registered each with. An event,
//! timer or task whose generation no longer matches (the fd or source is
//! gone and the slot reused) is dropped, never delivered to the newcomer.
//!
//! A source is taken out of its slot while one of its methods runs, so it
//! may freely use the loop; what it asks of *itself* meanwhile (a
//! notification) is deferred until it is back, so nothing re-enters it.

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slab::Slab;

use super::driver::Driver;
use super::handle::{LoopHandle, Shared, Task};
use super::key::{pack, unpack, Generations};
use super::timer::{TimerKey, TimerWheel};
use crate::poller::{Caps, Event, Interest, PollerKind, Token, Trigger, Waker};
use crate::ring::{Completion, Uring};

/// Something living on a loop: a server's per-loop table of connections,
/// a listener, a watched fd. It gets the events of the fds it registered
/// (with [`EventLoop::register`]), the timers it set for itself
/// ([`EventLoop::timer_for`]) and the notifications sent to it.
///
/// Every method runs on the loop's thread with the source detached from the
/// registry, so it may use `el` freely.
pub trait Source: 'static {
    /// Readiness of the fd this source registered with `sub`.
    fn ready(&mut self, el: &mut EventLoop, sub: u64, event: Event);

    /// An operation started on the loop's io_uring for the fd registered
    /// with `sub` finished (completion drivers only). What the completion
    /// holds must be used or given back: the default gives it back.
    fn complete(&mut self, el: &mut EventLoop, _sub: u64, c: Completion) {
        el.release(c);
    }

    /// A timer set with [`EventLoop::timer_for`] fired.
    fn timer(&mut self, _el: &mut EventLoop, _tag: u64) {}

    /// Someone called [`EventLoop::notify`] (or [`LoopHandle::notify`]) for
    /// this source: look at whatever mailbox it keeps.
    fn notify(&mut self, _el: &mut EventLoop) {}

    /// The loop shuts down with this source still registered.
    fn shutdown(&mut self, _el: &mut EventLoop) {}

    /// Graceful shutdown has begun: a listener stops accepting, a
    /// connection finishes what is in flight and closes.
    fn drain(&mut self, _el: &mut EventLoop) {}
}

/// Loop settings.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// The driver: a readiness backend or the io_uring proactor.
    pub poller: PollerKind,
    /// Level or edge triggering, where the poller offers both.
    pub trigger: Trigger,
    /// Timer resolution.
    pub tick: Duration,
    /// Size of the read buffer a server's connections on this loop share.
    pub read_buffer: usize,
    /// Reads a connection may do per turn before yielding to the others.
    pub read_budget: usize,
    /// The loop's number (logs, thread names, [`LoopHandle::id`]).
    pub id: usize,
    /// The io_uring proactor's ring defers its completion work to the
    /// loop's waits (`IORING_SETUP_DEFER_TASKRUN`, Linux 6.1+): completions
    /// are posted in one batch when the loop asks, never by interrupting
    /// it (3-7% less CPU per message measured on the async echo). Off, the
    /// kernel posts them whenever the loop's thread returns to user space.
    pub defer_completions: bool,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            poller: PollerKind::Epoll,
            trigger: Trigger::Level,
            tick: Duration::from_millis(1),
            read_buffer: 64 * 1024,
            read_budget: 16,
            id: 0,
            defer_completions: true,
        }
    }
}

/// A registered fd.
struct FdSlot {
    gen: u32,
    fd: RawFd,
    /// What the poller watches now; `None` while parked (registered here
    /// but not in the poller: a connection with reads paused and nothing to
    /// write under level triggering, or one whose I/O completes on the ring).
    interest: Option<Interest>,
    owner: SourceId,
    sub: u64,
}

/// A registered source.
struct SourceSlot {
    gen: u32,
    /// `None` while one of its methods runs.
    source: Option<Box<dyn Source>>,
}

/// Names a source on its loop (slot and generation). `Copy` and `Send`: it
/// is only an address; a stale one finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(u64);

const WAKER: Token = Token(u64::MAX);

/// Identifies a timer for [`EventLoop::cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerId {
    /// A one-shot timer.
    Once(TimerKey),
    /// A periodic timer (index and generation).
    Every(usize, u32),
}

/// A watched fd, returned by [`EventLoop::watch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchId(pub SourceId);

enum TimerEntry {
    Once(Box<dyn FnOnce(&mut EventLoop)>),
    Every(usize, u32),
    Source(SourceId, u64),
}

type PeriodicFn = Box<dyn FnMut(&mut EventLoop)>;

struct Periodic {
    gen: u32,
    every: Duration,
    /// `None` while running.
    f: Option<PeriodicFn>,
}

type LocalTask = Box<dyn FnOnce(&mut EventLoop)>;

/// A reactor: one per thread, owned by it (`!Send`). Other threads reach it
/// through its [`LoopHandle`].
pub struct EventLoop {
    driver: Driver,
    events: Vec<Event>,
    fds: Slab<FdSlot>,
    sources: Slab<SourceSlot>,
    gens: Generations,
    shared: Arc<Shared>,
    timers: TimerWheel<TimerEntry>,
    periodic: Slab<Periodic>,
    expired: Vec<TimerEntry>,
    /// Fds that stopped reading with data left (edge-triggered budget):
    /// dispatched again next turn, and the wait does not block meanwhile.
    pending: Vec<(Token, Event)>,
    /// Sources notified and not yet told (see [`EventLoop::notify`]).
    notified: Vec<SourceId>,
    /// Closures queued with [`EventLoop::later`].
    later: Vec<LocalTask>,
    running: bool,
    completions: Vec<Completion>,
    now: Instant,
    config: LoopConfig,
    /// The task executor, once the loop has tasks ([`crate::rt`]).
    executor: Option<Rc<crate::rt::Local>>,
    _not_send: PhantomData<*const ()>,
}

impl EventLoop {
    /// A loop for `config`, with its poller and waker. Build it on the
    /// thread that will run it (sigio routes signals to the building thread).
    pub fn new(config: LoopConfig) -> io::Result<EventLoop> {
        let mut driver = Driver::new(config.poller, config.trigger, config.defer_completions)?;
        let waker = Waker::new()?;
        driver.register(waker.fd(), WAKER, Interest::READABLE)?;
        let now = Instant::now();
        let shared = Arc::new(Shared {
            id: config.id,
            tasks: Mutex::new(Vec::new()),
            waker,
            stopped: Default::default(),
            thread: Mutex::new(Some(std::thread::current().id())),
            stats: Default::default(),
        });
        Ok(EventLoop {
            driver,
            completions: Vec::new(),
            events: Vec::with_capacity(256),
            fds: Slab::new(),
            sources: Slab::new(),
            gens: Generations::new(),
            shared,
            timers: TimerWheel::new(config.tick, now),
            periodic: Slab::new(),
            expired: Vec::new(),
            pending: Vec::new(),
            notified: Vec::new(),
            later: Vec::new(),
            running: false,
            now,
            config,
            executor: None,
            _not_send: PhantomData,
        })
    }

    /// A handle other threads can use to post tasks to this loop.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: self.shared.clone(),
        }
    }

    /// This loop's live counters (also readable through its handle).
    pub fn stats(&self) -> &super::LoopStats {
        &self.shared.stats
    }

    /// The trigger mode readiness events come in (sigio gives edge
    /// whatever the config asked).
    pub fn trigger(&self) -> Trigger {
        self.driver.trigger()
    }

    /// What this loop's driver can do: ask this, never the driver's name.
    pub fn caps(&self) -> Caps {
        self.driver.caps()
    }

    /// The driver's name, for logs and benchmark tables.
    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    /// The settings the loop was built with.
    pub fn config(&self) -> &LoopConfig {
        &self.config
    }

    /// The time at the start of this turn (cheap; refreshed once per wait).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The loop's number.
    pub fn id(&self) -> usize {
        self.config.id
    }

    fn assert_in_loop(&self) {
        debug_assert!(
            *self.shared.thread.lock().unwrap() == Some(std::thread::current().id()),
            "EventLoop used off its thread"
        );
    }

    // ---- sources --------------------------------------------------------

    /// Add a source; returns its id.
    pub fn add_source(&mut self, source: Box<dyn Source>) -> SourceId {
        let id = self.reserve_source();
        self.attach_source(id, source);
        id
    }

    /// An id for a source that needs to know it before it exists (to
    /// register its fds with it). Call [`EventLoop::attach_source`] next.
    pub fn reserve_source(&mut self) -> SourceId {
        let gen = self.gens.next();
        let index = self.sources.insert(SourceSlot { gen, source: None });
        SourceId(pack(index, gen))
    }

    /// Give a reserved id its source.
    pub fn attach_source(&mut self, id: SourceId, source: Box<dyn Source>) {
        let (index, gen) = unpack(id.0);
        if let Some(slot) = self.sources.get_mut(index).filter(|s| s.gen == gen) {
            slot.source = Some(source);
        }
    }

    /// Forget a source (returned unless it is the one running, which its
    /// caller then drops). Its fds must be deregistered by their owner.
    pub fn remove_source(&mut self, id: SourceId) -> Option<Box<dyn Source>> {
        let (index, gen) = unpack(id.0);
        match self.sources.get(index) {
            Some(s) if s.gen == gen => self.sources.remove(index).source,
            _ => None,
        }
    }

    /// Whether `id` still names a source.
    pub fn has_source(&self, id: SourceId) -> bool {
        let (index, gen) = unpack(id.0);
        self.sources.get(index).is_some_and(|s| s.gen == gen)
    }

    /// Run `f` with the source behind `id` (detached while `f` runs), then
    /// tell it of notifications it received meanwhile. `None` if `id` is
    /// stale or the source is the one already running.
    pub fn with_source<R>(
        &mut self,
        id: SourceId,
        f: impl FnOnce(&mut dyn Source, &mut EventLoop) -> R,
    ) -> Option<R> {
        let (index, gen) = unpack(id.0);
        let mut source = self
            .sources
            .get_mut(index)
            .filter(|s| s.gen == gen)?
            .source
            .take()?;
        let r = f(&mut *source, self);
        // The source may have removed itself (and the slot been reused).
        if let Some(slot) = self.sources.get_mut(index).filter(|s| s.gen == gen) {
            slot.source = Some(source);
        }
        Some(r)
    }

    /// Ask for `id`'s [`Source::notify`]: it runs after the current
    /// dispatch, never inside it (a source notifying itself is not
    /// re-entered). Several notifications before then may be told once.
    pub fn notify(&mut self, id: SourceId) {
        if !self.notified.contains(&id) {
            self.notified.push(id);
        }
    }

    /// Run `f` on this loop after the current dispatch (before timers and
    /// the next wait): how code running inside a source's callback asks for
    /// something that must not re-enter it.
    pub fn later(&mut self, f: impl FnOnce(&mut EventLoop) + 'static) {
        self.later.push(Box::new(f));
    }

    /// Tell notified sources and run `later` closures until none are left
    /// (bounded: what they queue in turn waits for the next round).
    fn settle_deferred(&mut self) {
        for _ in 0..64 {
            if self.notified.is_empty() && self.later.is_empty() {
                return;
            }
            let notified = std::mem::take(&mut self.notified);
            for id in notified {
                self.with_source(id, |s, el| s.notify(el));
            }
            let later = std::mem::take(&mut self.later);
            for f in later {
                f(self);
            }
        }
    }

    // ---- fds ------------------------------------------------------------

    /// Watch `fd` for `interest` (`None`: registered but parked) on behalf of
    /// source `owner`, which gets its events with `sub`. On failure nothing
    /// stays registered.
    pub fn register(
        &mut self,
        fd: RawFd,
        interest: Option<Interest>,
        owner: SourceId,
        sub: u64,
    ) -> io::Result<Token> {
        let gen = self.gens.next();
        let entry = self.fds.vacant_entry();
        if entry.key() > u32::MAX as usize {
            return Err(io::Error::other("too many fds on one loop"));
        }
        let token = Token(pack(entry.key(), gen));
        if let Some(interest) = interest {
            self.driver.register(fd, token, interest)?;
        }
        entry.insert(FdSlot {
            gen,
            fd,
            interest,
            owner,
            sub,
        });
        Ok(token)
    }

    fn fd_slot(&self, token: Token) -> Option<&FdSlot> {
        let (index, gen) = unpack(token.0);
        self.fds.get(index).filter(|s| s.gen == gen)
    }

    /// Whether `token` still names a registered fd.
    pub fn contains(&self, token: Token) -> bool {
        self.fd_slot(token).is_some()
    }

    /// The ring connections submit their recv and send to: `Some` exactly
    /// when the driver works by completions ([`Caps::completion`], the
    /// proactor), `None` on readiness drivers.
    pub fn ring(&mut self) -> Option<&mut Uring> {
        self.driver.ring()
    }

    /// Give back what a completion holds (a recv buffer to the ring) when
    /// nobody will use it.
    pub fn release(&mut self, c: Completion) {
        if let Some(ring) = self.driver.ring() {
            ring.release(c);
        }
    }

    /// Change what a registered fd is watched for; `None` parks it (out of
    /// the driver, still in the registry). No syscall when nothing changes.
    pub fn set_interest(&mut self, token: Token, interest: Option<Interest>) -> io::Result<()> {
        let (index, gen) = unpack(token.0);
        let slot = match self.fds.get_mut(index) {
            Some(s) if s.gen == gen => s,
            _ => return Err(stale()),
        };
        if slot.interest == interest {
            return Ok(());
        }
        let r = match (slot.interest, interest) {
            (Some(_), Some(i)) => self.driver.reregister(slot.fd, token, i),
            (None, Some(i)) => self.driver.register(slot.fd, token, i),
            (Some(_), None) => self.driver.deregister(slot.fd),
            (None, None) => Ok(()),
        };
        if r.is_ok() {
            slot.interest = interest;
        }
        r
    }

    /// What `token` is watched for now (`None` if parked or stale).
    pub fn interest(&self, token: Token) -> Option<Interest> {
        self.fd_slot(token).and_then(|s| s.interest)
    }

    /// What the fd `fd` is watched for (tests find a listener by its fd).
    #[cfg(test)]
    pub(crate) fn interest_of_fd(&self, fd: RawFd) -> Option<Interest> {
        self.fds
            .iter()
            .find(|(_, s)| s.fd == fd)
            .and_then(|(_, s)| s.interest)
    }

    /// Stop watching the fd behind `token` and forget it.
    pub fn deregister(&mut self, token: Token) -> io::Result<()> {
        let (index, gen) = unpack(token.0);
        match self.fds.get(index) {
            Some(s) if s.gen == gen => {
                let slot = self.fds.remove(index);
                if slot.interest.is_some() {
                    self.driver.deregister(slot.fd)?;
                }
                Ok(())
            }
            _ => Err(stale()),
        }
    }

    /// [`deregister`](Self::deregister) an fd the caller closes right after
    /// this call, holding its only reference (no dup elsewhere): where the
    /// driver drops a closed fd by itself ([`Caps::close_deregisters`]) the
    /// deregistering syscall is skipped, and only the token is forgotten.
    pub fn deregister_closing(&mut self, token: Token) -> io::Result<()> {
        if !self.caps().close_deregisters {
            return self.deregister(token);
        }
        let (index, gen) = unpack(token.0);
        match self.fds.get(index) {
            Some(s) if s.gen == gen => {
                self.fds.remove(index);
                Ok(())
            }
            _ => Err(stale()),
        }
    }

    /// Watch any pollable fd (pipe, eventfd, timerfd, signalfd, inotify...)
    /// with a callback. The caller keeps the fd open until [`EventLoop::unwatch`].
    pub fn watch(
        &mut self,
        fd: RawFd,
        interest: Interest,
        callback: impl FnMut(&mut EventLoop, Event) + 'static,
    ) -> io::Result<WatchId> {
        struct Watch<F> {
            token: Token,
            f: F,
        }
        impl<F: FnMut(&mut EventLoop, Event) + 'static> Source for Watch<F> {
            fn ready(&mut self, el: &mut EventLoop, _sub: u64, event: Event) {
                (self.f)(el, event)
            }
            fn shutdown(&mut self, el: &mut EventLoop) {
                let _ = el.deregister(self.token);
            }
        }
        let id = self.reserve_source();
        match self.register(fd, Some(interest), id, 0) {
            Ok(token) => {
                self.attach_source(id, Box::new(Watch { token, f: callback }));
                Ok(WatchId(id))
            }
            Err(e) => {
                self.remove_source(id);
                Err(e)
            }
        }
    }

    /// Stop watching (the fd stays open: it is the caller's).
    pub fn unwatch(&mut self, id: WatchId) -> io::Result<()> {
        let mut source = match self.remove_source(id.0) {
            Some(s) => s,
            None => return Err(stale()),
        };
        source.shutdown(self);
        Ok(())
    }

    /// Queue a dispatch of `token` for the next turn (an fd that stopped
    /// reading before EAGAIN in edge-triggered mode).
    pub fn defer(&mut self, token: Token, event: Event) {
        self.pending.push((token, event));
    }

    // ---- timers ---------------------------------------------------------

    /// Run `f` once after `delay` (rounded up to the timer tick).
    pub fn run_after(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut EventLoop) + 'static,
    ) -> TimerId {
        let deadline = Instant::now() + delay;
        TimerId::Once(self.timers.insert(deadline, TimerEntry::Once(Box::new(f))))
    }

    /// Call source `id`'s [`Source::timer`] with `tag` at `deadline` (rounded
    /// up to the timer tick; never early).
    pub fn timer_at(&mut self, id: SourceId, deadline: Instant, tag: u64) -> TimerId {
        TimerId::Once(self.timers.insert(deadline, TimerEntry::Source(id, tag)))
    }

    /// Call source `id`'s [`Source::timer`] with `tag` after `delay`: how a
    /// source keeps its own typed timers (it maps `tag` to what is due).
    pub fn timer_for(&mut self, id: SourceId, delay: Duration, tag: u64) -> TimerId {
        let deadline = Instant::now() + delay;
        TimerId::Once(self.timers.insert(deadline, TimerEntry::Source(id, tag)))
    }

    /// Run `f` every `every` until cancelled; the first run is after `every`.
    pub fn run_every(
        &mut self,
        every: Duration,
        f: impl FnMut(&mut EventLoop) + 'static,
    ) -> TimerId {
        let every = every.max(self.config.tick);
        let gen = self.gens.next();
        let idx = self.periodic.insert(Periodic {
            gen,
            every,
            f: Some(Box::new(f)),
        });
        self.timers
            .insert(Instant::now() + every, TimerEntry::Every(idx, gen));
        TimerId::Every(idx, gen)
    }

    /// Cancel a timer; cancelling one that already fired does nothing.
    pub fn cancel(&mut self, id: TimerId) {
        match id {
            TimerId::Once(key) => {
                self.timers.cancel(key);
            }
            TimerId::Every(idx, gen) => {
                if self.periodic.get(idx).is_some_and(|p| p.gen == gen) {
                    self.periodic.remove(idx);
                }
            }
        }
    }

    /// Timers pending.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    fn run_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.timers.poll_expired(Instant::now(), &mut expired);
        for entry in expired.drain(..) {
            match entry {
                TimerEntry::Once(f) => f(self),
                TimerEntry::Source(id, tag) => {
                    self.with_source(id, |s, el| s.timer(el, tag));
                }
                TimerEntry::Every(idx, gen) => {
                    let Some(mut f) = self
                        .periodic
                        .get_mut(idx)
                        .filter(|p| p.gen == gen)
                        .and_then(|p| p.f.take())
                    else {
                        continue;
                    };
                    f(self);
                    if let Some(p) = self.periodic.get_mut(idx).filter(|p| p.gen == gen) {
                        p.f = Some(f);
                        let every = p.every;
                        self.timers
                            .insert(self.now + every, TimerEntry::Every(idx, gen));
                    }
                }
            }
            self.settle_deferred();
        }
        self.expired = expired;
    }

    // ---- running --------------------------------------------------------

    /// Leave `run` after the current turn.
    pub fn stop(&mut self) {
        self.running = false;
    }

    /// Run until [`EventLoop::stop`] (or [`LoopHandle::stop`]); then every
    /// registered source gets [`Source::shutdown`] and is dropped.
    pub fn run(&mut self) -> io::Result<()> {
        self.assert_in_loop();
        self.running = true;
        while self.running {
            self.turn(None)?;
        }
        self.teardown();
        Ok(())
    }

    /// One turn, waiting at most `max_wait` (tests and embedding).
    pub fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let timeout =
            if !self.pending.is_empty() || !self.later.is_empty() || !self.notified.is_empty() {
                Some(Duration::ZERO)
            } else {
                let next = self
                    .timers
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()));
                match (next, max_wait) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
        let mut events = std::mem::take(&mut self.events);
        let r = self.driver.wait(&mut events, timeout);
        self.now = Instant::now();
        if let Err(e) = r {
            self.events = events;
            return Err(e);
        }
        let mut woken = false;
        for ev in events.iter() {
            if ev.token == WAKER {
                woken = true;
            } else {
                self.dispatch(ev.token, *ev);
            }
        }
        self.events = events;
        self.dispatch_completions();
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            for (token, ev) in pending {
                self.dispatch(token, ev);
            }
        }
        self.settle_deferred();
        self.run_timers();
        if woken {
            self.run_tasks();
        }
        self.settle_deferred();
        Ok(())
    }

    fn dispatch(&mut self, token: Token, ev: Event) {
        let Some(slot) = self.fd_slot(token) else {
            return;
        };
        let (owner, sub) = (slot.owner, slot.sub);
        self.with_source(owner, |source, el| source.ready(el, sub, ev));
    }

    /// Hand each finished operation to its source (a readiness driver has
    /// none).
    fn dispatch_completions(&mut self) {
        let mut done = std::mem::take(&mut self.completions);
        self.driver.take_completions(&mut done);
        for c in done.drain(..) {
            let mut c = Some(c);
            if let Some((owner, sub)) = c
                .as_ref()
                .and_then(|c| self.fd_slot(c.token))
                .map(|s| (s.owner, s.sub))
            {
                self.with_source(owner, |source, el| {
                    if let Some(c) = c.take() {
                        source.complete(el, sub, c);
                    }
                });
            }
            if let Some(c) = c {
                // Its fd or source is gone: give back the buffer it holds.
                self.release(c);
            }
        }
        self.completions = done;
    }

    fn run_tasks(&mut self) {
        let _ = self.shared.waker.reset();
        let tasks: Vec<Task> =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task(self);
        }
    }

    fn source_ids(&self) -> Vec<SourceId> {
        self.sources
            .iter()
            .map(|(i, s)| SourceId(pack(i, s.gen)))
            .collect()
    }

    /// Begin a graceful shutdown: every source is asked to drain (listeners
    /// close, connections flush and close), and the loop stops once no
    /// connection is left open or `deadline` has passed, whichever is first.
    pub fn drain(&mut self, deadline: Duration) {
        for id in self.source_ids() {
            self.with_source(id, |source, el| source.drain(el));
        }
        self.run_after(deadline, |el| el.stop());
        let check = |el: &mut EventLoop| {
            if el.stats().connections_open.load(Ordering::Relaxed) == 0 {
                el.stop();
            }
        };
        check(self);
        self.run_every(Duration::from_millis(5), check);
    }

    /// The task executor, if the loop has one.
    pub(crate) fn executor(&self) -> Option<Rc<crate::rt::Local>> {
        self.executor.clone()
    }

    pub(crate) fn set_executor(&mut self, e: Option<Rc<crate::rt::Local>>) {
        self.executor = e;
    }

    /// Shut down every source, as `run` does when it returns (for a loop
    /// driven turn by turn).
    pub(crate) fn shut_down(&mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        // Run what was posted before the stop so no handle waits on it forever.
        self.run_tasks();
        self.settle_deferred();
        for id in self.source_ids() {
            self.with_source(id, |source, el| source.shutdown(el));
            drop(self.remove_source(id));
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
    }
}

fn stale() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "stale token: the source is gone")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use std::cell::RefCell;
    use std::os::fd::AsRawFd;
    use std::rc::Rc;

    fn each_config() -> Vec<LoopConfig> {
        let mut v = Vec::new();
        for (poller, trigger) in [
            (PollerKind::Epoll, Trigger::Level),
            (PollerKind::Epoll, Trigger::Edge),
            (PollerKind::Uring, Trigger::Level),
            (PollerKind::Uring, Trigger::Edge),
            (PollerKind::Poll, Trigger::Level),
            (PollerKind::Select, Trigger::Level),
        ] {
            v.push(LoopConfig {
                poller,
                trigger,
                ..Default::default()
            });
        }
        v
    }

    #[test]
    fn watches_a_pipe_and_unwatches() {
        for cfg in each_config() {
            let mut el = EventLoop::new(cfg).unwrap();
            let (r, w) = sys::pipe().unwrap();
            let got = Rc::new(RefCell::new(Vec::new()));
            let g = got.clone();
            let rfd = r.as_raw_fd();
            let id = el
                .watch(rfd, Interest::READABLE, move |_, _| {
                    let mut buf = [0u8; 16];
                    while let Ok(n) = sys::read(rfd, &mut buf) {
                        if n == 0 {
                            break;
                        }
                        g.borrow_mut().extend_from_slice(&buf[..n]);
                    }
                })
                .unwrap();
            sys::write(w.as_raw_fd(), b"hi").unwrap();
            for _ in 0..10 {
                if got.borrow().len() == 2 {
                    break;
                }
                el.turn(Some(Duration::from_secs(1))).unwrap();
            }
            assert_eq!(&*got.borrow(), b"hi");
            el.unwatch(id).unwrap();
            assert!(el.unwatch(id).is_err(), "second unwatch is a stale token");
        }
    }

    #[test]
    fn cross_thread_tasks_run_in_order_and_wake_the_loop() {
        for cfg in each_config() {
            let mut el = EventLoop::new(cfg).unwrap();
            let h = el.handle();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = seen.clone();
            let t = std::thread::spawn(move || {
                for i in 0..1000 {
                    let s = s.clone();
                    h.post(move |_| s.lock().unwrap().push(i)).unwrap();
                }
                h.stop();
            });
            el.run().unwrap();
            t.join().unwrap();
            assert_eq!(*seen.lock().unwrap(), (0..1000).collect::<Vec<_>>());
            assert!(
                el.handle().post(|_| {}).is_err(),
                "a stopped loop refuses tasks"
            );
        }
    }

    #[test]
    fn timers_fire_in_order_and_cancel() {
        let mut el = EventLoop::new(LoopConfig::default()).unwrap();
        let log = Rc::new(RefCell::new(Vec::new()));
        for (i, ms) in [(1, 30u64), (2, 10), (3, 20)] {
            let l = log.clone();
            el.run_after(Duration::from_millis(ms), move |_| l.borrow_mut().push(i));
        }
        let l = log.clone();
        let c = el.run_after(Duration::from_millis(15), move |_| l.borrow_mut().push(99));
        el.cancel(c);
        let l = log.clone();
        let ticks = Rc::new(RefCell::new(0));
        let t2 = ticks.clone();
        let every = el.run_every(Duration::from_millis(5), move |_| *t2.borrow_mut() += 1);
        let start = Instant::now();
        while log.borrow().len() < 3 && start.elapsed() < Duration::from_secs(5) {
            el.turn(Some(Duration::from_millis(100))).unwrap();
        }
        el.cancel(every);
        let n = *ticks.borrow();
        el.run_after(Duration::from_millis(20), move |_| l.borrow_mut().push(4));
        while log.borrow().len() < 4 && start.elapsed() < Duration::from_secs(5) {
            el.turn(Some(Duration::from_millis(100))).unwrap();
        }
        assert_eq!(*log.borrow(), vec![2, 3, 1, 4]);
        assert!(n >= 2, "periodic timer ran {n} times in 30ms");
        assert_eq!(*ticks.borrow(), n, "cancelled periodic timer kept running");
    }

    #[test]
    fn stale_token_after_reuse_is_dropped() {
        let mut el = EventLoop::new(LoopConfig::default()).unwrap();
        let (r, _w) = sys::pipe().unwrap();
        let a = el
            .watch(r.as_raw_fd(), Interest::READABLE, |_, _| {})
            .unwrap();
        el.unwatch(a).unwrap();
        let b = el
            .watch(r.as_raw_fd(), Interest::READABLE, |_, _| {})
            .unwrap();
        assert_ne!(a, b);
        assert!(!el.has_source(a.0));
        assert!(el.has_source(b.0));
        assert!(el.with_source(a.0, |_, _| ()).is_none());
    }

    #[test]
    fn regular_file_is_a_clear_error_for_epoll() {
        let mut el = EventLoop::new(LoopConfig::default()).unwrap();
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let err = el
            .watch(f.as_raw_fd(), Interest::READABLE, |_, _| {})
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("regular file"), "{err}");
    }

    #[test]
    fn select_refuses_fd_above_fd_setsize() {
        let mut el = EventLoop::new(LoopConfig {
            poller: PollerKind::Select,
            ..Default::default()
        })
        .unwrap();
        let (r, _w) = sys::pipe().unwrap();
        let (soft, _) = sys::nofile_limit().unwrap();
        if soft <= 1100 {
            sys::set_nofile_limit(2048).unwrap();
        }
        // SAFETY-free dup to a high number via fcntl is in sys; use std's dup.
        let high = rustix_dup_at_least(&r, 1100);
        let err = el
            .watch(high.as_raw_fd(), Interest::READABLE, |_, _| {})
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("FD_SETSIZE"), "{err}");
        // The loop still works after the refusal.
        el.watch(r.as_raw_fd(), Interest::READABLE, |_, _| {})
            .unwrap();
    }

    fn rustix_dup_at_least(fd: &std::os::fd::OwnedFd, min: i32) -> std::os::fd::OwnedFd {
        sys::dup_at_least(fd.as_raw_fd(), min).unwrap()
    }

    #[test]
    fn signals_arrive_through_signalfd() {
        let mut el = EventLoop::new(LoopConfig::default()).unwrap();
        sys::block_signals(&[libc::SIGUSR1]).unwrap();
        let sfd = sys::signalfd(&[libc::SIGUSR1]).unwrap();
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        let raw = sfd.as_raw_fd();
        el.watch(raw, Interest::READABLE, move |_, _| {
            *g.borrow_mut() = sys::signalfd_read(&sfd).unwrap();
        })
        .unwrap();
        sys::raise_in_thread(libc::SIGUSR1).unwrap();
        for _ in 0..10 {
            if got.borrow().is_some() {
                break;
            }
            el.turn(Some(Duration::from_secs(1))).unwrap();
        }
        assert_eq!(*got.borrow(), Some(libc::SIGUSR1));
    }
}
