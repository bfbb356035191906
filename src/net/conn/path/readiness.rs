//! The readiness path: the driver says a socket is readable or writable,
//! and the connection makes the system calls itself (`recv` into the
//! shared read buffer, `send`/`writev`/`sendfile` from the staging buffer
//! and the queue).
//!
//! Edge-triggered drivers report a change once, so this path keeps one bit
//! of its own: `recheck`, set when a read was deferred (paused, or the
//! budget spent) after the edge that announced the data was consumed.
//! Until a read sees EAGAIN or EOF, a short read then does not prove the
//! socket drained: the peer's FIN may be behind it and will not be
//! announced again.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};

use super::{Core, Input, IoPath};
use crate::poller::{Event, Interest, Token, Trigger};
use crate::reactor::{EventLoop, SourceId};
use crate::ring::Completion;
use crate::sys;

pub(crate) struct Readiness {
    recheck: bool,
    /// This event's reads: a short read means the socket is drained.
    short_read_drains: bool,
    /// A short read drained the socket: the next pull stops.
    drained: bool,
}

impl Readiness {
    /// Make `fd` known to the loop for `owner`/`sub`; returns the path and
    /// the fd's token. On failure nothing stays registered.
    pub(crate) fn open(
        el: &mut EventLoop,
        fd: RawFd,
        owner: SourceId,
        sub: u64,
    ) -> io::Result<(Self, Token)> {
        let interest = if el.trigger() == Trigger::Edge {
            // Registered once for both directions: no epoll_ctl per write.
            Interest::BOTH
        } else {
            Interest::READABLE
        };
        let token = el.register(fd, Some(interest), owner, sub)?;
        let path = Readiness {
            recheck: false,
            short_read_drains: false,
            drained: false,
        };
        Ok((path, token))
    }

    /// Send the staging buffer followed by `data` in one call, with nothing
    /// queued before them. Returns how much of `data` went out; an unsent
    /// staging remainder is queued.
    fn send_staged_and(
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: &[u8],
    ) -> usize {
        debug_assert!(core.out.is_none());
        let fd = core.fd.as_raw_fd();
        let n_staged = staged.len();
        let r = if n_staged == 0 {
            sys::socket::send(fd, data)
        } else if data.is_empty() {
            // The common case after a callback: plain send(2), cheaper than sendmsg.
            sys::socket::send(fd, staged)
        } else {
            sys::socket::sendv(fd, &[IoSlice::new(staged), IoSlice::new(data)])
        };
        let n = match r {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                core.fail(&e);
                staged.clear();
                return data.len();
            }
        };
        core.note_sent(el, n as u64);
        if n < n_staged {
            core.queue().push(&staged[n..]);
            staged.clear();
            return 0;
        }
        staged.clear();
        n - n_staged
    }
}

impl IoPath for Readiness {
    fn readable(&mut self, _core: &mut Core, el: &mut EventLoop, ev: Event) {
        // With the peer's FIN already reported, a short read does not mean
        // the socket is drained: the EOF is still to be read, and
        // edge-triggered mode will not report it again. Nor after a
        // deferred read (`recheck`), nor where notices merge (sigio).
        self.short_read_drains = !ev.is_read_closed() && !el.caps().merges_notices && !self.recheck;
        self.drained = false;
    }

    fn pull(&mut self, core: &mut Core, el: &mut EventLoop, rb: &mut Vec<u8>) -> Input {
        if self.drained || !core.reading() {
            return Input::Stop;
        }
        match sys::socket::recv_spare(core.fd.as_raw_fd(), rb) {
            Ok(0) => {
                self.recheck = false;
                Input::Eof
            }
            Ok(n) => {
                core.note_received(el, n as u64);
                // A short read drained the socket; a new arrival raises a
                // new event, in edge mode too.
                self.drained = n < rb.capacity() && self.short_read_drains;
                Input::Data
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.recheck = false;
                Input::Stop
            }
            Err(e) => {
                core.fail(&e);
                Input::Stop
            }
        }
    }

    fn budget_spent(&mut self, core: &mut Core, el: &mut EventLoop) {
        // Data may be left: let the others run first, then look again.
        if el.trigger() == Trigger::Edge {
            self.recheck = true;
            el.defer(core.token, Event::new(core.token, Event::READABLE));
        }
    }

    fn complete(
        &mut self,
        _core: &mut Core,
        el: &mut EventLoop,
        c: Completion,
        _rb: &mut Vec<u8>,
    ) -> Input {
        // Nothing on this path goes through the ring.
        el.release(c);
        Input::Stop
    }

    fn write_now(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: &[u8],
    ) {
        let sent = Self::send_staged_and(core, el, staged, data);
        if sent < data.len() {
            core.queue().push(&data[sent..]);
        }
    }

    fn write_vec_now(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: Vec<u8>,
    ) {
        let sent = Self::send_staged_and(core, el, staged, &data);
        if sent < data.len() {
            let rest = if sent == 0 {
                data
            } else {
                data[sent..].to_vec()
            };
            core.queue().push_vec(rest);
        }
    }

    fn flush_staged(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>) {
        if staged.is_empty() {
            return;
        }
        if core.is_closed() || core.doom.is_some() {
            staged.clear();
            return;
        }
        if let Some(out) = core.out.as_mut() {
            // The socket was full a moment ago: queue, and let the writable
            // event send it.
            out.push(staged);
            staged.clear();
            return;
        }
        Self::send_staged_and(core, el, staged, &[]);
    }

    fn flush(&mut self, core: &mut Core, el: &mut EventLoop) {
        let fd = core.fd.as_raw_fd();
        let Some(out) = core.out.as_mut() else { return };
        let mut written = 0u64;
        let mut failed = None;
        while out.len > 0 {
            match out.send_some(fd) {
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            core.fail(&e);
        }
        core.note_sent(el, written);
        core.release_drained();
    }

    fn resumed(&mut self, core: &mut Core, el: &mut EventLoop) {
        // Edge-triggered: data may have arrived meanwhile without a new
        // edge, so look at the socket next turn.
        if el.trigger() == Trigger::Edge {
            self.recheck = true;
            el.defer(core.token, Event::new(core.token, Event::READABLE));
        }
    }

    fn settle(&mut self, core: &mut Core, el: &mut EventLoop) -> io::Result<()> {
        let want = if el.trigger() == Trigger::Edge {
            Some(Interest::BOTH)
        } else {
            match (core.wants_read(), core.out.is_some()) {
                (true, true) => Some(Interest::BOTH),
                (true, false) => Some(Interest::READABLE),
                (false, true) => Some(Interest::WRITABLE),
                (false, false) => None,
            }
        };
        el.set_interest(core.token, want)
    }

    fn close(&mut self, _core: &mut Core, _el: &mut EventLoop) {}
}
