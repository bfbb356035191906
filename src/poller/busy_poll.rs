//! Busy polling: the baseline that never sleeps.
//!
//! Every `wait` reports every registered connection as ready for its whole
//! interest and returns at once, so the loop spins through its sockets,
//! reading each in turn whether or not anything arrived (most reads end in
//! EAGAIN). Latency is as low as a loop turn, and the price is a full CPU
//! core at 100% for as long as one connection is open — which is exactly
//! what this backend exists to show.
//!
//! Listeners and non-socket fds (the loop's waker eventfd) are "passive":
//! they are checked with one zero-timeout poll(2) per turn instead of being
//! reported ready (an accept or an eventfd read that fails every turn would
//! cost two syscalls, not one). When only passive fds are registered (an
//! idle server before its first connection) `wait` blocks in that poll(2)
//! with the caller's timeout, so an idle server does not spin.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{timeout_ms, Caps, Event, Interest, Poller, Token, Trigger};
use crate::sys::fdset::{self as fs, PollFd};
use crate::sys::sigio::{fd_kind, FdKind};

#[derive(Clone, Copy)]
struct Entry {
    fd: RawFd,
    token: Token,
    interest: Interest,
}

/// Where a registered fd lives: `(passive?, index)`.
type Slot = Option<(bool, u32)>;

/// The busy-polling backend ([`PollerKind::BusyPoll`](super::PollerKind::BusyPoll)):
/// level-triggered, never sleeps while a connection is registered (see the
/// module docs). Belongs to one loop's thread.
#[derive(Default)]
pub struct BusyPoll {
    /// Connections: reported ready on every wait.
    spin: Vec<Entry>,
    /// Listeners and wakers: checked with poll(2).
    passive: Vec<PollFd>,
    passive_tokens: Vec<Token>,
    /// fd -> slot; fds are small integers, so a vector beats a hash map.
    index: Vec<Slot>,
}

impl BusyPoll {
    /// An empty poller. Allocates nothing and cannot fail.
    pub fn new() -> BusyPoll {
        BusyPoll::default()
    }

    fn slot(&self, fd: RawFd) -> Slot {
        self.index.get(fd as usize).copied().flatten()
    }

    fn poll_events(interest: Interest) -> i16 {
        let mut e = 0;
        if interest.is_readable() {
            e |= fs::POLLIN;
        }
        if interest.is_writable() {
            e |= fs::POLLOUT;
        }
        e
    }

    fn not_registered(fd: RawFd) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("busy-poll: fd {fd} is not registered"),
        )
    }
}

impl Poller for BusyPoll {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "busy-poll: negative fd",
            ));
        }
        if self.slot(fd).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("busy-poll: fd {fd} is already registered"),
            ));
        }
        let passive = match fd_kind(fd)? {
            FdKind::Listener | FdKind::Other => true,
            FdKind::Socket | FdKind::Fifo => false,
            FdKind::File => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("busy-poll: fd {fd} is a regular file or directory (always ready; read it directly)"),
                ))
            }
        };
        if self.index.len() <= fd as usize {
            self.index.resize(fd as usize + 1, None);
        }
        if passive {
            self.index[fd as usize] = Some((true, self.passive.len() as u32));
            self.passive.push(PollFd {
                fd,
                events: Self::poll_events(interest),
                revents: 0,
            });
            self.passive_tokens.push(token);
        } else {
            self.index[fd as usize] = Some((false, self.spin.len() as u32));
            self.spin.push(Entry {
                fd,
                token,
                interest,
            });
        }
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        match self.slot(fd) {
            Some((true, i)) => {
                self.passive[i as usize].events = Self::poll_events(interest);
                self.passive_tokens[i as usize] = token;
            }
            Some((false, i)) => {
                self.spin[i as usize] = Entry {
                    fd,
                    token,
                    interest,
                }
            }
            None => return Err(Self::not_registered(fd)),
        }
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let (passive, i) = self.slot(fd).ok_or_else(|| Self::not_registered(fd))?;
        let i = i as usize;
        self.index[fd as usize] = None;
        let moved = if passive {
            self.passive.swap_remove(i);
            self.passive_tokens.swap_remove(i);
            self.passive.get(i).map(|p| p.fd)
        } else {
            self.spin.swap_remove(i);
            self.spin.get(i).map(|e| e.fd)
        };
        if let Some(m) = moved {
            self.index[m as usize] = Some((passive, i as u32));
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // Never sleep while a connection is open: that is the model.
        let wait_ms = if self.spin.is_empty() {
            timeout_ms(timeout)
        } else {
            0
        };
        if !self.passive.is_empty() || wait_ms != 0 {
            let mut n = fs::poll(&mut self.passive, wait_ms)?;
            for (pfd, &token) in self.passive.iter().zip(&self.passive_tokens) {
                if n == 0 {
                    break;
                }
                let r = pfd.revents;
                if r == 0 {
                    continue;
                }
                n -= 1;
                let mut f = 0;
                if r & fs::POLLIN != 0 {
                    f |= Event::READABLE;
                }
                if r & fs::POLLOUT != 0 {
                    f |= Event::WRITABLE;
                }
                if r & (fs::POLLERR | fs::POLLNVAL) != 0 {
                    f |= Event::ERROR;
                }
                if r & fs::POLLHUP != 0 {
                    f |= Event::HUP;
                }
                events.push(Event::new(token, f));
            }
        }
        for e in &self.spin {
            let mut f = 0;
            if e.interest.is_readable() {
                f |= Event::READABLE;
            }
            if e.interest.is_writable() {
                f |= Event::WRITABLE;
            }
            events.push(Event::new(e.token, f));
        }
        Ok(())
    }

    fn trigger(&self) -> Trigger {
        Trigger::Level
    }

    fn name(&self) -> &'static str {
        "busy-poll"
    }

    fn caps(&self) -> Caps {
        Caps {
            level: true,
            ..Caps::NONE
        }
    }
}
