//! The io_uring(7) engine: one ring per loop, used two ways.
//!
//! - **Readiness** ([`PollerKind::Uring`](crate::poller::PollerKind::Uring)):
//!   the ring is a [`Poller`] like epoll, built by
//!   [`new_poller`](crate::poller::new_poller); connections do their own
//!   reads and writes. This file.
//! - **Completion** ([`PollerKind::Proactor`](crate::poller::PollerKind::Proactor)):
//!   connections hand their recv and send to the ring and are told when
//!   they finished, with a ring of provided buffers for the reads
//!   (`proactor.rs`: [`Completion`], [`Done`]). The loop's
//!   driver is then the ring itself, reached through
//!   [`EventLoop::ring`](crate::reactor::EventLoop::ring); listeners and
//!   other fds are still polled for readiness, level-triggered, on the
//!   same ring.
//!
//! # Readiness polls
//!
//! One `IORING_OP_POLL_ADD` per watched fd, its completions read back from
//! the ring.
//!
//! Level-triggered: each fd has a one-shot poll armed for its interest. When
//! it completes, the event is delivered and the fd is re-armed with the next
//! `wait`; a one-shot poll armed on an fd that is still ready completes at
//! once, so an undrained fd is reported again (level semantics, at one SQE
//! per event). Edge-triggered: one multishot poll per fd
//! (`IORING_POLL_ADD_MULTI`), which posts a completion per wakeup of the fd,
//! as epoll ET reports per wakeup; it is re-armed only when the kernel ends
//! it (a CQE without `IORING_CQE_F_MORE`, e.g. after a CQ overflow).
//!
//! Changing or dropping a registration cancels the armed poll
//! (`IORING_OP_POLL_REMOVE` by user_data) while its late completions may
//! still be in the ring. Each poll's user_data names its fd and arm sequence:
//!
//! ```text
//!  63              32 31               0
//! +------------------+------------------+
//! |        fd        |     arm seq      |
//! +------------------+------------------+
//! ```
//!
//! The sequence is bumped whenever an armed poll is cancelled and kept when
//! the fd is deregistered, so a completion whose sequence is not the fd's
//! current one (the `-ECANCELED` of a removed poll, or anything an old arm
//! posted before it went) is dropped, even after the fd number was reused.
//! Removal requests carry `REMOVAL`, which no poll has (fds are < 2^31),
//! and their own completions are dropped too.
//!
//! Arms queue in the SQ and go to the kernel with the next wait's
//! `io_uring_enter`, so a turn's re-arms cost one syscall. A deregistration
//! is submitted at once: when `deregister` returns the ring holds no
//! reference to the file, so closing the fd really closes it.
//!
//! io_uring always watches POLLRDHUP, whatever the mask asks for. Bits
//! outside the interest are dropped, as epoll drops them; and an fd watched
//! only for writing whose peer has shut down its side (RDHUP set for good)
//! would complete every one-shot at once, so in level mode such an fd is
//! watched by a multishot poll, reported per wakeup, until its interest
//! changes. The connection layer writes until EAGAIN, so it needs no level
//! re-report for writing.
//!
//! Regular files and directories are refused (always ready, like epoll's
//! EPERM). [`Interest::exclusive`] adds `EPOLLEXCLUSIVE` to the poll, which
//! io_uring honours as epoll does: of several rings polling one listener,
//! a new connection wakes one.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::poller::{Caps, Event, Interest, Poller, Token, Trigger};
use crate::sys::{self, fdset as fs};

mod proactor;
pub use proactor::{Completion, Done, RecvBuf, SendBuf};

/// Submission queue size: arms queue here until the next wait (a full SQ is
/// submitted early, so this bounds no fd count, only syscalls per turn).
const SQ_ENTRIES: u32 = 4096;
/// Completion queue size: what the kernel can post between two waits before
/// it has to hold completions on its overflow list (kept since 5.5,
/// IORING_FEAT_NODROP; `wait` keeps draining until the list is empty).
const CQ_ENTRIES: u32 = 4 * SQ_ENTRIES;

