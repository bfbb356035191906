//! io_uring as a completion engine for stream connections (the proactor
//! model): the kernel does the `recv` and `send` and posts their results,
//! so a loop turn that moves data on many connections costs one
//! `io_uring_enter` instead of a system call per read and per write.
//!
//! - **Reads** are one multishot `IORING_OP_RECV` per connection, drawing
//!   from a ring of provided buffers shared by the loop. Each completion
//!   names the buffer its bytes are in; the connection copies them out and a
//!   finished buffer goes straight back to the ring, so an idle connection
//!   holds no buffer, in user space or in the kernel. On Linux 6.12+ the
//!   buffers are consumed incrementally (`IOU_PBUF_RING_INC`, 64 × 64 KiB):
//!   a completion takes only the bytes it carries and the next continues
//!   behind it, so thousands of small messages share one buffer, written
//!   sequentially (cache-friendly). Older kernels take a whole buffer per
//!   completion (256 × 16 KiB). When the ring runs dry the kernel ends the
//!   recv with `ENOBUFS`; the ring itself re-arms such starved recvs at the
//!   next wait, a bounded number per turn, so ten thousand connections
//!   cannot turn a dry ring into a storm of failing re-arms.
//! - **Writes** hand a [`SendBuf`] to the ring — an owned `Vec`, or shared
//!   bytes (`Arc`) that many connections send at once without a copy — and
//!   the ring holds it until the send's completion gives it back (with how
//!   much went out). One send per
//!   connection is in flight; what is written meanwhile queues behind it.
//! - A connection that must wait for room without a send in flight (a
//!   sendfile(2) that would block) arms a one-shot `POLLOUT`.
//!
//! Memory the kernel may touch is never freed under it: a send buffer stays
//! in its connection's slot, or in `retired` after the connection closed,
//! until the send's own completion arrives; the provided buffers live as
//! long as the ring, and dropping the ring first cancels every operation
//! and waits for the cancellations (see `Proactor::quiesce`).
//!
//! Operations carry this user_data (bit 62 tells them from polls, whose
//! fd half is below 2^30):
//!
//! ```text
//!  63 62 61 60 59            32 31           8 7      0
//! +--+--+-----+----------------+--------------+--------+
//! | 0| 1| kind|       fd       |    epoch     |  arm   |
//! +--+--+-----+----------------+--------------+--------+
//! ```
//!
//! The fd's epoch changes when its connection closes, so completions of a
//! closed connection are recognised after the fd number is reused. `arm`
//! counts the recvs armed for one connection: a recv cancelled by
//! `set_reading(false)` may still post data (which belongs to the
//! connection and is delivered), but its end must not be taken for the end
//! of a newer recv.

use std::alloc::{self, Layout};
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, types};

use super::{Uring, REMOVAL};
use crate::poller::Token;

/// Provided buffers consumed incrementally (a power of two, and their size:
/// also the most one recv completion carries).
const INC_COUNT: u16 = 64;
const INC_SIZE: usize = 64 * 1024;
/// Provided buffers taken whole by each completion (kernels before 6.12).
const WHOLE_COUNT: u16 = 256;
const WHOLE_SIZE: usize = 16 * 1024;
/// `IOU_PBUF_RING_INC` (Linux 6.12).
const PBUF_RING_INC: u16 = 2;
/// The buffer group of the loop's ring.
const BGID: u16 = 0;
/// Send buffers kept for reuse.
const POOL_MAX: usize = 64;

const OP: u64 = 1 << 62;
const EPOCH_MASK: u32 = 0xff_ffff;

/// Whether `user_data` belongs to an operation (not a poll or a removal).
pub(super) const fn is_op(user_data: u64) -> bool {
    user_data != REMOVAL && user_data & OP != 0
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Recv = 0,
    Send = 1,
    Writable = 2,
}

fn op_data(kind: Kind, fd: RawFd, epoch: u32, arm: u8) -> u64 {
    OP | (kind as u64) << 60 | (fd as u64) << 32 | ((epoch & EPOCH_MASK) as u64) << 8 | arm as u64
}

