//! Readiness for tasks: the sockets tasks wait on, one slot each in their
//! loop's executor.
//!
//! A task tries the system call first; only on `WouldBlock` does it leave
//! its waker here, and the executor then watches the fd for that direction.
//! Each direction also remembers whether it may be ready: `WouldBlock`, or a
//! read or write shorter than asked (the socket was drained or filled at
//! that moment), clears it, and only an event sets it again — so the next
//! operation waits without the system call that would only say `EAGAIN`.
//! (Clearing too eagerly is safe: data that arrives later makes a new event
//! under either trigger. The peer's FIN is the exception — it may have come
//! with the last bytes, and no event follows it — so once an event has
//! reported the read side closed, reads are never made to wait again.)
//! An event wakes the waiter. A direction that fires with nobody waiting is
//! parked (so a level-triggered poller does not report it again and again),
//! and watched again when a task next waits on it: in a request/response
//! exchange the interest never changes, and the steady state costs no
//! `epoll_ctl`.
//!
//! Closing: a socket's fd goes back to the kernel only after the loop has
//! forgotten it (the slot's last op), so its number cannot be reused while
//! the registry still names it.
//!
//! On the io_uring proactor, stream sockets are in completion mode instead
//! (`ring.rs`): the slot keeps their input and output, and the ring's
//! completions arrive here through [`Registry::complete`].

use std::io::{self, IoSlice};
use std::os::fd::{OwnedFd, RawFd};
use std::task::{Poll, Waker};
use std::time::Instant;

use slab::Slab;

use super::ring::{ring, RingIo, LINGER};
use crate::poller::{Event, Interest, Token};
use crate::reactor::{EventLoop, SourceId};
use crate::ring::Completion;

/// Timer tags with this bit are a lingering stream's (the rest are
/// sleepers'); registry keys never have it (generations are 31 bits).
pub(crate) const LINGER_TAG: u64 = 1 << 63;

/// Which way a task waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

/// A direction's deadline (Go's `SetReadDeadline`) and the sleeper that
/// wakes a blocked operation when it passes.
#[derive(Default)]
pub(crate) struct Deadline {
    pub(crate) at: Option<Instant>,
    pub(crate) sleeper: Option<u64>,
}

struct Slot {
    gen: u32,
    fd: RawFd,
    token: Option<Token>,
    /// The waiting task's waker, per direction.
    waiters: [Option<Waker>; 2],
    /// Registering failed: the waiters get this error.
    failed: Option<io::ErrorKind>,
    /// Per direction: an operation may not block (no `WouldBlock` or short
    /// transfer since the last event).
    ready: [bool; 2],
    /// Per direction: an event reported it shut (the peer's FIN, a hang-up
    /// or an error); operations then never wait.
    shut: [bool; 2],
    /// Per direction: the loop watches it now (mirrors the registry's
    /// interest, so a wait on a watched direction asks nothing of the loop).
    watching: [bool; 2],
    /// Closed by its owner ([`Registry::close`]): every operation fails.
    closed: bool,
    deadlines: [Deadline; 2],
    /// Completion mode (a stream on a proactor loop).
    ring: Option<Box<RingIo>>,
    /// Dropped by its owner while output was still queued: the fd, closed
    /// when the output is gone (or the linger time is up).
    orphan: Option<OwnedFd>,
}

enum Op {
    /// Watch what the slot's waiters need.
    Watch(u64),
    /// Deregister, then close (a completion-mode stream leaves the ring
    /// first).
    Forget {
        token: Option<Token>,
        fd: OwnedFd,
        ring: bool,
    },
    /// Drop a readiness registration (the slot goes to completion mode).
    Deregister(Token),
    /// Tell the ring what a completion-mode slot wants.
    Sync(u64),
    /// Start a lingering slot's timer.
    Linger(u64),
}