/// user_data of POLL_REMOVE requests (no poll's: its fd half would be -1).
const REMOVAL: u64 = u64::MAX;

const fn user_data(fd: RawFd, seq: u32) -> u64 {
    (fd as u64) << 32 | seq as u64
}

#[derive(Clone, Copy)]
struct Reg {
    token: Token,
    interest: Interest,
    /// A poll for the slot's current `seq` is queued in the SQ or live in the
    /// kernel. Registered and not armed means queued in `to_arm`.
    armed: bool,
    /// Level mode: the peer shut down its side of a socket watched only for
    /// writing, so the fd is watched by a multishot poll (see module doc).
    half_closed: bool,
    /// Event bits gathered this wait (0: not in `ready`).
    pending: u8,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Arm sequence (see module doc); survives deregistration.
    seq: u32,
    reg: Option<Reg>,
}

/// One io_uring instance: a [`Poller`] over poll requests
/// ([`PollerKind::Uring`](crate::poller::PollerKind::Uring), built by
/// [`Uring::new`]) or, built by [`Uring::new_proactor`], also the completion
/// engine of the proactor model (see the module docs).
///
/// Not thread-safe in use: the ring belongs to one loop and only that loop's
/// thread submits to it or waits on it (other threads wake the loop with its
/// [`Waker`](crate::poller::Waker)).
pub struct Uring {
    ring: IoUring,
    trigger: Trigger,
    /// fd -> slot; fds are small integers, so a vector beats a hash map.
    slots: Vec<Slot>,
    /// fds waiting for a poll to be armed (may hold stale or repeated fds:
    /// arming checks `armed`).
    to_arm: Vec<RawFd>,
    /// fds with `pending` bits, in completion order.
    ready: Vec<RawFd>,
    /// io_uring_enter calls made (tests check that nothing spins).
    enters: u64,
    /// Connection operations, in the proactor model (after `ring`: the
    /// buffers it holds are freed only once the ring is closed).
    io: Option<Box<proactor::Proactor>>,
}

impl Uring {
    /// Set up a ring (4096 SQ entries, 16384 CQ entries) that delivers
    /// `trigger` for every watched fd. Cooperative task running is used
    /// where the kernel has it (5.19+).
    ///
    /// Errors: those of `io_uring_setup` (ENOSYS: no io_uring in this
    /// kernel; EPERM: disabled by `kernel.io_uring_disabled` or a seccomp
    /// filter, as in many containers; ENOMEM: the locked-memory limit on
    /// kernels before 5.12), or
    /// `Unsupported` on kernels before 5.11, which lack the timed waits the
    /// poller needs.
    pub fn new(trigger: Trigger) -> io::Result<Uring> {
        Self::build(trigger, false)
    }