/// What finished.
pub enum Done {
    /// `res` bytes arrived in `buf` (`res > 0`), the peer closed its side
    /// (`res == 0`), or the recv failed (`-errno`). Whatever happens to the
    /// data, `buf` must go back with [`Uring::take_recv`] or
    /// [`Uring::release`]. (A dry buffer ring is handled by the ring itself.)
    Recv {
        /// Bytes received (`> 0`), 0 at end of stream, or `-errno`.
        res: i32,
        /// Where the bytes are when `res > 0` (always `None` otherwise).
        /// Read it with [`Uring::take_recv`].
        buf: Option<RecvBuf>,
    },
    /// A send from `buf[off..]` moved `res` bytes (or failed, `-errno`); the
    /// buffer comes back to its owner.
    Send {
        /// Bytes sent from `buf[off..]` (possibly fewer than were left), or
        /// `-errno` (e.g. `-EPIPE`, `-ECONNRESET`; never SIGPIPE).
        res: i32,
        /// The buffer given to [`Uring::send`], unchanged; send the rest
        /// from `off + res` or hand it to [`Uring::recycle`].
        buf: SendBuf,
        /// Where the send started in `buf`, as given to [`Uring::send`].
        off: usize,
    },
    /// The socket has room (or `-errno`).
    Writable {
        /// The poll(2) events that fired (`POLLOUT`, possibly with
        /// `POLLERR`/`POLLHUP`), or `-errno`.
        res: i32,
    },
}

impl std::fmt::Debug for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Recv { res, buf } => write!(f, "Recv {{ res: {res}, buf: {buf:?} }}"),
            // The bytes would drown the rest.
            Done::Send { res, buf, off } => {
                write!(
                    f,
                    "Send {{ res: {res}, buf: {} bytes, off: {off} }}",
                    buf.len()
                )
            }
            Done::Writable { res } => write!(f, "Writable {{ res: {res} }}"),
        }
    }
}

/// The bytes of a send: the ring holds them until the send completes.
pub enum SendBuf {
    /// A buffer of this connection's own (recycled afterwards).
    Owned(Vec<u8>),
    /// Bytes shared with others (a stored value many replies carry): held,
    /// never written, so the kernel may read them while others do.
    Shared(Arc<dyn AsRef<[u8]> + Send + Sync>),
}

impl SendBuf {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SendBuf::Owned(v) => v,
            SendBuf::Shared(s) => (**s).as_ref(),
        }
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True if there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<u8>> for SendBuf {
    fn from(v: Vec<u8>) -> SendBuf {
        SendBuf::Owned(v)
    }
}

/// Where a recv completion's bytes are in the loop's provided buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvBuf {
    bid: u16,
    off: u32,
    len: u32,
    /// The kernel is done with the buffer: it goes back once read.
    last: bool,
}

/// An operation's result, for the source registered under `token`.
#[derive(Debug)]
pub struct Completion {
    /// The token the connection was opened with ([`Uring::open_stream`]).
    pub token: Token,
    /// What finished, and its result.
    pub done: Done,
}

/// One connection's operations.
#[derive(Default)]
struct Stream {
    /// `Some` while the fd belongs to an open connection.
    token: Option<Token>,
    epoch: u32,
    arm: u8,
    recv_armed: bool,
    /// The owner wants its recv armed.
    want_read: bool,
    /// The recv ended on a dry buffer ring; the ring re-arms it.
    starved: bool,
    /// The buffer of the send in flight, and where it starts.
    send: Option<(SendBuf, usize)>,
    writable_armed: bool,
}

/// The provided-buffer ring: `count` entries the kernel picks buffers from,
/// and the memory they point into.
struct BufRing {
    entries: NonNull<types::BufRingEntry>,
    layout: Layout,
    mem: Box<[u8]>,
    count: u16,
    size: usize,
    /// Buffers are consumed incrementally (`IOU_PBUF_RING_INC`).
    inc: bool,
    /// Incremental mode: where the next completion's bytes start, per buffer.
    cursor: Vec<u32>,
    tail: u16,
}

// SAFETY: the BufRing owns its entries allocation outright (no aliasing
// pointer escapes except to the kernel); moving it with its loop to another
// thread before the loop starts is sound.
unsafe impl Send for BufRing {}

