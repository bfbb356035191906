//! A listening socket on a loop: accepts in batches, and pauses (instead of
//! spinning) when the process runs out of fds or memory, or when the server
//! holds as many connections as its cap allows (see `limit.rs`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::limit::{ConnLimit, Permit};
use crate::poller::{Event, Interest, Token, Trigger};
use crate::reactor::{EventLoop, SourceId};
use crate::sys;

/// Accepts per readiness event before letting other sources run.
const ACCEPT_BUDGET: usize = 64;

/// One accepted connection: its socket, its peer, and its place under the
/// server's cap (none without a cap).
pub(crate) struct Accepted {
    pub(crate) fd: OwnedFd,
    pub(crate) peer: socket2::SockAddr,
    pub(crate) permit: Option<Permit>,
}

pub(crate) struct Listener {
    fd: Arc<OwnedFd>,
    token: Token,
    interest: Interest,
    pause: Duration,
    paused: bool,
    /// Paused at the connection cap (woken by the limit, not a timer).
    capped: bool,
    /// Deregistered: never watched again.
    closed: bool,
    limit: Option<Arc<ConnLimit>>,
    owner: SourceId,
    tcp: bool,
}

impl Listener {
    /// Watch `fd` for connections on behalf of `owner`/`sub`. `exclusive`:
    /// several loops watch this fd and one of them should be woken per
    /// connection, where the driver can do that. `limit`: the server's cap;
    /// at the cap the listener pauses and `owner` is notified when there is
    /// room (its `notify` then calls [`Listener::uncap`]).
    pub(crate) fn register(
        el: &mut EventLoop,
        fd: Arc<OwnedFd>,
        exclusive: bool,
        pause: Duration,
        limit: Option<Arc<ConnLimit>>,
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
            capped: false,
            closed: false,
            limit,
            owner,
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
        out: &mut Vec<Accepted>,
    ) -> Option<Duration> {
        if self.paused {
            return None;
        }
        for _ in 0..ACCEPT_BUDGET {
            let permit = match &self.limit {
                None => None,
                Some(limit) => match limit.acquire() {
                    Some(p) => Some(p),
                    // Room came back meanwhile: try again.
                    None if limit.wait(el.handle(), self.owner) => continue,
                    None => {
                        self.capped = true;
                        self.stop_watching(el);
                        return None;
                    }
                },
            };
            match sys::socket::accept(self.fd.as_raw_fd()) {
                Ok((fd, peer)) => out.push(Accepted { fd, peer, permit }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => match count_accept_error(el, &e) {
                    // Out of fds or memory: the connection stays in the accept
                    // queue. Stop watching the listener (level-triggered would
                    // spin on it) and try again after a pause; the queue keeps
                    // new clients waiting rather than refused.
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        tracing::warn!("accept: {e}; pausing accepts for {:?}", self.pause);
                        self.stop_watching(el);
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

    fn stop_watching(&mut self, el: &mut EventLoop) {
        self.paused = true;
        let _ = el.set_interest(self.token, None);
    }

    /// Accept again if the listener paused at the connection cap (the
    /// limit woke its owner: a connection closed).
    pub(crate) fn uncap(&mut self, el: &mut EventLoop) {
        if self.capped {
            self.capped = false;
            self.resume(el);
        }
    }

    /// Accept again after a pause.
    pub(crate) fn resume(&mut self, el: &mut EventLoop) {
        if self.closed {
            return;
        }
        self.paused = false;
        // Exclusive registrations cannot be modified, only re-added.
        let _ = el.set_interest(self.token, Some(self.interest));
        tracing::debug!("accepting again");
        // Look at the queue at once: edge-triggered won't report it again.
        el.defer(self.token, Event::new(self.token, Event::READABLE));
    }

    /// Stop watching; the socket closes when its last reference goes.
    pub(crate) fn close(&mut self, el: &mut EventLoop) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        self.paused = true;
        let _ = el.deregister(self.token);
    }
}

/// Count a failed accept in the loop's counters (slot as in
/// `net::metrics::ACCEPT_ERRORS`); returns its errno.
fn count_accept_error(el: &EventLoop, e: &io::Error) -> Option<i32> {
    let errno = sys::errno_of(e);
    let slot = match errno {
        Some(libc::EMFILE) => 0,
        Some(libc::ENFILE) => 1,
        Some(libc::ENOBUFS | libc::ENOMEM) => 2,
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => 3,
        _ => 4,
    };
    crate::reactor::LoopStats::add(&el.stats().accept_errors[slot], 1);
    errno
}
