//! poll(2): level-triggered, one pollfd per fd, an O(n) scan per wait.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{timeout_ms, Caps, Event, Interest, Poller, Token, Trigger};
use crate::sys::fdset::{self as fs, PollFd};

/// The poll(2) backend ([`PollerKind::Poll`](super::PollerKind::Poll)):
/// level-triggered, one `pollfd` per registered fd. Belongs to one loop's
/// thread.
#[derive(Default)]
pub struct Poll {
    fds: Vec<PollFd>,
    tokens: Vec<Token>,
    /// fd -> index into `fds` (u32::MAX when unregistered); fds are small
    /// integers, so a vector beats a hash map.
    index: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Poll {
    /// An empty poller. Allocates nothing and cannot fail.
    pub fn new() -> Poll {
        Poll::default()
    }

    fn slot(&self, fd: RawFd) -> Option<usize> {
        match self.index.get(fd as usize) {
            Some(&i) if i != NONE => Some(i as usize),
            _ => None,
        }
    }

    fn events(interest: Interest) -> i16 {
        let mut e = 0;
        if interest.is_readable() {
            e |= fs::POLLIN | fs::POLLRDHUP;
        }
        if interest.is_writable() {
            e |= fs::POLLOUT;
        }
        e
    }

    fn not_registered(fd: RawFd) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("poll: fd {fd} is not registered"),
        )
    }
}

impl Poller for Poll {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "poll: negative fd",
            ));
        }
        if self.slot(fd).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("poll: fd {fd} is already registered"),
            ));
        }
        if self.index.len() <= fd as usize {
            self.index.resize(fd as usize + 1, NONE);
        }
        self.index[fd as usize] = self.fds.len() as u32;
        self.fds.push(PollFd {
            fd,
            events: Self::events(interest),
            revents: 0,
        });
        self.tokens.push(token);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = self.slot(fd).ok_or_else(|| Self::not_registered(fd))?;
        self.fds[i].events = Self::events(interest);
        self.tokens[i] = token;
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.slot(fd).ok_or_else(|| Self::not_registered(fd))?;
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        self.index[fd as usize] = NONE;
        if let Some(moved) = self.fds.get(i) {
            self.index[moved.fd as usize] = i as u32;
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let mut n = fs::poll(&mut self.fds, timeout_ms(timeout))?;
        for (pfd, &token) in self.fds.iter().zip(&self.tokens) {
            if n == 0 {
                break;
            }
            let r = pfd.revents;
            if r == 0 {
                continue;
            }
            n -= 1;
            let mut f = 0;
            if r & (fs::POLLIN | fs::POLLPRI) != 0 {
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
            if r & fs::POLLRDHUP != 0 {
                f |= Event::READ_CLOSED;
            }
            events.push(Event::new(token, f));
        }
        Ok(())
    }

    fn trigger(&self) -> Trigger {
        Trigger::Level
    }

    fn name(&self) -> &'static str {
        "poll"
    }

    fn caps(&self) -> Caps {
        Caps {
            level: true,
            ..Caps::NONE
        }
    }
}