impl BufRing {
    fn new(count: u16, size: usize, inc: bool) -> BufRing {
        debug_assert!(count.is_power_of_two());
        // The kernel wants the entries page-aligned.
        let layout =
            Layout::from_size_align(count as usize * size_of::<types::BufRingEntry>(), 4096)
                .expect("buffer ring layout");
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout) };
        let Some(entries) = NonNull::new(p.cast::<types::BufRingEntry>()) else {
            alloc::handle_alloc_error(layout);
        };
        let mut ring = BufRing {
            entries,
            layout,
            // Zeroed pages: resident only once the kernel writes into them.
            mem: vec![0u8; count as usize * size].into_boxed_slice(),
            count,
            size,
            inc,
            cursor: vec![0; count as usize],
            tail: 0,
        };
        for bid in 0..count {
            ring.put(bid);
        }
        ring.publish();
        ring
    }

    /// Hand buffer `bid` back to the kernel (visible after `publish`).
    fn put(&mut self, bid: u16) {
        let at = (self.tail & (self.count - 1)) as usize;
        let addr = self.mem.as_mut_ptr() as u64 + bid as u64 * self.size as u64;
        // SAFETY: `at` < count, the number of entries allocated; the kernel
        // reads entries only between the head and the published tail, and
        // this one is past the published tail.
        let e = unsafe { &mut *self.entries.as_ptr().add(at) };
        e.set_addr(addr);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        self.cursor[bid as usize] = 0;
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives inside the first entry of our
        // allocation (it overlays that entry's reserved field), is 2-aligned,
        // and the kernel only reads it.
        let tail = unsafe {
            AtomicU16::from_ptr(types::BufRingEntry::tail(self.entries.as_ptr()) as *mut u16)
        };
        tail.store(self.tail, Ordering::Release);
    }

    /// Account for a completion that used buffer `bid` for `len` bytes.
    fn used(&mut self, bid: u16, len: u32, flags: u32) -> Option<RecvBuf> {
        let cursor = self.cursor.get_mut(bid as usize)?;
        let last = !self.inc || !cqueue::buffer_more(flags);
        let off = *cursor;
        if !last {
            *cursor += len;
        }
        Some(RecvBuf {
            bid,
            off,
            len,
            last,
        })
    }

    /// `b`'s bytes, clamped to its buffer (the kernel's figures are trusted
    /// no further than that).
    fn data(&self, b: RecvBuf) -> &[u8] {
        let off = (b.off as usize).min(self.size);
        let len = (b.len as usize).min(self.size - off);
        let start = b.bid as usize * self.size + off;
        &self.mem[start..start + len]
    }

    /// Done with `b`'s bytes: a finished buffer goes back to the kernel.
    fn done_with(&mut self, b: RecvBuf) {
        if b.last {
            self.put(b.bid);
            self.publish();
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that read it
        // is gone (field order in `Uring`, and `quiesce`).
        unsafe { alloc::dealloc(self.entries.as_ptr().cast(), self.layout) };
    }
}

/// The proactor state of a [`Uring`].
pub(super) struct Proactor {
    bufs: BufRing,
    /// fd -> its connection's operations.
    streams: Vec<Stream>,
    /// Results not yet handed to the loop.
    done: Vec<Completion>,
    /// Send buffers of closed connections, by user_data, until their
    /// completion says the kernel is done with them.
    retired: Vec<(u64, SendBuf)>,
    /// Spare send buffers.
    pool: Vec<Vec<u8>>,
    /// Operations whose last completion has not arrived.
    inflight: usize,
    /// Streams whose recv ended on a dry buffer ring (fd, epoch), in order.
    starved: std::collections::VecDeque<(RawFd, u32)>,
}

impl Proactor {
    /// Route one operation's completion.
    pub(super) fn complete(&mut self, cqe: &cqueue::Entry) {
        let ud = cqe.user_data();
        let kind = match (ud >> 60) & 3 {
            0 => Kind::Recv,
            1 => Kind::Send,
            _ => Kind::Writable,
        };
        let fd = ((ud >> 32) & 0x0fff_ffff) as usize;
        let epoch = (ud >> 8) as u32 & EPOCH_MASK;
        let res = cqe.result();
        let flags = cqe.flags();
        let more = cqueue::more(flags);
        let buf = cqueue::buffer_select(flags)
            .and_then(|bid| self.bufs.used(bid, res.max(0) as u32, flags));
        if kind != Kind::Recv || !more {
            self.inflight -= 1;
        }
        let live = self
            .streams
            .get_mut(fd)
            .filter(|s| s.token.is_some() && s.epoch & EPOCH_MASK == epoch);
        let Some(s) = live else {
            // The connection is gone: give back what the op held.
            if let Some(b) = buf {
                self.bufs.done_with(b);
            }
            if kind == Kind::Send {
                self.retired.retain(|(u, _)| *u != ud);
            }
            return;
        };
        let token = s.token.expect("live stream has a token");
        let done = match kind {
            Kind::Recv => {
                if !more && ud as u8 == s.arm {
                    s.recv_armed = false;
                }
                if res == -libc::ECANCELED {
                    return;
                }
                if res == -libc::ENOBUFS {
                    // Re-armed by the ring once buffers come back.
                    if !s.starved {
                        s.starved = true;
                        self.starved.push_back((fd as RawFd, s.epoch));
                    }
                    return;
                }
                if res <= 0 {
                    if let Some(b) = buf {
                        self.bufs.done_with(b);
                    }
                    Done::Recv { res, buf: None }
                } else {
                    Done::Recv { res, buf }
                }
            }
            Kind::Send => {
                let Some((buf, off)) = s.send.take() else {
                    debug_assert!(false, "send completion without a buffer");
                    return;
                };
                Done::Send { res, buf, off }
            }
            Kind::Writable => {
                s.writable_armed = false;
                Done::Writable { res }
            }
        };
        self.done.push(Completion { token, done });
    }

