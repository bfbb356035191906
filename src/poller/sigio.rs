//! Signal-driven I/O: the kernel tells us which fd changed by sending a
//! signal, not by answering a poll.
//!
//! On `register` a socket gets F_SETSIG (a realtime signal, SIGRTMIN+1),
//! F_SETOWN_EX (this loop's thread, so no other thread ever receives it) and
//! O_ASYNC. The signal is blocked in the loop thread and read back through a
//! signalfd in `wait`: each queued `siginfo` names the fd (`ssi_fd`) and the
//! poll band (`ssi_band`: POLLIN on arrival, POLLOUT when send space frees up
//! after a send hit a full buffer, POLLHUP/POLLERR) — one signal per event.
//!
//! Signals fire on *changes*, so the semantics are edge-triggered:
//! [`Poller::trigger`] says [`Trigger::Edge`] and the connection layer drains
//! each socket to EAGAIN (deferring, not dropping, what its read budget does
//! not cover). A newly registered fd is reported ready once for its whole
//! interest, as epoll does, because data may have arrived before O_ASYNC.
//!
//! Realtime signals queue, but the queue is bounded (RLIMIT_SIGPENDING). When
//! it overflows the kernel sends plain SIGIO, which carries no fd: the only
//! safe answer is a rescan — report every registered fd ready, and let the
//! reads and writes that hit EAGAIN sort it out. Every signal is a kernel
//! allocation plus a 128-byte copy, and a busy server takes one per packet:
//! that cost, and the rescans under overload, are what this backend shows.
//!
//! fds that cannot raise SIGIO (eventfd, signalfd, timerfd — the loop's
//! waker among them) are watched level-triggered by the same poll(2) that
//! waits for the signalfd.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{timeout_ms, Caps, Event, Interest, Poller, Token, Trigger};
use crate::sys::{
    self,
    fdset::{self as fs, PollFd},
    sigio::{self as sio, FdKind, SigInfo},
};

#[derive(Clone, Copy)]
struct Reg {
    token: Token,
    interest: Interest,
    /// Watched by poll(2) rather than by signals.
    polled: bool,
    /// Event bits gathered this wait (0: not in `ready`).
    pending: u8,
}

/// The signal-driven backend ([`PollerKind::SigIo`](super::PollerKind::SigIo)):
/// always edge-triggered, events read from a signalfd (see the module docs).
/// Belongs to the thread that created it, which receives its signals.
pub struct SigIo {
    signal: i32,
    tid: libc::pid_t,
    sfd: OwnedFd,
    /// fd -> registration.
    regs: Vec<Option<Reg>>,
    /// fds with `pending` bits, in arrival order.
    ready: Vec<RawFd>,
    /// Slot 0 is the signalfd, then the polled fds.
    pollfds: Vec<PollFd>,
    infos: Vec<SigInfo>,
    /// How many SIGIO overflows forced a rescan (for tests and stats).
    pub rescans: u64,
}

impl SigIo {
    /// Must be called on the loop's thread: the signals are blocked here and
    /// routed to this thread.
    pub fn new() -> io::Result<SigIo> {
        let signal = sio::sigrtmin() + 1;
        let sigs = [signal, libc::SIGIO];
        sys::block_signals(&sigs)?;
        let sfd = sys::signalfd(&sigs)?;
        let pollfds = vec![PollFd {
            fd: sfd.as_raw_fd(),
            events: fs::POLLIN,
            revents: 0,
        }];
        Ok(SigIo {
            signal,
            tid: sio::gettid(),
            sfd,
            regs: Vec::new(),
            ready: Vec::new(),
            pollfds,
            infos: vec![SigInfo::default(); 64],
            rescans: 0,
        })
    }

    fn reg(&mut self, fd: RawFd) -> io::Result<&mut Reg> {
        self.regs
            .get_mut(fd as usize)
            .and_then(|r| r.as_mut())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("sigio: fd {fd} is not registered"),
                )
            })
    }

    fn mark(&mut self, fd: RawFd, bits: u8) {
        if bits == 0 {
            return;
        }
        if let Some(Some(r)) = self.regs.get_mut(fd as usize) {
            if r.pending == 0 {
                self.ready.push(fd);
            }
            r.pending |= bits;
        }
    }

    fn interest_bits(interest: Interest) -> u8 {
        let mut f = 0;
        if interest.is_readable() {
            f |= Event::READABLE;
        }
        if interest.is_writable() {
            f |= Event::WRITABLE;
        }
        f
    }

    fn band_bits(band: i64) -> u8 {
        let b = band as i16;
        let mut f = 0;
        if b & (fs::POLLIN | fs::POLLPRI) != 0 {
            f |= Event::READABLE;
        }
        if b & fs::POLLOUT != 0 {
            f |= Event::WRITABLE;
        }
        if b & fs::POLLERR != 0 {
            f |= Event::ERROR;
        }
        if b & fs::POLLHUP != 0 {
            f |= Event::HUP;
        }
        f
    }

    /// Queue-overflow recovery: every registered fd is reported ready.
    fn rescan(&mut self) {
        self.rescans += 1;
        tracing::debug!("sigio: realtime signal queue overflowed; rescanning every fd");
        for fd in 0..self.regs.len() {
            if let Some(r) = self.regs[fd] {
                self.mark(fd as RawFd, Self::interest_bits(r.interest));
            }
        }
    }

    fn drain_signals(&mut self) -> io::Result<()> {
        let mut infos = std::mem::take(&mut self.infos);
        let r = (|| loop {
            let n = sio::signalfd_read_batch(&self.sfd, &mut infos)?;
            let mut overflow = false;
            for i in &infos[..n] {
                if i.signo == self.signal {
                    self.mark(i.fd, Self::band_bits(i.band));
                } else if i.signo == libc::SIGIO {
                    overflow = true;
                }
            }
            if overflow {
                self.rescan();
            }
            if n < infos.len() {
                return Ok(());
            }
        })();
        self.infos = infos;
        r
    }
}

