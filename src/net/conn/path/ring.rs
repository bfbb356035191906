//! The completion path (io_uring proactor): the ring does the I/O and
//! reports what it did.
//!
//! - Reads: one multishot recv per connection draws from the loop's
//!   provided-buffer ring; each completion hands over bytes (or the EOF).
//! - Writes: the staged reply buffer itself goes to the ring (the table
//!   gets a spare in its place), one send in flight per connection, later
//!   writes queued behind it; `sendfile` chunks go out directly and wait
//!   for room with a one-shot poll.
//! - Pausing cancels the recv, but completions it had already posted still
//!   arrive: their bytes are kept in the core's input tail (`stashed`), and
//!   an EOF behind them is held (`eof_pending`) until reading resumes.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::{Core, Input, IoPath};
use crate::net::conn::out::Chunk;
use crate::net::conn::state::ReadState;
use crate::net::Buffer;
use crate::poller::{Event, Token};
use crate::reactor::{EventLoop, SourceId};
use crate::ring::{Completion, Done, RecvBuf, SendBuf, Uring};

/// The loop's ring: a connection on this path exists only on a completion
/// driver, so it is there.
fn ring(el: &mut EventLoop) -> &mut Uring {
    el.ring()
        .expect("a completion-path connection on a loop without a ring")
}

pub(crate) struct Ring {
    /// Input that arrived while reads were paused waits in `Core::input`.
    stashed: bool,
    /// The peer's EOF came behind stashed input; it is reported after it.
    eof_pending: bool,
}

impl Ring {
    /// Make `fd` known to the loop for `owner`/`sub`; returns the path and
    /// the fd's token. On failure nothing stays registered.
    pub(crate) fn open(
        el: &mut EventLoop,
        fd: RawFd,
        owner: SourceId,
        sub: u64,
    ) -> io::Result<(Self, Token)> {
        // Parked: reads are armed on the ring by the first settle.
        let token = el.register(fd, None, owner, sub)?;
        if let Err(e) = ring(el).open_stream(fd, token) {
            let _ = el.deregister(token);
            return Err(e);
        }
        let path = Ring {
            stashed: false,
            eof_pending: false,
        };
        Ok((path, token))
    }

