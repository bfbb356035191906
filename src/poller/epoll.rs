//! epoll(7), level- or edge-triggered.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{timeout_ms, Caps, Event, Interest, Poller, Token, Trigger};
use crate::sys::epoll as ep;

/// The epoll(7) backend ([`PollerKind::Epoll`](super::PollerKind::Epoll)):
/// one epoll instance, level- or edge-triggered for all its fds, with
/// EPOLLEXCLUSIVE for [`Interest::exclusive`]. Belongs to one loop's thread.
pub struct Epoll {
    epfd: OwnedFd,
    trigger: Trigger,
    /// Reused across waits: grown when a wait fills it, shrunk when it stays
    /// mostly empty, so a burst does not pin memory forever.
    buf: Vec<ep::EpollEvent>,
    small_waits: u32,
}

const MIN_EVENTS: usize = 256;
const MAX_EVENTS: usize = 8192;

impl Epoll {
    /// Create the epoll instance (`epoll_create1(EPOLL_CLOEXEC)`), delivering
    /// `trigger` for every fd. Errors are those of `epoll_create1`, e.g.
    /// EMFILE when the process is out of file descriptors.
    pub fn new(trigger: Trigger) -> io::Result<Epoll> {
        Ok(Epoll {
            epfd: ep::create()?,
            trigger,
            buf: Vec::with_capacity(MIN_EVENTS),
            small_waits: 0,
        })
    }

    fn flags(&self, interest: Interest) -> u32 {
        let mut f = 0;
        if interest.is_readable() {
            f |= (ep::EPOLLIN | ep::EPOLLRDHUP) as u32;
        }
        if interest.is_writable() {
            f |= ep::EPOLLOUT as u32;
        }
        if self.trigger == Trigger::Edge {
            f |= ep::EPOLLET as u32;
        }
        f
    }

    fn explain(err: io::Error, fd: RawFd) -> io::Error {
        if crate::sys::errno_of(&err) == Some(libc::EPERM) {
            return io::Error::new(
                io::ErrorKind::Unsupported,
                format!("epoll cannot watch fd {fd}: it does not support polling (a regular file or directory is always ready; read it directly)"),
            );
        }
        err
    }
}

impl Poller for Epoll {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let mut flags = self.flags(interest);
        if interest.is_exclusive() {
            // EPOLLEXCLUSIVE admits only IN, OUT, ET and WAKEUP beside it.
            flags &= !(ep::EPOLLRDHUP as u32);
            flags |= ep::EPOLLEXCLUSIVE as u32;
        }
        ep::ctl(
            self.epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            flags,
            token.0,
        )
        .map_err(|e| Self::explain(e, fd))
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        ep::ctl(
            self.epfd.as_raw_fd(),
            libc::EPOLL_CTL_MOD,
            fd,
            self.flags(interest),
            token.0,
        )
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        ep::ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let n = ep::wait(self.epfd.as_raw_fd(), &mut self.buf, timeout_ms(timeout))?;
        for e in &self.buf[..n] {
            let bits = e.events;
            let mut f = 0;
            if bits & (ep::EPOLLIN | ep::EPOLLPRI) as u32 != 0 {
                f |= Event::READABLE;
            }
            if bits & ep::EPOLLOUT as u32 != 0 {
                f |= Event::WRITABLE;
            }
            if bits & ep::EPOLLERR as u32 != 0 {
                f |= Event::ERROR;
            }
            if bits & ep::EPOLLHUP as u32 != 0 {
                f |= Event::HUP;
            }
            if bits & ep::EPOLLRDHUP as u32 != 0 {
                f |= Event::READ_CLOSED;
            }
            events.push(Event::new(Token(e.u64), f));
        }
        let cap = self.buf.capacity();
        if n == cap && cap < MAX_EVENTS {
            self.buf.reserve_exact(cap);
            self.small_waits = 0;
        } else if n < cap / 4 && cap > MIN_EVENTS {
            self.small_waits += 1;
            if self.small_waits > 1024 {
                self.buf.shrink_to(cap / 2);
                self.small_waits = 0;
            }
        }
        Ok(())
    }

    fn trigger(&self) -> Trigger {
        self.trigger
    }

    fn caps(&self) -> Caps {
        Caps {
            level: true,
            edge: true,
            exclusive: true,
            close_deregisters: true,
            ..Caps::NONE
        }
    }

    fn name(&self) -> &'static str {
        match self.trigger {
            Trigger::Level => "epoll-lt",
            Trigger::Edge => "epoll-et",
        }
    }
}
