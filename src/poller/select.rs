//! select(2): level-triggered, bitmaps of at most FD_SETSIZE (1024) fds and an
//! O(max fd) scan per wait. An fd at or above FD_SETSIZE is refused with an
//! error at registration; writing it into an fd_set would be undefined behaviour.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{Caps, Event, Interest, Poller, Token, Trigger};
use crate::sys::fdset::{self as fs, FdSet};

/// The select(2) backend ([`PollerKind::Select`](super::PollerKind::Select)):
/// level-triggered, fds below FD_SETSIZE (1024) only; `register` refuses
/// any other fd with an error. Belongs to one loop's thread.
#[derive(Default)]
pub struct Select {
    read: FdSet,
    write: FdSet,
    /// fd -> token and interest of registered fds.
    slots: Vec<Option<(Token, Interest)>>,
    /// Registered fds, so a wait scans only those.
    fds: Vec<RawFd>,
}

impl Select {
    /// An empty poller. Cannot fail.
    pub fn new() -> Select {
        Select::default()
    }

    fn set(&mut self, fd: RawFd, interest: Interest) -> io::Result<()> {
        if interest.is_readable() {
            self.read.insert(fd)?;
        } else {
            self.read.remove(fd);
        }
        if interest.is_writable() {
            self.write.insert(fd)?;
        } else {
            self.write.remove(fd);
        }
        Ok(())
    }

    fn not_registered(fd: RawFd) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("select: fd {fd} is not registered"),
        )
    }
}

impl Poller for Select {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        // Checks 0 <= fd < FD_SETSIZE before touching anything.
        FdSet::default().insert(fd)?;
        if matches!(self.slots.get(fd as usize), Some(Some(_))) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("select: fd {fd} is already registered"),
            ));
        }
        self.set(fd, interest)?;
        if self.slots.len() <= fd as usize {
            self.slots.resize(fd as usize + 1, None);
        }
        self.slots[fd as usize] = Some((token, interest));
        self.fds.push(fd);
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        match self.slots.get_mut(fd as usize) {
            Some(Some(slot)) => *slot = (token, interest),
            _ => return Err(Self::not_registered(fd)),
        }
        self.set(fd, interest)
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        match self.slots.get_mut(fd as usize) {
            Some(slot @ Some(_)) => *slot = None,
            _ => return Err(Self::not_registered(fd)),
        }
        self.read.remove(fd);
        self.write.remove(fd);
        if let Some(i) = self.fds.iter().position(|&f| f == fd) {
            self.fds.swap_remove(i);
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let (mut r, mut w) = (self.read, self.write);
        let mut x = FdSet::default();
        let nfds = self.fds.iter().copied().max().map_or(0, |m| m + 1);
        let n = fs::select(nfds, &mut r, &mut w, &mut x, timeout)?;
        if n == 0 {
            return Ok(());
        }
        for &fd in &self.fds {
            let mut f = 0;
            if r.contains(fd) {
                f |= Event::READABLE;
            }
            if w.contains(fd) {
                f |= Event::WRITABLE;
            }
            if f != 0 {
                if let Some(Some((token, _))) = self.slots.get(fd as usize) {
                    events.push(Event::new(*token, f));
                }
            }
        }
        Ok(())
    }

    fn trigger(&self) -> Trigger {
        Trigger::Level
    }

    fn name(&self) -> &'static str {
        "select"
    }

    fn caps(&self) -> Caps {
        Caps {
            level: true,
            ..Caps::NONE
        }
    }
}