    /// Unless an operation is in flight, start the next send (or sendfile
    /// until the socket is full, then wait for room). An emptied queue
    /// completes the write.
    fn pump(core: &mut Core, el: &mut EventLoop) {
        let fd = core.fd.as_raw_fd();
        let Some(out) = core.out.as_mut() else { return };
        let mut written = 0u64;
        let mut failed = None;
        while !out.busy {
            let r = match out.chunks.front() {
                None => break,
                Some(Chunk::File { .. }) => match out.send_some(fd) {
                    Ok(n) => {
                        written += n as u64;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => ring(el).poll_writable(fd),
                    Err(e) => Err(e),
                },
                Some(Chunk::Bytes(_) | Chunk::Shared(_)) => {
                    let buf = match out.chunks.pop_front() {
                        Some(Chunk::Bytes(b)) => SendBuf::Owned(b),
                        Some(Chunk::Shared(s)) => SendBuf::Shared(s),
                        _ => unreachable!(),
                    };
                    let off = std::mem::take(&mut out.head);
                    if off >= buf.len() {
                        ring(el).recycle(buf);
                        continue;
                    }
                    ring(el).send(fd, buf, off)
                }
            };
            match r {
                Ok(()) => out.busy = true,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            return core.fail(&e);
        }
        core.note_sent(el, written);
        core.release_drained();
    }

    /// A send finished.
    fn sent(core: &mut Core, el: &mut EventLoop, res: i32, buf: SendBuf, off: usize) {
        let fd = core.fd.as_raw_fd();
        let Some(out) = core.out.as_mut() else {
            return ring(el).recycle(buf);
        };
        out.busy = false;
        if res == -libc::EAGAIN {
            // An old kernel that does not wait for room itself.
            out.chunks.push_front(match buf {
                SendBuf::Owned(b) => Chunk::Bytes(b),
                SendBuf::Shared(s) => Chunk::Shared(s),
            });
            out.head = off;
            match ring(el).poll_writable(fd) {
                Ok(()) => out.busy = true,
                Err(e) => core.fail(&e),
            }
            return;
        }
        if res <= 0 {
            let e = if res == 0 {
                io::Error::new(io::ErrorKind::WriteZero, "send made no progress")
            } else {
                io::Error::from_raw_os_error(-res)
            };
            core.fail(&e);
            return ring(el).recycle(buf);
        }
        let n = res as usize;
        out.len -= n;
        core.note_sent(el, n as u64);
        let out = core
            .out
            .as_mut()
            .expect("a queue while a send is in flight");
        if off + n < buf.len() {
            match ring(el).send(fd, buf, off + n) {
                Ok(()) => out.busy = true,
                Err(e) => core.fail(&e),
            }
            return;
        }
        ring(el).recycle(buf);
        Self::pump(core, el);
    }

    /// A recv completion (see [`Done::Recv`]).
    fn received(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        res: i32,
        buf: Option<RecvBuf>,
        rb: &mut Vec<u8>,
    ) -> Input {
        if core.read == ReadState::Eof || self.eof_pending {
            // A re-armed recv behind an EOF already seen.
            if let Some(buf) = buf {
                ring(el).take_recv(buf, rb);
                rb.clear();
            }
            return Input::Stop;
        }
        if res == 0 {
            if self.stashed {
                self.eof_pending = true;
                return Input::Stop;
            }
            return Input::Eof;
        }
        if res < 0 {
            core.fail(&io::Error::from_raw_os_error(-res));
            return Input::Stop;
        }
        let Some(buf) = buf else {
            core.fail(&io::Error::other(
                "io_uring: recv completion without a buffer",
            ));
            return Input::Stop;
        };
        ring(el).take_recv(buf, rb);
        core.note_received(el, rb.len() as u64);
        if core.is_closing() {
            // Closing: input is read only to be discarded (the core counts
            // it against the closing budget).
            return Input::Data;
        }
        if core.read == ReadState::Paused {
            core.input
                .get_or_insert_with(|| Box::new(Buffer::new()))
                .extend_from_slice(rb);
            rb.clear();
            self.stashed = true;
            return Input::Stop;
        }
        self.stashed = false;
        Input::Data
    }
}

impl IoPath for Ring {
    fn readable(&mut self, _core: &mut Core, _el: &mut EventLoop, _ev: Event) {}

    /// Only deferred events pull (after `resume_read`): hand over what was
    /// stashed, then the EOF behind it (even if the handler paused again:
    /// the EOF has already been read).
    fn pull(&mut self, core: &mut Core, _el: &mut EventLoop, _rb: &mut Vec<u8>) -> Input {
        if self.stashed {
            if core.input.is_none() {
                // The core handed the stash over already (kept input comes
                // again on resume, whatever the path).
                self.stashed = false;
            } else if core.read == ReadState::Paused {
                return Input::Stop;
            } else {
                self.stashed = false;
                return Input::Tail;
            }
        }
        if self.eof_pending {
            self.eof_pending = false;
            return Input::Eof;
        }
        Input::Stop
    }

    fn budget_spent(&mut self, _core: &mut Core, _el: &mut EventLoop) {}

    fn complete(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        c: Completion,
        rb: &mut Vec<u8>,
    ) -> Input {
        match c.done {
            Done::Recv { res, buf } => return self.received(core, el, res, buf, rb),
            Done::Send { res, buf, off } => Self::sent(core, el, res, buf, off),
            Done::Writable { res } => {
                if let Some(out) = core.out.as_mut() {
                    out.busy = false;
                }
                if res < 0 {
                    core.fail(&io::Error::from_raw_os_error(-res));
                } else {
                    Self::pump(core, el);
                }
            }
        }
        Input::Stop
    }

    fn write_now(
        &mut self,
        _core: &mut Core,
        _el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: &[u8],
    ) {
        // One buffer to the ring after the callback: no send from here.
        staged.extend_from_slice(data);
    }

    fn write_vec_now(
        &mut self,
        core: &mut Core,
        _el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: Vec<u8>,
    ) {
        // Queue it without a copy, behind what this callback staged.
        let out = core.queue();
        out.push(staged);
        staged.clear();
        out.push_vec(data);
    }

    /// Queue what the callback staged and start sending. With nothing
    /// pending, the staging buffer itself goes to the ring (a spare takes
    /// its place), so a reply is not copied again.
    fn flush_staged(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>) {
        if core.is_closed() || core.doom.is_some() {
            staged.clear();
            return;
        }
        if !staged.is_empty() {
            match core.out.as_mut() {
                Some(out) => {
                    out.push(staged);
                    staged.clear();
                }
                None => {
                    let spare = ring(el).spare_buf();
                    let buf = std::mem::replace(staged, spare);
                    let out = core.queue();
                    out.len = buf.len();
                    out.chunks.push_back(Chunk::Bytes(buf));
                }
            }
        }
        Self::pump(core, el);
    }

    fn flush(&mut self, core: &mut Core, el: &mut EventLoop) {
        Self::pump(core, el);
    }

    fn resumed(&mut self, core: &mut Core, el: &mut EventLoop) {
        // Hand over what the cancelled recv took, next turn.
        if self.stashed || self.eof_pending {
            el.defer(core.token, Event::new(core.token, Event::READABLE));
        }
    }

    fn settle(&mut self, core: &mut Core, el: &mut EventLoop) -> io::Result<()> {
        let read = core.wants_read() && !self.eof_pending;
        ring(el).set_reading(core.fd.as_raw_fd(), read)
    }

    fn close(&mut self, core: &mut Core, el: &mut EventLoop) {
        let _ = ring(el).close_stream(core.fd.as_raw_fd());
    }
}