/// The sockets of one loop's tasks.
#[derive(Default)]
pub(crate) struct Registry {
    /// A short transfer clears readiness (see the module doc); off on
    /// drivers whose events may not report the peer's FIN (sigio).
    short_drains: bool,
    /// Stream sockets use completion mode (the loop is a proactor).
    completion: bool,
    slots: Slab<Slot>,
    ops: Vec<Op>,
    next_gen: u32,
}

/// Leave `waker` in `w` (unless the one there would wake the same task).
fn set_waiter(w: &mut Option<Waker>, waker: &Waker) {
    if !w.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *w = Some(waker.clone());
    }
}

/// The interest watching the directions marked in `dirs` (read, write).
fn interest(dirs: [bool; 2]) -> Option<Interest> {
    match dirs {
        [true, true] => Some(Interest::BOTH),
        [true, false] => Some(Interest::READABLE),
        [false, true] => Some(Interest::WRITABLE),
        [false, false] => None,
    }
}

fn pack(index: usize, gen: u32) -> u64 {
    (index as u64) | (u64::from(gen) << 32)
}

fn unpack(id: u64) -> (usize, u32) {
    ((id & 0xffff_ffff) as usize, (id >> 32) as u32)
}

impl Registry {
    /// A registry; `short_drains`, `completion`: see the fields.
    pub(crate) fn new(short_drains: bool, completion: bool) -> Registry {
        Registry {
            short_drains,
            completion,
            ..Registry::default()
        }
    }

    fn slot(&mut self, key: u64) -> Option<&mut Slot> {
        let (index, gen) = unpack(key);
        self.slots.get_mut(index).filter(|s| s.gen == gen)
    }

    /// A slot for `fd` (registered with the loop on the first wait).
    pub(crate) fn add(&mut self, fd: RawFd) -> u64 {
        self.next_gen = (self.next_gen.wrapping_add(1) & 0x7fff_ffff).max(1);
        let gen = self.next_gen;
        let index = self.slots.insert(Slot {
            gen,
            fd,
            token: None,
            waiters: [None, None],
            failed: None,
            ready: [true, true],
            shut: [false, false],
            watching: [false, false],
            closed: false,
            deadlines: Default::default(),
            ring: None,
            orphan: None,
        });
        pack(index, gen)
    }

    /// Put a slot made with [`Registry::add`] (a socket that has just
    /// connected) in completion mode if the loop is a proactor; true if so.
    pub(crate) fn make_stream(&mut self, key: u64) -> bool {
        if !self.completion {
            return false;
        }
        let Some(s) = self.slot(key) else {
            return false;
        };
        if let Some(t) = s.token.take() {
            s.watching = [false, false];
            self.ops.push(Op::Deregister(t));
        }
        let s = self.slot(key).expect("slot just seen");
        s.ring = Some(Box::default());
        true
    }

    /// Forget `key`; `fd` is closed once the loop has let go of it. A
    /// completion-mode stream with output still queued lingers until it is
    /// sent.
    pub(crate) fn remove(&mut self, key: u64, fd: OwnedFd) {
        let (index, gen) = unpack(key);
        let Some(s) = self.slots.get_mut(index).filter(|s| s.gen == gen) else {
            return;
        };
        if let Some(r) = s.ring.as_mut() {
            if r.has_output() {
                s.closed = true;
                s.orphan = Some(fd);
                s.waiters = [None, None];
                r.stop_reading();
                self.ops.push(Op::Linger(key));
                self.sync(key);
                return;
            }
        }
        let slot = self.slots.remove(index);
        if slot.token.is_some() {
            self.ops.push(Op::Forget {
                token: slot.token,
                fd,
                ring: slot.ring.is_some(),
            });
        }
        // Never registered: dropping `fd` closes it now.
    }

    /// Queue a sync of completion-mode slot `key` (once until it is done).
    fn sync(&mut self, key: u64) {
        if let Some(r) = self.slot(key).and_then(|s| s.ring.as_mut()) {
            if !r.queued {
                r.queued = true;
                self.ops.push(Op::Sync(key));
            }
        }
    }