    /// `single_issuer`: the ring is used only by the thread that builds it
    /// (an `EventLoop`'s, which is `!Send`), so the kernel may defer its
    /// completion work (`IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN`, Linux
    /// 6.1+): completions are posted in a batch when the loop waits, never
    /// by interrupting it, and the kernel skips the locking other threads
    /// would need. Kernels without it get the cooperative setup.
    pub(crate) fn build(trigger: Trigger, single_issuer: bool) -> io::Result<Uring> {
        // Cooperative task running (5.19+): a poll completing while the
        // loop runs in user space does not interrupt it (no IPI, no
        // signal-style notification); its completion is posted on the loop's
        // next syscall, and the taskrun flag says when one is pending. Only
        // the loop's thread uses the ring, which is what this assumes.
        let cooperative = || {
            IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .setup_coop_taskrun()
                .setup_taskrun_flag()
                .build(SQ_ENTRIES)
        };
        let first = if single_issuer {
            IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .setup_coop_taskrun()
                .setup_taskrun_flag()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .build(SQ_ENTRIES)
                .or_else(|e| match e.raw_os_error() {
                    Some(libc::EINVAL) => cooperative(),
                    _ => Err(e),
                })
        } else {
            cooperative()
        };
        let ring = first
            .or_else(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => IoUring::builder()
                    .setup_cqsize(CQ_ENTRIES)
                    .build(SQ_ENTRIES),
                _ => Err(e),
            })
            .map_err(|e| match e.raw_os_error() {
                Some(errno) => sys::sys_err("io_uring_setup", errno),
                None => e,
            })?;
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring: the kernel lacks IORING_FEAT_EXT_ARG (timed waits; Linux 5.11+)",
            ));
        }
        Ok(Uring {
            ring,
            trigger,
            slots: Vec::new(),
            to_arm: Vec::new(),
            ready: Vec::new(),
            enters: 0,
            io: None,
        })
    }

    fn has_done(&self) -> bool {
        self.io.as_ref().is_some_and(|p| p.has_done())
    }

    fn reg(&mut self, fd: RawFd) -> io::Result<&mut Reg> {
        self.slots
            .get_mut(fd as usize)
            .and_then(|s| s.reg.as_mut())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("io_uring: fd {fd} is not registered"),
                )
            })
    }

    fn poll_mask(interest: Interest) -> u32 {
        let mut m = (fs::POLLERR | fs::POLLHUP) as u32;
        if interest.is_readable() {
            m |= (fs::POLLIN | fs::POLLRDHUP) as u32;
        }
        if interest.is_writable() {
            m |= fs::POLLOUT as u32;
        }
        if interest.is_exclusive() {
            // As with epoll: one waiter of several is woken, not all.
            m |= libc::EPOLLEXCLUSIVE as u32;
        }
        m
    }

    /// Event bits for a poll result, keeping only what `interest` asked for
    /// (plus errors and hang-ups, which are always reported).
    fn event_bits(mask: u32, interest: Interest) -> u8 {
        let has = |bits: i16| mask & bits as u32 != 0;
        let mut f = 0;
        if interest.is_readable() {
            if has(fs::POLLIN | fs::POLLPRI) {
                f |= Event::READABLE;
            }
            if has(fs::POLLRDHUP) {
                f |= Event::READ_CLOSED;
            }
        }
        if interest.is_writable() && has(fs::POLLOUT) {
            f |= Event::WRITABLE;
        }
        if has(fs::POLLERR | fs::POLLNVAL) {
            f |= Event::ERROR;
        }
        if has(fs::POLLHUP) {
            f |= Event::HUP;
        }
        f
    }

    /// Queue an SQE, submitting what is queued first if the SQ is full.
    fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: poll, poll-remove and cancel SQEs point at no memory of
            // ours (only an fd, a mask and user_data); recv and send SQEs
            // point at buffers the proactor keeps alive until their final
            // completion (proactor.rs). A bad fd comes back as an error
            // completion.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.enter(false, None)?;
        }
    }

    /// Arm a poll for every fd in `to_arm` that is still registered and not
    /// armed.
    fn arm_queued(&mut self) -> io::Result<()> {
        let mut i = 0;
        while i < self.to_arm.len() {
            let fd = self.to_arm[i];
            i += 1;
            let Some(slot) = self.slots.get_mut(fd as usize) else {
                continue;
            };
            let Some(reg) = slot.reg.as_mut().filter(|r| !r.armed) else {
                continue;
            };
            reg.armed = true;
            let multi = self.trigger == Trigger::Edge || reg.half_closed;
            let sqe = opcode::PollAdd::new(types::Fd(fd), Self::poll_mask(reg.interest))
                .multi(multi)
                .build()
                .user_data(user_data(fd, slot.seq));
            self.push(&sqe)?;
        }
        self.to_arm.clear();
        Ok(())
    }

    /// Cancel `fd`'s armed poll, if any: queue its removal and bump the
    /// sequence so everything the old arm still posts is dropped.
    fn disarm(&mut self, fd: RawFd) -> io::Result<bool> {
        let slot = &mut self.slots[fd as usize];
        let Some(reg) = slot.reg.as_mut().filter(|r| r.armed) else {
            return Ok(false);
        };
        reg.armed = false;
        let old = user_data(fd, slot.seq);
        slot.seq = slot.seq.wrapping_add(1);
        self.push(&opcode::PollRemove::new(old).build().user_data(REMOVAL))?;
        Ok(true)
    }

    /// Submit what the SQ holds; with `block`, also wait for a completion
    /// or until `timeout` passes. A timeout, EINTR or a busy ring (a full CQ
    /// on old kernels) is an ordinary return: the caller reaps and decides.
    fn enter(&mut self, block: bool, timeout: Option<Duration>) -> io::Result<()> {
        let r = match (block, timeout) {
            (false, _) => {
                let sq = self.ring.submission();
                if sq.is_empty() && !sq.cq_overflow() && !sq.taskrun() {
                    // Nothing to submit, no overflow to flush, no completion
                    // waiting to be posted.
                    return Ok(());
                }
                drop(sq);
                self.enters += 1;
                self.ring.submit()
            }
            (true, None) => {
                self.enters += 1;
                self.ring.submit_and_wait(1)
            }
            (true, Some(t)) => {
                self.enters += 1;
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match r.map_err(|e| e.raw_os_error()) {
            Ok(_) | Err(Some(libc::ETIME | libc::EINTR | libc::EAGAIN)) => Ok(()),
            Err(Some(libc::EBUSY)) => {
                // Old kernels refuse to submit while completions overflow:
                // make room, the caller retries.
                self.reap();
                Ok(())
            }
            Err(Some(errno)) => Err(sys::sys_err("io_uring_enter", errno)),
            Err(None) => Err(io::Error::other("io_uring_enter failed")),
        }
    }

    /// Drain every completion in the CQ into the fds' pending bits.
    fn reap(&mut self) {
        let mut cq = self.ring.completion();
        loop {
            cq.sync();
            if cq.is_empty() {
                return;
            }
            for cqe in &mut cq {
                if proactor::is_op(cqe.user_data()) {
                    if let Some(p) = self.io.as_mut() {
                        p.complete(&cqe);
                    }
                    continue;
                }
                Self::complete(
                    self.trigger,
                    &mut self.slots,
                    &mut self.to_arm,
                    &mut self.ready,
                    &cqe,
                );
            }
        }
    }

    fn complete(
        trigger: Trigger,
        slots: &mut [Slot],
        to_arm: &mut Vec<RawFd>,
        ready: &mut Vec<RawFd>,
        cqe: &cqueue::Entry,
    ) {
        let ud = cqe.user_data();
        if ud == REMOVAL {
            return;
        }
        let fd = (ud >> 32) as RawFd;
        let Some(slot) = slots.get_mut(fd as usize) else {
            return;
        };
        if slot.seq != ud as u32 {
            return; // from a cancelled arm
        }
        let Some(reg) = slot.reg.as_mut() else {
            return;
        };
        let res = cqe.result();
        let more = cqueue::more(cqe.flags());
        if !more {
            // The poll is over (one-shot done, or the kernel ended a multishot).
            reg.armed = false;
            to_arm.push(fd);
        }
        let bits = if res >= 0 {
            let bits = Self::event_bits(res as u32, reg.interest);
            if bits == 0 && res != 0 && !more && trigger == Trigger::Level {
                // Only RDHUP, on an fd not watched for reading: a one-shot
                // would complete at once forever (see module doc).
                reg.half_closed = true;
            }
            bits
        } else if res == -libc::ECANCELED {
            0
        } else {
            tracing::debug!("io_uring: poll on fd {fd} failed: errno {}", -res);
            Event::ERROR
        };
        if bits != 0 {
            if reg.pending == 0 {
                ready.push(fd);
            }
            reg.pending |= bits;
        }
    }
}

impl Poller for Uring {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "io_uring: negative fd",
            ));
        }
        if self.slots.get(fd as usize).is_some_and(|s| s.reg.is_some()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("io_uring: fd {fd} is already registered"),
            ));
        }
        // A poll on a regular file completes at once, forever: refuse it as
        // epoll does (which costs an fstat per registration).
        if sys::is_file_or_dir(fd)? {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring cannot watch fd {fd}: it does not support polling (a regular file or directory is always ready; read it directly)"),
            ));
        }
        if self.slots.len() <= fd as usize {
            self.slots.resize(fd as usize + 1, Slot::default());
        }
        self.slots[fd as usize].reg = Some(Reg {
            token,
            interest,
            armed: false,
            half_closed: false,
            pending: 0,
        });
        self.to_arm.push(fd);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let reg = self.reg(fd)?;
        reg.token = token;
        reg.interest = interest;
        reg.half_closed = false;
        // Bits gathered under the old interest are not delivered.
        reg.pending = 0;
        // Re-armed whatever the change: epoll_ctl MOD re-reports readiness
        // too (an edge-triggered owner may rely on it).
        self.disarm(fd)?;
        self.to_arm.push(fd);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.reg(fd)?;
        let queued = self.disarm(fd)?;
        self.slots[fd as usize].reg = None;
        if queued {
            // Let go of the file now, not at the next wait (see module doc).
            self.enter(false, None)?;
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut left = timeout;
        self.rearm_starved()?;
        loop {
            self.arm_queued()?;
            self.reap();
            // Something to report: only hand the kernel the queued arms.
            self.enter(self.ready.is_empty() && !self.has_done(), left)?;
            self.reap();
            if !self.ready.is_empty() || self.has_done() {
                break;
            }
            // Woken by stale completions only, or timed out.
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    break;
                }
                left = Some(d - now);
            }
        }
        for fd in self.ready.drain(..) {
            if let Some(reg) = self.slots.get_mut(fd as usize).and_then(|s| s.reg.as_mut()) {
                let bits = std::mem::take(&mut reg.pending);
                if bits != 0 {
                    events.push(Event::new(reg.token, bits));
                }
            }
        }
        Ok(())
    }

    fn trigger(&self) -> Trigger {
        self.trigger
    }

    fn name(&self) -> &'static str {
        match (self.io.is_some(), self.trigger) {
            (true, _) => "proactor",
            (false, Trigger::Level) => "uring-lt",
            (false, Trigger::Edge) => "uring-et",
        }
    }

    fn caps(&self) -> Caps {
        if self.is_proactor() {
            // Its readiness side (listeners, other fds) is level only.
            Caps {
                level: true,
                exclusive: true,
                completion: true,
                ..Caps::NONE
            }
        } else {
            Caps {
                level: true,
                edge: true,
                exclusive: true,
                ..Caps::NONE
            }
        }
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        self.quiesce();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poller::Waker;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    const BOTH_TRIGGERS: [Trigger; 2] = [Trigger::Level, Trigger::Edge];

    fn wait(p: &mut Uring, ms: u64) -> Vec<Event> {
        let mut ev = Vec::new();
        p.wait(&mut ev, Some(Duration::from_millis(ms))).unwrap();
        ev
    }

    fn drain(fd: RawFd) {
        let mut buf = [0u8; 4096];
        while matches!(sys::read(fd, &mut buf), Ok(n) if n > 0) {}
    }

    #[test]
    fn readiness_level_repeats_until_drained() {
        let mut p = Uring::new(Trigger::Level).unwrap();
        let (r, w) = sys::pipe().unwrap();
        p.register(r.as_raw_fd(), Token(7), Interest::READABLE)
            .unwrap();
        assert!(wait(&mut p, 0).is_empty());
        sys::write(w.as_raw_fd(), b"x").unwrap();
        let ev = wait(&mut p, 1000);
        assert_eq!(ev, vec![Event::new(Token(7), Event::READABLE)]);
        let ev = wait(&mut p, 1000);
        assert_eq!(ev.len(), 1, "undrained fd is reported again");
        drain(r.as_raw_fd());
        assert!(wait(&mut p, 30).is_empty());
    }

    #[test]
    fn readiness_edge_once_per_arrival() {
        let mut p = Uring::new(Trigger::Edge).unwrap();
        let (r, w) = sys::pipe().unwrap();
        p.register(r.as_raw_fd(), Token(7), Interest::READABLE)
            .unwrap();
        assert!(wait(&mut p, 0).is_empty());
        sys::write(w.as_raw_fd(), b"x").unwrap();
        assert_eq!(
            wait(&mut p, 1000),
            vec![Event::new(Token(7), Event::READABLE)]
        );
        assert!(wait(&mut p, 30).is_empty(), "no new edge, no event");
        sys::write(w.as_raw_fd(), b"y").unwrap();
        assert_eq!(wait(&mut p, 1000).len(), 1, "a new arrival is a new edge");
    }

    #[test]
    fn exclusive_polls_on_one_listener_wake_one_ring() {
        for trigger in BOTH_TRIGGERS {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            let mut rings: Vec<Uring> = (0..2).map(|_| Uring::new(trigger).unwrap()).collect();
            for (i, p) in rings.iter_mut().enumerate() {
                p.register(
                    l.as_raw_fd(),
                    Token(i as u64),
                    Interest::READABLE.exclusive(),
                )
                .unwrap();
                assert!(wait(p, 0).is_empty());
            }
            let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            // The connection is queued once connect returns: whichever ring
            // was woken has its completion by the first wait.
            let woken: usize = rings.iter_mut().map(|p| wait(p, 100).len()).sum();
            assert_eq!(woken, 1, "{trigger:?}: one ring woken, not both");
        }
    }

    #[test]
    fn several_completions_for_one_fd_merge_into_one_event() {
        let mut p = Uring::new(Trigger::Edge).unwrap();
        let (r, w) = sys::pipe().unwrap();
        p.register(r.as_raw_fd(), Token(1), Interest::READABLE)
            .unwrap();
        assert!(wait(&mut p, 0).is_empty());
        for _ in 0..5 {
            sys::write(w.as_raw_fd(), b"x").unwrap();
        }
        assert_eq!(wait(&mut p, 1000).len(), 1);
    }

    #[test]
    fn reregister_changes_interest_and_token() {
        for t in BOTH_TRIGGERS {
            let mut p = Uring::new(t).unwrap();
            let (_r, w) = sys::pipe().unwrap();
            let fd = w.as_raw_fd();
            p.register(fd, Token(1), Interest::READABLE).unwrap();
            assert!(
                wait(&mut p, 20).is_empty(),
                "{t:?}: a write end never reads"
            );
            p.reregister(fd, Token(2), Interest::WRITABLE).unwrap();
            assert_eq!(
                wait(&mut p, 1000),
                vec![Event::new(Token(2), Event::WRITABLE)],
                "{t:?}"
            );
            p.reregister(fd, Token(3), Interest::READABLE).unwrap();
            assert!(wait(&mut p, 20).is_empty(), "{t:?}: old arm dropped");
            assert_eq!(
                p.reregister(99_999, Token(4), Interest::READABLE)
                    .unwrap_err()
                    .kind(),
                io::ErrorKind::NotFound
            );
        }
    }

    #[test]
    fn deregister_stops_events_and_fd_can_come_back() {
        for t in BOTH_TRIGGERS {
            let mut p = Uring::new(t).unwrap();
            let (r, w) = sys::pipe().unwrap();
            let fd = r.as_raw_fd();
            p.register(fd, Token(1), Interest::READABLE).unwrap();
            assert_eq!(
                p.register(fd, Token(1), Interest::READABLE)
                    .unwrap_err()
                    .kind(),
                io::ErrorKind::AlreadyExists
            );
            assert!(wait(&mut p, 0).is_empty());
            sys::write(w.as_raw_fd(), b"x").unwrap();
            p.deregister(fd).unwrap();
            assert!(wait(&mut p, 30).is_empty(), "{t:?}");
            assert_eq!(
                p.deregister(fd).unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
            // The same fd number again: only the new token is reported.
            p.register(fd, Token(2), Interest::READABLE).unwrap();
            assert_eq!(
                wait(&mut p, 1000),
                vec![Event::new(Token(2), Event::READABLE)],
                "{t:?}"
            );
        }
    }

    #[test]
    fn deregister_lets_go_of_the_file_at_once() {
        let mut p = Uring::new(Trigger::Level).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        p.register(a.as_raw_fd(), Token(1), Interest::READABLE)
            .unwrap();
        assert!(wait(&mut p, 0).is_empty());
        p.deregister(a.as_raw_fd()).unwrap();
        drop(a);
        // If the ring still held the socket, the peer would see no EOF.
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut b, &mut buf).unwrap(), 0);
        let _ = b.write(b"x");
    }

    #[test]
    fn waker_wakes_a_blocking_wait() {
        for t in BOTH_TRIGGERS {
            let mut p = Uring::new(t).unwrap();
            let waker = Arc::new(Waker::new().unwrap());
            p.register(waker.fd(), Token(0), Interest::READABLE)
                .unwrap();
            for _ in 0..3 {
                let w = waker.clone();
                let th = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    w.wake().unwrap();
                });
                let mut ev = Vec::new();
                p.wait(&mut ev, None).unwrap();
                assert_eq!(ev, vec![Event::new(Token(0), Event::READABLE)], "{t:?}");
                waker.reset().unwrap();
                th.join().unwrap();
            }
        }
    }

    #[test]
    fn timeout_passes_without_events() {
        for t in BOTH_TRIGGERS {
            let mut p = Uring::new(t).unwrap();
            let start = Instant::now();
            assert!(wait(&mut p, 0).is_empty());
            assert!(start.elapsed() < Duration::from_millis(500));
            let start = Instant::now();
            assert!(wait(&mut p, 50).is_empty());
            assert!(start.elapsed() >= Duration::from_millis(50), "{t:?}");
        }
    }

    #[test]
    fn regular_file_is_refused_like_epoll() {
        let mut p = Uring::new(Trigger::Level).unwrap();
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let err = p
            .register(f.as_raw_fd(), Token(1), Interest::READABLE)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("regular file"), "{err}");
    }

    #[test]
    fn peer_shutdown_reports_read_closed() {
        for t in BOTH_TRIGGERS {
            let mut p = Uring::new(t).unwrap();
            let (a, b) = UnixStream::pair().unwrap();
            p.register(a.as_raw_fd(), Token(1), Interest::READABLE)
                .unwrap();
            assert!(wait(&mut p, 0).is_empty());
            b.shutdown(std::net::Shutdown::Write).unwrap();
            let ev = wait(&mut p, 1000);
            assert_eq!(ev.len(), 1, "{t:?}");
            assert!(ev[0].is_readable() && ev[0].is_read_closed(), "{t:?}");
        }
    }

    /// io_uring reports POLLRDHUP whatever the mask; a level one-shot on a
    /// half-closed socket watched only for writing must not complete over
    /// and over.
    #[test]
    fn write_only_half_closed_socket_does_not_spin() {
        let mut p = Uring::new(Trigger::Level).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let chunk = [0u8; 4096];
        while (&a).write(&chunk).is_ok() {}
        b.shutdown(std::net::Shutdown::Write).unwrap();
        b.set_nonblocking(true).unwrap();
        p.register(a.as_raw_fd(), Token(1), Interest::WRITABLE)
            .unwrap();
        let before = p.enters;
        assert!(wait(&mut p, 100).is_empty(), "full and half-closed");
        let enters = p.enters - before;
        assert!(enters < 10, "{enters} io_uring_enter calls in 100 ms");
        // Space frees up: that is reported.
        drain(b.as_raw_fd());
        let ev = wait(&mut p, 1000);
        assert_eq!(ev, vec![Event::new(Token(1), Event::WRITABLE)]);
        assert!(!ev[0].is_read_closed(), "not watched for reading");
    }
}
