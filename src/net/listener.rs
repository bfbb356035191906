//! A listening socket on a loop: accepts in batches, and pauses (instead of
//! spinning) when the process runs out of fds or memory.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::poller::{Event, Interest, Token, Trigger};
use crate::reactor::{EventLoop, SourceId};
use crate::sys;

/// Accepts per readiness event before letting other sources run.
const ACCEPT_BUDGET: usize = 64;

pub(crate) struct Listener {
    fd: Arc<OwnedFd>,
    token: Token,
    interest: Interest,
    pause: Duration,
    paused: bool,
    tcp: bool,
}

impl Listener {
    /// Watch `fd` for connections on behalf of `owner`/`sub`. `exclusive`:
    /// several loops watch this fd and one of them should be woken per
    /// connection, where the driver can do that.
    pub(crate) fn register(
        el: &mut EventLoop,
        fd: Arc<OwnedFd>,
        exclusive: bool,
        pause: Duration,
        owner: SourceId,
        sub: u64,
    ) -> io::Result<Listener> {
        let interest = if exclusive && el.caps().exclusive {
            Interest::READABLE.exclusive()
        } else {
            Interest::READABLE
        };
        let token = el.register(fd.as_raw_fd(), Some(interest), owner, sub)?;
        let tcp = sys::socket::local_addr(fd.as_raw_fd())
            .map(|a| a.as_socket().is_some())
            .unwrap_or(false);
        Ok(Listener {
            fd,
            token,
            interest,
            pause,
            paused: false,
            tcp,
        })
    }

    /// Whether this is a TCP listener (accepted sockets get TCP options).
    pub(crate) fn is_tcp(&self) -> bool {
        self.tcp
    }

    /// Accept up to a budget of connections (with their peers) into `out`. Returns how long to
    /// pause before [`Listener::resume`] when the process ran out of fds or
    /// memory (the connection stays in the accept queue meanwhile).
    pub(crate) fn accept(
        &mut self,
        el: &mut EventLoop,
        out: &mut Vec<(OwnedFd, socket2::SockAddr)>,
    ) -> Option<Duration> {
        if self.paused {
            return None;
        }
        for _ in 0..ACCEPT_BUDGET {
            match sys::socket::accept(self.fd.as_raw_fd()) {
                Ok(pair) => out.push(pair),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => match sys::errno_of(&e) {
                    // Out of fds or memory: the connection stays in the accept
                    // queue. Stop watching the listener (level-triggered would
                    // spin on it) and try again after a pause; the queue keeps
                    // new clients waiting rather than refused.
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        tracing::warn!("accept: {e}; pausing accepts for {:?}", self.pause);
                        self.paused = true;
                        let _ = el.set_interest(self.token, None);
                        return Some(self.pause);
                    }
                    // The peer gave up before we accepted: not our problem.
                    Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => continue,
                    _ => {
                        tracing::error!("accept: {e}");
                        return None;
                    }
                },
            }
        }
        if el.trigger() == Trigger::Edge {
            el.defer(self.token, Event::new(self.token, Event::READABLE));
        }
        None
    }

    /// Accept again after a pause.
    pub(crate) fn resume(&mut self, el: &mut EventLoop) {
        self.paused = false;
        // Exclusive registrations cannot be modified, only re-added.
        let _ = el.set_interest(self.token, Some(self.interest));
        tracing::info!("accepting again");
        // Look at the queue at once: edge-triggered won't report it again.
        el.defer(self.token, Event::new(self.token, Event::READABLE));
    }

    /// Stop watching; the socket closes when its last reference goes.
    pub(crate) fn close(&mut self, el: &mut EventLoop) {
        let _ = el.deregister(self.token);
    }
}
