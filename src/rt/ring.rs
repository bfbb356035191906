//! Completion I/O for task streams on the io_uring proactor: the ring does
//! the `recv` and `send`, tasks copy bytes in and out of the stream's own
//! buffers.
//!
//! - **Reads.** A stream's first read that finds nothing arms one
//!   multishot recv on the loop's provided-buffer ring; each completion
//!   appends its bytes to the stream's `input` and wakes the reader. A read
//!   copies out of `input` into the caller's `&mut [u8]` (the borrowed-buffer
//!   API every `AsyncRead` user expects; the provided buffer goes back to
//!   the kernel at once, so an idle stream holds none). Past [`READ_CAP`]
//!   unread bytes the recv is cancelled, and armed again once a read takes
//!   the input below it: a task that stops reading holds a bounded amount.
//! - **The cancellation rule.** Bytes the kernel delivered belong to the
//!   stream, not to the read that was waiting: dropping a read future (a
//!   `timeout`, a `select!`) leaves them in `input` for the next read, so
//!   nothing is lost and nothing is reordered.
//! - **Writes** copy into the stream's `pending` buffer (up to [`WRITE_CAP`]
//!   counting the send in flight) and return at once; the buffer goes to the
//!   ring as one owned send after the poll, so a reply written by several
//!   `write` calls in one poll leaves in one send and one loop turn costs one
//!   `io_uring_enter` for every stream. A write finding no room waits (its
//!   deadline applies). The sends need nothing more from the task, so
//!   `flush` does not wait for them (as a readiness-path flush does not
//!   wait for the kernel's socket buffer to drain): making a task wait a
//!   loop turn for each completion would only add latency — hyper flushes
//!   after every response. A send error fails the next write or flush.
//! - **FIN after the data.** `shutdown(Write)` and `close` send FIN once
//!   what was written has gone. A stream dropped with output still queued
//!   lingers (its fd stays open, its slot names no task) until the output is
//!   sent or fails, or [`LINGER`] passes — as the kernel keeps sending an
//!   orphaned socket's buffer.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::task::Waker;
use std::time::Duration;

use crate::reactor::{EventLoop, TimerId};
use crate::ring::{Done, SendBuf, Uring};

/// Unread input past which the recv is cancelled.
pub(crate) const READ_CAP: usize = 64 * 1024;
/// Written bytes not yet sent (queued and in flight) past which writes wait.
pub(crate) const WRITE_CAP: usize = 64 * 1024;
/// How long a dropped stream's queued output may take to leave.
pub(crate) const LINGER: Duration = Duration::from_secs(10);
/// An emptied input buffer keeps at most this much capacity.
const KEEP: usize = 16 * 1024;