    pub(super) fn has_done(&self) -> bool {
        !self.done.is_empty()
    }
}

impl Uring {
    /// A ring for the proactor model: readiness polls as [`Uring::new`]
    /// (level-triggered, for listeners and watched fds), plus recv and send
    /// operations for connections opened with [`Uring::open_stream`].
    pub fn new_proactor() -> io::Result<Uring> {
        Self::build_proactor(true, false)
    }

    /// [`Uring::new_proactor`] for a ring that only the building thread
    /// will ever use (an event loop's): completion work deferred to the
    /// loop's waits (see `Uring::build`).
    pub(crate) fn new_loop_proactor() -> io::Result<Uring> {
        Self::build_proactor(true, true)
    }

    /// `try_inc`: try incremental buffers first (tests also build the
    /// whole-buffer ring older kernels get); `single_issuer`: see
    /// `Uring::build`.
    fn build_proactor(try_inc: bool, single_issuer: bool) -> io::Result<Uring> {
        let mut u = Uring::build(crate::poller::Trigger::Level, single_issuer)?;
        let mut last_err = None;
        let mut registered = None;
        let layouts = [
            (INC_COUNT, INC_SIZE, PBUF_RING_INC),
            (WHOLE_COUNT, WHOLE_SIZE, 0),
        ];
        for (count, size, flags) in layouts.into_iter().skip(usize::from(!try_inc)) {
            let bufs = BufRing::new(count, size, flags == PBUF_RING_INC);
            // SAFETY: the entries stay allocated, at this address, until the
            // BufRing drops, which happens after the ring is closed (Uring's
            // field order) and after `quiesce` waited out every operation.
            let r = unsafe {
                u.ring.submitter().register_buf_ring_with_flags(
                    bufs.entries.as_ptr() as u64,
                    count,
                    BGID,
                    flags,
                )
            };
            match r {
                Ok(()) => {
                    registered = Some(bufs);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some(bufs) = registered else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "io_uring: cannot register a provided-buffer ring (Linux 5.19+ is needed for the proactor): {}",
                    last_err.map_or_else(String::new, |e| e.to_string())
                ),
            ));
        };
        u.io = Some(Box::new(Proactor {
            bufs,
            streams: Vec::new(),
            done: Vec::new(),
            retired: Vec::new(),
            pool: Vec::new(),
            inflight: 0,
            starved: Default::default(),
        }));
        Ok(u)
    }

    /// Whether connections are driven by completions on this ring.
    pub fn is_proactor(&self) -> bool {
        self.io.is_some()
    }

    fn proactor(&mut self) -> &mut Proactor {
        self.io.as_mut().expect("not a proactor ring")
    }

    fn stream(&mut self, fd: RawFd) -> io::Result<&mut Stream> {
        self.proactor()
            .streams
            .get_mut(fd as usize)
            .filter(|s| s.token.is_some())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("io_uring: fd {fd} has no open stream"),
                )
            })
    }

    /// Start driving connection `fd` for `token`. Reading starts with
    /// [`Uring::set_reading`].
    pub fn open_stream(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        if !(0..1 << 28).contains(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("io_uring: fd {fd} out of range"),
            ));
        }
        let p = self.proactor();
        if p.streams.len() <= fd as usize {
            p.streams.resize_with(fd as usize + 1, Stream::default);
        }
        let s = &mut p.streams[fd as usize];
        if s.token.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("io_uring: fd {fd} already has a stream"),
            ));
        }
        s.token = Some(token);
        Ok(())
    }

    /// Arm (`true`) or cancel (`false`) the connection's multishot recv. A
    /// cancelled recv may still post data that was already taken from the
    /// socket: it is delivered like any other.
    pub fn set_reading(&mut self, fd: RawFd, want: bool) -> io::Result<()> {
        let s = self.stream(fd)?;
        s.want_read = want;
        if s.recv_armed == want || s.starved {
            // (A starved recv is re-armed by the ring, if still wanted.)
            return Ok(());
        }
        let old = op_data(Kind::Recv, fd, s.epoch, s.arm);
        s.recv_armed = want;
        if want {
            s.arm = s.arm.wrapping_add(1);
            let ud = op_data(Kind::Recv, fd, s.epoch, s.arm);
            self.proactor().inflight += 1;
            self.push(
                &opcode::RecvMulti::new(types::Fd(fd), BGID)
                    .build()
                    .user_data(ud),
            )
        } else {
            self.push(&opcode::AsyncCancel::new(old).build().user_data(REMOVAL))?;
            // Stop taking bytes from the socket now, not at the next wait.
            self.enter(false, None)
        }
    }

    /// Send `buf[off..]`; the buffer comes back in a [`Done::Send`].
    pub fn send(&mut self, fd: RawFd, buf: impl Into<SendBuf>, off: usize) -> io::Result<()> {
        let buf = buf.into();
        debug_assert!(off < buf.len());
        let s = self.stream(fd)?;
        if s.send.is_some() {
            return Err(io::Error::other("io_uring: a send is already in flight"));
        }
        let ud = op_data(Kind::Send, fd, s.epoch, 0);
        let len = (buf.len() - off).min(u32::MAX as usize) as u32;
        // The pointer stays valid: the buffer is held, and not touched,
        // until the completion hands it back (see module doc); shared bytes
        // are immutable while any `Arc` to them lives.
        let ptr = buf.as_slice()[off..].as_ptr();
        s.send = Some((buf, off));
        self.proactor().inflight += 1;
        self.push(
            &opcode::Send::new(types::Fd(fd), ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(ud),
        )
    }

    /// Report (once) when `fd` can take more output.
    pub fn poll_writable(&mut self, fd: RawFd) -> io::Result<()> {
        let s = self.stream(fd)?;
        if s.writable_armed {
            return Ok(());
        }
        s.writable_armed = true;
        let ud = op_data(Kind::Writable, fd, s.epoch, 0);
        self.proactor().inflight += 1;
        self.push(
            &opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
                .build()
                .user_data(ud),
        )
    }

    /// Stop driving `fd`: cancel its operations (submitted at once, so the
    /// ring lets go of the file before the caller closes it) and keep any
    /// send buffer until the kernel is done with it.
    pub fn close_stream(&mut self, fd: RawFd) -> io::Result<()> {
        let s = self.stream(fd)?;
        let epoch = s.epoch;
        s.token = None;
        s.epoch = s.epoch.wrapping_add(1);
        let recv = s.recv_armed.then(|| op_data(Kind::Recv, fd, epoch, s.arm));
        s.recv_armed = false;
        s.want_read = false;
        s.starved = false;
        let send = s.send.take();
        let writable = std::mem::take(&mut s.writable_armed);
        let mut cancel = Vec::with_capacity(3);
        cancel.extend(recv);
        if let Some((buf, _)) = send {
            let ud = op_data(Kind::Send, fd, epoch, 0);
            self.proactor().retired.push((ud, buf));
            cancel.push(ud);
        }
        if writable {
            cancel.push(op_data(Kind::Writable, fd, epoch, 0));
        }
        if cancel.is_empty() {
            return Ok(());
        }
        for ud in cancel {
            self.push(&opcode::AsyncCancel::new(ud).build().user_data(REMOVAL))?;
        }
        self.enter(false, None)
    }

    /// Move the finished operations into `out` (which should be empty).
    pub fn take_completions(&mut self, out: &mut Vec<Completion>) {
        if let Some(p) = self.io.as_mut() {
            std::mem::swap(&mut p.done, out);
        }
    }

    /// Append the bytes of a recv completion to `out` and give the buffer
    /// back to the kernel if it is finished.
    pub fn take_recv(&mut self, buf: RecvBuf, out: &mut Vec<u8>) {
        let p = self.proactor();
        out.extend_from_slice(p.bufs.data(buf));
        p.bufs.done_with(buf);
    }

    /// Re-arm the recvs a dry buffer ring ended, at most as many per turn
    /// as the ring has buffers (the rest wait for the next turn).
    pub(super) fn rearm_starved(&mut self) -> io::Result<()> {
        let n = match self.io.as_ref() {
            Some(p) => p.starved.len().min(p.bufs.count as usize),
            None => return Ok(()),
        };
        for _ in 0..n {
            let p = self.proactor();
            let Some((fd, epoch)) = p.starved.pop_front() else {
                break;
            };
            let Some(s) = p
                .streams
                .get_mut(fd as usize)
                .filter(|s| s.token.is_some() && s.epoch == epoch && s.starved)
            else {
                continue;
            };
            s.starved = false;
            if s.want_read && !s.recv_armed {
                self.set_reading(fd, true)?;
            }
        }
        Ok(())
    }

    /// Give back what an unwanted completion holds.
    pub fn release(&mut self, c: Completion) {
        match c.done {
            Done::Recv { buf: Some(b), .. } => self.proactor().bufs.done_with(b),
            Done::Send { buf, .. } => self.recycle(buf),
            _ => {}
        }
    }

    /// A spare send buffer (empty).
    pub fn spare_buf(&mut self) -> Vec<u8> {
        self.proactor().pool.pop().unwrap_or_default()
    }

    /// Keep a send buffer for reuse (shared bytes are only let go of).
    pub fn recycle(&mut self, buf: impl Into<SendBuf>) {
        let SendBuf::Owned(mut buf) = buf.into() else {
            return;
        };
        let p = self.proactor();
        if p.pool.len() < POOL_MAX && buf.capacity() <= 64 * 1024 {
            buf.clear();
            p.pool.push(buf);
        }
    }

    /// Cancel everything in flight and wait (briefly) for the kernel to let
    /// go of our memory. If it has not by then, the buffers are leaked
    /// rather than freed under it.
    pub(super) fn quiesce(&mut self) {
        let Some(p) = self.io.as_ref() else { return };
        if p.inflight == 0 {
            return;
        }
        let all = types::CancelBuilder::any();
        let _ = self.push(&opcode::AsyncCancel2::new(all).build().user_data(REMOVAL));
        for _ in 0..100 {
            if self.proactor().inflight == 0 {
                return;
            }
            let _ = self.enter(true, Some(Duration::from_millis(10)));
            self.reap();
        }
        tracing::warn!(
            "io_uring: {} operations still in flight at close; leaking their buffers",
            self.proactor().inflight
        );
        if let Some(p) = self.io.take() {
            std::mem::forget(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poller::Poller;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// Wait up to `ms` for completions (at least one unless the wait times out).
    fn wait_done(u: &mut Uring, ms: u64) -> Vec<Completion> {
        let mut events = Vec::new();
        u.wait(&mut events, Some(Duration::from_millis(ms)))
            .unwrap();
        assert!(events.is_empty(), "no fd is polled: {events:?}");
        let mut done = Vec::new();
        u.take_completions(&mut done);
        done
    }

    fn stream_pair(u: &mut Uring, token: u64) -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        u.open_stream(a.as_raw_fd(), Token(token)).unwrap();
        (a, b)
    }

    /// The bytes of one recv completion (its buffer goes back).
    fn recv_bytes(u: &mut Uring, c: Completion, token: u64) -> Vec<u8> {
        assert_eq!(c.token, Token(token));
        match c.done {
            Done::Recv { res, buf: Some(b) } if res > 0 => {
                let mut v = Vec::new();
                u.take_recv(b, &mut v);
                assert_eq!(v.len(), res as usize);
                v
            }
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn recv_and_send_complete_with_their_data() {
        let mut u = Uring::new_proactor().unwrap();
        let (a, mut b) = stream_pair(&mut u, 3);
        u.set_reading(a.as_raw_fd(), true).unwrap();
        b.write_all(b"hello").unwrap();
        let mut done = wait_done(&mut u, 5000);
        assert_eq!(done.len(), 1);
        assert_eq!(recv_bytes(&mut u, done.remove(0), 3), b"hello");

        u.send(a.as_raw_fd(), b"xxworld".to_vec(), 2).unwrap();
        let done = wait_done(&mut u, 5000);
        match &done[..] {
            [Completion {
                token: Token(3),
                done:
                    Done::Send {
                        res: 5,
                        buf,
                        off: 2,
                    },
            }] => assert_eq!(buf.as_slice(), b"xxworld"),
            other => panic!("{other:?}"),
        }
        let mut got = [0u8; 5];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"world");

        // Shared bytes go out from where they are and come back held.
        let shared: Arc<Vec<u8>> = Arc::new(b"--shared".to_vec());
        u.send(a.as_raw_fd(), SendBuf::Shared(shared.clone()), 2)
            .unwrap();
        let done = wait_done(&mut u, 5000);
        match &done[..] {
            [Completion {
                token: Token(3),
                done:
                    Done::Send {
                        res: 6,
                        buf: SendBuf::Shared(back),
                        off: 2,
                    },
            }] => assert_eq!((**back).as_ref(), shared.as_slice()),
            other => panic!("{other:?}"),
        }
        let mut got = [0u8; 6];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"shared");

        // The peer's close is a zero-length recv, and the recv ends.
        drop(b);
        let done = wait_done(&mut u, 5000);
        assert!(
            matches!(
                done[..],
                [Completion {
                    done: Done::Recv { res: 0, buf: None },
                    ..
                }]
            ),
            "{done:?}"
        );
        assert!(!u.stream(a.as_raw_fd()).unwrap().recv_armed);
        u.close_stream(a.as_raw_fd()).unwrap();
        assert_eq!(u.proactor().inflight, 0);
    }

    #[test]
    fn small_messages_share_a_buffer_when_consumed_incrementally() {
        for try_inc in [true, false] {
            small_messages(Uring::build_proactor(try_inc, false).unwrap(), try_inc);
            small_messages(Uring::build_proactor(try_inc, true).unwrap(), try_inc);
        }
    }

    fn small_messages(mut u: Uring, try_inc: bool) {
        if !try_inc {
            assert!(
                !u.proactor().bufs.inc,
                "the whole-buffer ring was asked for"
            );
        }
        let (a, mut b) = stream_pair(&mut u, 5);
        u.set_reading(a.as_raw_fd(), true).unwrap();
        let mut bufs = Vec::new();
        for msg in [&b"ab"[..], b"cde"] {
            b.write_all(msg).unwrap();
            let mut done = wait_done(&mut u, 5000);
            assert_eq!(done.len(), 1);
            let c = done.remove(0);
            let Done::Recv { buf: Some(rb), .. } = c.done else {
                panic!("{c:?}")
            };
            bufs.push(rb);
            assert_eq!(recv_bytes(&mut u, c, 5), msg);
        }
        if u.proactor().bufs.inc {
            // Linux 6.12+: the second message continues behind the first.
            assert_eq!(bufs[1].bid, bufs[0].bid);
            assert_eq!((bufs[0].off, bufs[1].off), (0, 2));
            assert!(!bufs[0].last && !bufs[1].last, "a buffer in use stays out");
        } else {
            // Older kernels: each completion takes a whole buffer.
            assert_ne!(bufs[1].bid, bufs[0].bid);
            assert!(bufs.iter().all(|b| b.off == 0 && b.last));
        }
    }

    #[test]
    fn paused_reading_takes_nothing_until_resumed() {
        let mut u = Uring::new_proactor().unwrap();
        let (a, mut b) = stream_pair(&mut u, 1);
        u.set_reading(a.as_raw_fd(), true).unwrap();
        u.set_reading(a.as_raw_fd(), false).unwrap();
        b.write_all(b"later").unwrap();
        assert!(wait_done(&mut u, 50).is_empty(), "cancelled recv took data");
        u.set_reading(a.as_raw_fd(), true).unwrap();
        let mut done = wait_done(&mut u, 5000);
        assert_eq!(recv_bytes(&mut u, done.remove(0), 1), b"later");
    }

    #[test]
    fn a_dry_buffer_ring_starves_the_recv_until_buffers_come_back() {
        for try_inc in [true, false] {
            dry_ring(Uring::build_proactor(try_inc, false).unwrap());
            dry_ring(Uring::build_proactor(try_inc, true).unwrap());
        }
    }

    fn dry_ring(mut u: Uring) {
        let (a, mut b) = stream_pair(&mut u, 9);
        let fd = a.as_raw_fd();
        b.set_nonblocking(true).unwrap();
        u.set_reading(fd, true).unwrap();
        let (count, size) = (u.proactor().bufs.count as usize, u.proactor().bufs.size);
        // Hold every completion's buffer until the ring runs dry.
        let chunk = vec![5u8; size];
        let (mut sent, mut got) = (0usize, 0usize);
        let mut held = Vec::new();
        for _ in 0..4 * count {
            if u.stream(fd).unwrap().starved {
                break;
            }
            match b.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            for c in wait_done(&mut u, 1000) {
                match c.done {
                    Done::Recv { res, buf: Some(_) } if res > 0 => {
                        got += res as usize;
                        held.push(c);
                    }
                    ref other => panic!("{other:?}"),
                }
            }
        }
        let s = u.stream(fd).unwrap();
        assert!(s.starved && !s.recv_armed, "the ring never ran dry");
        assert!(got >= (count - 1) * size, "dry after {got} bytes");
        // While dry, each wait retries once and delivers nothing.
        assert!(wait_done(&mut u, 30).is_empty());
        assert!(u.stream(fd).unwrap().starved);
        for c in held {
            u.release(c);
        }
        // Buffers are back: the next wait re-arms, and the rest arrives.
        for _ in 0..1000 {
            if got == sent {
                break;
            }
            for c in wait_done(&mut u, 1000) {
                got += recv_bytes(&mut u, c, 9).len();
            }
        }
        assert_eq!(got, sent);
        assert!(u.stream(fd).unwrap().recv_armed);
    }

    #[test]
    fn a_closed_streams_late_completions_are_dropped_and_give_back_buffers() {
        let mut u = Uring::new_proactor().unwrap();
        let (a, mut b) = stream_pair(&mut u, 1);
        let fd = a.as_raw_fd();
        u.set_reading(fd, true).unwrap();
        // Data arrives, its completion is posted, and the stream closes
        // before the loop looks: nothing may reach the next owner of the fd.
        b.write_all(b"stale").unwrap();
        let mut events = Vec::new();
        u.enter(false, None).unwrap();
        u.close_stream(fd).unwrap();
        // A new connection gets the same fd number. (Other tests open fds
        // concurrently, so the number is placed, not hoped for: dup2 swaps
        // the new socket in where `a`, which this test owns, was.)
        let (c, mut d) = UnixStream::pair().unwrap();
        c.set_nonblocking(true).unwrap();
        // SAFETY: both fds are open and owned here; dup2 atomically closes
        // the old socket at `fd` and makes `fd` the new one, which `a` then
        // owns (and `c`'s own number is closed by its drop).
        assert_eq!(unsafe { libc::dup2(c.as_raw_fd(), fd) }, fd);
        drop(c);
        u.open_stream(fd, Token(2)).unwrap();
        u.set_reading(fd, true).unwrap();
        d.write_all(b"fresh").unwrap();
        let mut got = Vec::new();
        for _ in 0..10 {
            u.wait(&mut events, Some(Duration::from_millis(500)))
                .unwrap();
            let mut done = Vec::new();
            u.take_completions(&mut done);
            for c in done {
                got.extend(recv_bytes(&mut u, c, 2));
            }
            if got.len() >= 5 {
                break;
            }
        }
        assert_eq!(got, b"fresh");
        // Every buffer is back: as many one-byte completions as the ring
        // holds still go through when each is returned.
        for i in 0..u.proactor().bufs.count as usize + 8 {
            d.write_all(&[1]).unwrap();
            let mut done = wait_done(&mut u, 5000);
            assert_eq!(recv_bytes(&mut u, done.remove(0), 2), [1], "message {i}");
        }
        drop(b);
    }

    #[test]
    fn a_send_in_flight_at_close_keeps_its_buffer_until_it_completes() {
        let mut u = Uring::new_proactor().unwrap();
        let (a, b) = stream_pair(&mut u, 4);
        // Far more than the socket buffer: the first send may take part,
        // the rest waits for a reader that never comes.
        u.send(a.as_raw_fd(), vec![7u8; 8 << 20], 0).unwrap();
        let mut done = wait_done(&mut u, 50);
        if let Some(c) = done.pop() {
            let Done::Send { res, buf, off: 0 } = c.done else {
                panic!("{c:?}")
            };
            assert!(res > 0 && (res as usize) < buf.len(), "{res}");
            u.send(a.as_raw_fd(), buf, res as usize).unwrap();
            let done = wait_done(&mut u, 50);
            assert!(done.is_empty(), "a full socket completed a send: {done:?}");
        }
        u.close_stream(a.as_raw_fd()).unwrap();
        assert_eq!(u.proactor().retired.len(), 1);
        for _ in 0..100 {
            if u.proactor().retired.is_empty() {
                break;
            }
            assert!(wait_done(&mut u, 20).is_empty());
        }
        assert!(u.proactor().retired.is_empty(), "buffer never released");
        assert_eq!(u.proactor().inflight, 0);
        drop(b);
    }

    #[test]
    fn dropping_the_ring_with_operations_in_flight_waits_them_out() {
        let mut u = Uring::new_proactor().unwrap();
        let (a, b) = stream_pair(&mut u, 4);
        u.set_reading(a.as_raw_fd(), true).unwrap();
        u.send(a.as_raw_fd(), vec![1u8; 8 << 20], 0).unwrap();
        u.enter(false, None).unwrap();
        assert_eq!(u.proactor().inflight, 2);
        u.quiesce();
        assert_eq!(u.io.as_ref().map(|p| p.inflight), Some(0));
        drop(u);
        drop((a, b));
    }
}