    /// The completion-mode state of `key`, unless it is closed or failed.
    fn live_ring(&mut self, key: u64) -> Result<(&mut RingIo, &mut [Option<Waker>; 2]), io::Error> {
        let Some(s) = self.slot(key) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if let Some(kind) = s.failed {
            return Err(kind.into());
        }
        let r = s.ring.as_deref_mut().expect("a completion-mode slot");
        Ok((r, &mut s.waiters))
    }

    /// A read of completion-mode stream `key`: `take` copies out of the
    /// input, `room` bytes at most (see `ring.rs`).
    pub(crate) fn ring_read(
        &mut self,
        key: u64,
        room: usize,
        take: impl FnOnce(&[u8]) -> usize,
        waker: &Waker,
    ) -> Poll<io::Result<usize>> {
        let (r, waiters) = match self.live_ring(key) {
            Ok(v) => v,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let step = r.read(room, take);
        if step.result.is_none() {
            r.wait(&mut waiters[Dir::Read as usize], Dir::Read as usize, waker);
        }
        if step.sync {
            self.sync(key);
        }
        step.result.map_or(Poll::Pending, Poll::Ready)
    }

    /// A write to completion-mode stream `key` (see `ring.rs`).
    pub(crate) fn ring_write(
        &mut self,
        key: u64,
        bufs: &[IoSlice<'_>],
        waker: &Waker,
    ) -> Poll<io::Result<usize>> {
        let (r, waiters) = match self.live_ring(key) {
            Ok(v) => v,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let step = r.write(bufs);
        if step.result.is_none() {
            r.wait(
                &mut waiters[Dir::Write as usize],
                Dir::Write as usize,
                waker,
            );
        }
        if step.sync {
            self.sync(key);
        }
        step.result.map_or(Poll::Pending, Poll::Ready)
    }

    /// A flush of completion-mode stream `key` (see `RingIo::flushed`).
    pub(crate) fn ring_flush(&mut self, key: u64) -> Poll<io::Result<()>> {
        Poll::Ready(self.live_ring(key).and_then(|(r, _)| r.flushed()))
    }

    /// Shut completion-mode stream `key`'s write side after its output:
    /// true if the FIN can be sent now (nothing is queued).
    pub(crate) fn ring_shutdown_write(&mut self, key: u64) -> bool {
        self.slot(key)
            .and_then(|s| s.ring.as_mut())
            .is_some_and(|r| r.shutdown_write())
    }

    /// A ring completion for `key`.
    pub(crate) fn complete(&mut self, el: &mut EventLoop, key: u64, c: Completion) {
        let (index, gen) = unpack(key);
        let Some(s) = self.slots.get_mut(index).filter(|s| s.gen == gen) else {
            return el.release(c);
        };
        let Some(r) = s.ring.as_mut() else {
            return el.release(c);
        };
        let wake = r.complete(ring(el), s.fd, c.done);
        for (i, w) in wake.into_iter().enumerate() {
            if w {
                if let Some(w) = s.waiters[i].take() {
                    r.woke(i, w);
                }
            }
        }
        if s.orphan.is_some() && !r.has_output() {
            self.let_go(el, key);
        }
    }

    /// Streams dropped with output still queued.
    pub(crate) fn lingering(&self) -> usize {
        self.slots
            .iter()
            .filter(|(_, s)| s.orphan.is_some())
            .count()
    }

    /// A lingering slot's time is up: close it, sent or not.
    pub(crate) fn linger_expired(&mut self, el: &mut EventLoop, key: u64) {
        if let Some(r) = self.slot(key).and_then(|s| s.ring.as_mut()) {
            r.linger = None;
        }
        self.let_go(el, key);
    }

    /// Close a lingering (orphaned) slot now.
    fn let_go(&mut self, el: &mut EventLoop, key: u64) {
        let (index, gen) = unpack(key);
        if !self
            .slots
            .get(index)
            .is_some_and(|s| s.gen == gen && s.orphan.is_some())
        {
            return;
        }
        let mut slot = self.slots.remove(index);
        if let Some(t) = slot.ring.as_mut().and_then(|r| r.linger.take()) {
            el.cancel(t);
        }
        let _ = ring(el).close_stream(slot.fd);
        if let Some(t) = slot.token {
            let _ = el.deregister(t);
        }
        drop(slot.orphan.take());
    }

    /// Close `key` for its owner: operations fail from now on, and the tasks
    /// waiting on it are woken to see that. (The fd itself goes when the
    /// socket is dropped.)
    pub(crate) fn close(&mut self, key: u64) {
        if let Some(s) = self.slot(key) {
            s.closed = true;
            for w in s.waiters.iter_mut().filter_map(Option::take) {
                w.wake();
            }
            if let Some(r) = s.ring.as_mut() {
                r.stop_reading();
                if r.shutdown_write() {
                    let _ = crate::sys::socket::shutdown_write(s.fd);
                }
                self.sync(key);
            }
        }
    }

    /// Whether `key` was closed by its owner.
    pub(crate) fn is_closed(&mut self, key: u64) -> bool {
        self.slot(key).is_some_and(|s| s.closed)
    }

    /// Whether an operation on `key` for `dir` may not block.
    pub(crate) fn is_ready(&mut self, key: u64, dir: Dir) -> bool {
        self.slot(key).is_none_or(|s| s.ready[dir as usize])
    }

    /// `key` was drained (read) or filled (write) for `dir`: wait for an
    /// event before the next system call.
    pub(crate) fn clear_ready(&mut self, key: u64, dir: Dir) {
        if !self.short_drains {
            return;
        }
        if let Some(s) = self.slot(key) {
            s.ready[dir as usize] = s.shut[dir as usize];
        }
    }

    /// Leave `waker` to be woken when `key` is ready for `dir`. An error
    /// from registering the fd comes back here.
    pub(crate) fn wait(&mut self, key: u64, dir: Dir, waker: &Waker) -> io::Result<()> {
        let Some(s) = self.slot(key) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if let Some(kind) = s.failed {
            return Err(kind.into());
        }
        s.ready[dir as usize] = s.shut[dir as usize];
        set_waiter(&mut s.waiters[dir as usize], waker);
        if !s.watching[dir as usize] {
            self.ops.push(Op::Watch(key));
        }
        Ok(())
    }

    /// The deadline of `key` for `dir`.
    pub(crate) fn deadline(&mut self, key: u64, dir: Dir) -> Option<&mut Deadline> {
        self.slot(key).map(|s| &mut s.deadlines[dir as usize])
    }

    /// The waker of the task waiting on `key` for `dir`, if one is.
    pub(crate) fn waiter(&mut self, key: u64, dir: Dir) -> Option<Waker> {
        self.slot(key).and_then(|s| s.waiters[dir as usize].clone())
    }

    /// An event for `key`: wake the waiters it concerns; park a direction
    /// that fired with nobody waiting.
    pub(crate) fn event(&mut self, el: &mut EventLoop, key: u64, ev: Event) {
        let Some(s) = self.slot(key) else { return };
        let Some(token) = s.token else { return };
        let gone = ev.is_hup() || ev.is_error();
        let fired = [
            ev.is_readable() || ev.is_read_closed() || gone,
            ev.is_writable() || gone,
        ];
        if ev.is_read_closed() || gone {
            s.shut[Dir::Read as usize] = true;
        }
        if gone {
            s.shut[Dir::Write as usize] = true;
        }
        let mut keep = [false; 2];
        for i in 0..2 {
            if fired[i] {
                s.ready[i] = true;
            }
            let stays = match (s.waiters[i].take(), fired[i]) {
                // Woken; it will likely wait again: keep watching.
                (Some(w), true) => {
                    w.wake();
                    true
                }
                // Still waiting for this direction.
                (Some(w), false) => {
                    s.waiters[i] = Some(w);
                    true
                }
                // Fired with nobody waiting: park it.
                (None, true) => false,
                (None, false) => s.watching[i],
            };
            keep[i] = stays;
        }
        if el.set_interest(token, interest(keep)).is_ok() {
            s.watching = keep;
        }
    }

    /// Do what the tasks asked of the loop since the last flush.
    pub(crate) fn flush(&mut self, el: &mut EventLoop, source: SourceId) {
        if self.ops.is_empty() {
            return;
        }
        let mut ops = std::mem::take(&mut self.ops);
        for op in ops.drain(..) {
            match op {
                Op::Forget { token, fd, ring: r } => {
                    if r {
                        let _ = ring(el).close_stream(std::os::fd::AsRawFd::as_raw_fd(&fd));
                    }
                    if let Some(t) = token {
                        let _ = el.deregister(t);
                    }
                    drop(fd);
                }
                Op::Deregister(t) => {
                    let _ = el.deregister(t);
                }
                Op::Linger(key) => {
                    let at = Instant::now() + LINGER;
                    let Some(r) = self.slot(key).and_then(|s| s.ring.as_mut()) else {
                        continue;
                    };
                    r.linger = Some(el.timer_at(source, at, LINGER_TAG | key));
                }
                Op::Sync(key) => self.sync_now(el, source, key),
                Op::Watch(key) => {
                    let Some(s) = self.slot(key) else { continue };
                    // What is watched now, and what the waiters need.
                    let now = [0, 1].map(|i| s.watching[i] || s.waiters[i].is_some());
                    let Some(want) = interest(now) else { continue };
                    let r = match s.token {
                        Some(t) => el.set_interest(t, Some(want)),
                        None => el
                            .register(s.fd, Some(want), source, key)
                            .map(|t| s.token = Some(t)),
                    };
                    match r {
                        Ok(()) => s.watching = now,
                        Err(e) => {
                            s.failed = Some(e.kind());
                            for w in s.waiters.iter_mut().filter_map(Option::take) {
                                w.wake();
                            }
                        }
                    }
                }
            }
        }
        // Keep the allocation (nothing above queues more ops).
        if self.ops.is_empty() {
            self.ops = ops;
        }
    }

    /// Open a completion-mode slot on the ring if it is not yet, and tell
    /// the ring what it wants.
    fn sync_now(&mut self, el: &mut EventLoop, source: SourceId, key: u64) {
        let Some(s) = self.slot(key) else { return };
        let fd = s.fd;
        let Some(r) = s.ring.as_mut() else { return };
        let mut r_err = None;
        if !r.opened {
            match el.register(fd, None, source, key) {
                Ok(t) => match ring(el).open_stream(fd, t) {
                    Ok(()) => {
                        s.token = Some(t);
                        r.opened = true;
                    }
                    Err(e) => {
                        let _ = el.deregister(t);
                        r_err = Some(e);
                    }
                },
                Err(e) => r_err = Some(e),
            }
        }
        if r_err.is_none() {
            r_err = r.sync(ring(el), fd).err();
        }
        if let Some(e) = r_err {
            s.failed = Some(e.kind());
            for w in s.waiters.iter_mut().filter_map(Option::take) {
                w.wake();
            }
        }
    }

    /// The loop is going away: wake every waiter (their operations fail).
    pub(crate) fn shutdown(&mut self) {
        for (_, s) in self.slots.iter_mut() {
            s.failed = Some(io::ErrorKind::NotConnected);
            for w in s.waiters.iter_mut().filter_map(Option::take) {
                w.wake();
            }
            // A lingering stream's output is abandoned with its loop.
            drop(s.orphan.take());
        }
        self.ops.clear();
    }
}