/// The loop's ring (a completion stream exists only on a proactor loop).
pub(crate) fn ring(el: &mut EventLoop) -> &mut Uring {
    el.ring()
        .expect("a task stream in completion mode on a loop without a ring")
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Fin {
    #[default]
    No,
    /// Send FIN once the output is gone.
    Wanted,
    Sent,
}

/// One stream's completion-mode state.
#[derive(Default)]
pub(crate) struct RingIo {
    /// Delivered bytes not yet read, from `head`.
    input: Vec<u8>,
    head: usize,
    eof: bool,
    read_err: Option<i32>,
    /// The recv should be armed (what the next sync asks of the ring).
    reading: bool,
    /// Written bytes not yet handed to the ring.
    pending: Vec<u8>,
    /// Bytes of the send in flight (0: none).
    in_flight: usize,
    /// A send the socket refused for want of room (old kernels): sent again
    /// when a one-shot poll says there is room.
    retry: Option<(SendBuf, usize)>,
    write_err: Option<i32>,
    fin: Fin,
    /// Opened on the ring (after the first sync).
    pub(crate) opened: bool,
    /// A sync is queued.
    pub(crate) queued: bool,
    /// Dropped by its owner with output queued: the linger timer.
    pub(crate) linger: Option<TimerId>,
    /// Per direction, the waker last woken: the next wait by the same task
    /// takes it back instead of cloning its own.
    woken: [Option<Waker>; 2],
}

/// What a read or write found: `result` (`None`: wait, leaving the waker)
/// and whether the ring must be told something (a sync).
pub(crate) struct Step<T> {
    pub(crate) result: Option<io::Result<T>>,
    pub(crate) sync: bool,
}

impl<T> Step<T> {
    fn done(r: io::Result<T>) -> Step<T> {
        Step {
            result: Some(r),
            sync: false,
        }
    }
}

impl RingIo {
    /// Leave `waker` in `slot` (the slot's waiter for direction `dir`).
    pub(crate) fn wait(&mut self, slot: &mut Option<Waker>, dir: usize, waker: &Waker) {
        if slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return;
        }
        *slot = match self.woken[dir].take() {
            Some(w) if w.will_wake(waker) => Some(w),
            _ => Some(waker.clone()),
        };
    }

    /// Wake `w`, the waiter for direction `dir`, and keep it for its next
    /// wait.
    pub(crate) fn woke(&mut self, dir: usize, w: Waker) {
        w.wake_by_ref();
        self.woken[dir] = Some(w);
    }

    fn unread(&self) -> usize {
        self.input.len() - self.head
    }

    /// Output not yet sent.
    pub(crate) fn has_output(&self) -> bool {
        self.write_err.is_none()
            && (self.in_flight > 0 || !self.pending.is_empty() || self.retry.is_some())
    }

    /// Hand delivered bytes to `take` (which copies what it has room for,
    /// `room` at most, and says how much); wait if there are none yet.
    pub(crate) fn read(&mut self, room: usize, take: impl FnOnce(&[u8]) -> usize) -> Step<usize> {
        if self.unread() > 0 {
            let end = self.head + room.min(self.unread());
            let n = take(&self.input[self.head..end]);
            self.head += n;
            if self.head == self.input.len() {
                self.input.clear();
                self.head = 0;
                if self.input.capacity() > KEEP {
                    self.input = Vec::new();
                }
            }
            // Paused at the cap: arm again once below it.
            let sync = !self.reading && self.read_open() && self.unread() < READ_CAP;
            self.reading |= sync;
            return Step {
                result: Some(Ok(n)),
                sync,
            };
        }
        if let Some(e) = self.read_err {
            return Step::done(Err(io::Error::from_raw_os_error(e)));
        }
        if self.eof || room == 0 {
            return Step::done(Ok(0));
        }
        let sync = !self.reading || !self.opened;
        self.reading = true;
        Step { result: None, sync }
    }

    fn read_open(&self) -> bool {
        !self.eof && self.read_err.is_none()
    }

    /// Queue `bufs` (as much as there is room for); `Wait` when full.
    pub(crate) fn write(&mut self, bufs: &[IoSlice<'_>]) -> Step<usize> {
        if let Some(e) = self.write_err {
            return Step::done(Err(io::Error::from_raw_os_error(e)));
        }
        if self.fin != Fin::No {
            return Step::done(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Step::done(Ok(0));
        }
        let queued =
            self.pending.len() + self.in_flight + self.retry.as_ref().map_or(0, |r| r.0.len());
        let mut room = WRITE_CAP.saturating_sub(queued);
        if room == 0 {
            return Step {
                result: None,
                sync: false,
            };
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room);
            self.pending.extend_from_slice(&b[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        Step {
            result: Some(Ok(n)),
            sync: self.wants_send(),
        }
    }

    /// Whether a sync would start a send now.
    pub(crate) fn wants_send(&self) -> bool {
        self.in_flight == 0 && self.retry.is_none() && !self.pending.is_empty()
    }

    /// A flush: the writes are the ring's already (they need nothing more
    /// from the task); only a send error seen so far is reported.
    pub(crate) fn flushed(&self) -> io::Result<()> {
        match self.write_err {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }

    /// Shut the write side after the output: true if FIN can go now.
    pub(crate) fn shutdown_write(&mut self) -> bool {
        if self.fin == Fin::Sent {
            return false;
        }
        if self.has_output() {
            self.fin = Fin::Wanted;
            false
        } else {
            self.fin = Fin::Sent;
            true
        }
    }

    /// The owner closed or dropped the stream: stop reading.
    pub(crate) fn stop_reading(&mut self) {
        self.reading = false;
    }

    /// Tell the ring what this stream wants: its recv armed or not, a send
    /// started.
    pub(crate) fn sync(&mut self, ring: &mut Uring, fd: RawFd) -> io::Result<()> {
        self.queued = false;
        ring.set_reading(fd, self.reading && self.read_open())?;
        if self.wants_send() {
            self.start_send(ring, fd);
        }
        Ok(())
    }

    fn start_send(&mut self, ring: &mut Uring, fd: RawFd) {
        let spare = ring.spare_buf();
        let buf = std::mem::replace(&mut self.pending, spare);
        self.send_from(ring, fd, buf.into(), 0);
    }

    /// Hand `buf[off..]` to the ring; false if it refused (the write has
    /// failed then).
    fn send_from(&mut self, ring: &mut Uring, fd: RawFd, buf: SendBuf, off: usize) -> bool {
        self.in_flight = buf.len() - off;
        match ring.send(fd, buf, off) {
            Ok(()) => true,
            Err(e) => {
                self.fail_write(ring, e.raw_os_error().unwrap_or(libc::EIO));
                false
            }
        }
    }

    /// A completion for this stream. Returns which directions' waiters to
    /// wake (read, write).
    pub(crate) fn complete(&mut self, ring: &mut Uring, fd: RawFd, done: Done) -> [bool; 2] {
        match done {
            Done::Recv { res, buf } => {
                if res > 0 {
                    if let Some(b) = buf {
                        if self.head > 0 && self.head >= self.input.len() / 2 {
                            self.input.drain(..self.head);
                            self.head = 0;
                        }
                        ring.take_recv(b, &mut self.input);
                    }
                } else if res == 0 {
                    self.eof = true;
                    self.reading = false;
                } else if res != -libc::ECANCELED {
                    self.read_err = Some(-res);
                    self.reading = false;
                }
                if self.reading && self.unread() >= READ_CAP {
                    self.reading = false;
                    let _ = ring.set_reading(fd, false);
                }
                [true, false]
            }
            Done::Send { res, buf, off } => {
                self.in_flight = 0;
                if res == -libc::EAGAIN {
                    // No room, and a kernel that does not wait for it.
                    self.in_flight = buf.len() - off;
                    self.retry = Some((buf, off));
                    if let Err(e) = ring.poll_writable(fd) {
                        self.fail_write(ring, e.raw_os_error().unwrap_or(libc::EIO));
                        return [false, true];
                    }
                    return [false, false];
                }
                if res <= 0 {
                    ring.recycle(buf);
                    self.fail_write(ring, if res == 0 { libc::EPIPE } else { -res });
                    return [false, true];
                }
                let sent = off + res as usize;
                if sent < buf.len() {
                    // The rest; the writer is woken only if that failed.
                    return [false, !self.send_from(ring, fd, buf, sent)];
                }
                ring.recycle(buf);
                self.sent_all(ring, fd);
                [false, true]
            }
            Done::Writable { res } => {
                let Some((buf, off)) = self.retry.take() else {
                    return [false, false];
                };
                if res < 0 {
                    ring.recycle(buf);
                    self.fail_write(ring, -res);
                    return [false, true];
                }
                [false, !self.send_from(ring, fd, buf, off)]
            }
        }
    }

    /// The send in flight finished: start the next, or send the FIN that
    /// waited for the output.
    fn sent_all(&mut self, ring: &mut Uring, fd: RawFd) {
        if !self.pending.is_empty() {
            self.start_send(ring, fd);
        } else if self.fin == Fin::Wanted {
            self.fin = Fin::Sent;
            let _ = crate::sys::socket::shutdown_write(fd);
        }
    }

    /// A send failed: nothing more goes out, and what was queued is let go.
    fn fail_write(&mut self, ring: &mut Uring, errno: i32) {
        self.write_err = Some(errno);
        self.in_flight = 0;
        ring.recycle(std::mem::take(&mut self.pending));
        if let Some((buf, _)) = self.retry.take() {
            ring.recycle(buf);
        }
    }
}