impl Poller for SigIo {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "sigio: negative fd",
            ));
        }
        if self.regs.get(fd as usize).is_some_and(|r| r.is_some()) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("sigio: fd {fd} is already registered"),
            ));
        }
        let polled = match sio::fd_kind(fd)? {
            FdKind::Listener | FdKind::Socket | FdKind::Fifo => false,
            FdKind::Other => true,
            FdKind::File => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("sigio: fd {fd} is a regular file or directory (always ready; read it directly)"),
                ))
            }
        };
        if polled {
            self.pollfds.push(PollFd {
                fd,
                events: 0,
                revents: 0,
            });
        } else {
            sio::enable_async(fd, self.tid, self.signal)?;
        }
        if self.regs.len() <= fd as usize {
            self.regs.resize(fd as usize + 1, None);
        }
        self.regs[fd as usize] = Some(Reg {
            token,
            interest,
            polled,
            pending: 0,
        });
        self.reregister(fd, token, interest)
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let reg = self.reg(fd)?;
        reg.token = token;
        reg.interest = interest;
        if reg.polled {
            let mut ev = 0;
            if interest.is_readable() {
                ev |= fs::POLLIN;
            }
            if interest.is_writable() {
                ev |= fs::POLLOUT;
            }
            if let Some(p) = self.pollfds.iter_mut().skip(1).find(|p| p.fd == fd) {
                p.events = ev;
            }
        } else {
            // Whatever became ready before (or while) we were not looking
            // raised no signal we will see: report it once, as epoll does.
            self.mark(fd, Self::interest_bits(interest));
        }
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let reg = *self.reg(fd)?;
        self.regs[fd as usize] = None;
        if reg.polled {
            let sfd = self.sfd.as_raw_fd();
            self.pollfds.retain(|p| p.fd == sfd || p.fd != fd);
            Ok(())
        } else {
            // Signals already queued for this fd may still arrive; they name
            // an fd that is unregistered (dropped) or reused (a spurious edge,
            // which a non-blocking read answers with EAGAIN).
            sio::disable_async(fd)
        }
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        self.drain_signals()?;
        let ms = if self.ready.is_empty() {
            timeout_ms(timeout)
        } else {
            0
        };
        let n = fs::poll(&mut self.pollfds, ms)?;
        if n > 0 {
            if self.pollfds[0].revents != 0 {
                self.drain_signals()?;
            }
            for i in 1..self.pollfds.len() {
                let p = self.pollfds[i];
                if p.revents != 0 {
                    let mut f = 0;
                    if p.revents & fs::POLLIN != 0 {
                        f |= Event::READABLE;
                    }
                    if p.revents & fs::POLLOUT != 0 {
                        f |= Event::WRITABLE;
                    }
                    if p.revents & (fs::POLLERR | fs::POLLNVAL) != 0 {
                        f |= Event::ERROR;
                    }
                    if p.revents & fs::POLLHUP != 0 {
                        f |= Event::HUP;
                    }
                    self.mark(p.fd, f);
                }
            }
        }
        for fd in self.ready.drain(..) {
            if let Some(Some(r)) = self.regs.get_mut(fd as usize) {
                let bits = std::mem::take(&mut r.pending);
                if bits != 0 {
                    events.push(Event::new(r.token, bits));
                }
            }
        }
        Ok(())
    }

    fn trigger(&self) -> Trigger {
        Trigger::Edge
    }

    /// Edge only (signals mark changes), and a batch of signals for one fd
    /// is folded into one event.
    fn caps(&self) -> Caps {
        Caps {
            edge: true,
            merges_notices: true,
            ..Caps::NONE
        }
    }

    fn name(&self) -> &'static str {
        "sigio"
    }
}
