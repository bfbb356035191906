//! A stream connection on a loop (TCP or Unix-domain), and the `Conn` view
//! a handler works through.
//!
//! Memory of an idle connection: the socket fd, a token, flags and two
//! `Option<Box<_>>`s. Input is read into the loop's shared buffer and only an
//! unconsumed tail is copied into the connection; output is gathered in the
//! loop's staging buffer and sent when the callback returns, and only what
//! the socket did not take is queued in the connection.

use std::any::Any;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handler::{CloseReason, EventHandler};
use super::{Addr, Buffer};
use crate::poller::{Event, Interest, Token, Trigger};
use crate::reactor::{EventLoop, LoopHandle, LoopStats, Source, TimerId};
use crate::ring::{Completion, Done, RecvBuf, Uring};
use crate::sys;

/// Per-connection settings, shared by a server's connections.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// Output queued beyond this calls `on_high_water` (once per crossing).
    pub high_water: usize,
    /// How long a graceful close keeps reading (and discarding) after
    /// shutting down its write side, waiting for the peer's FIN, so that
    /// unread input does not turn the close into a reset that destroys the
    /// response in flight.
    pub linger: Duration,
    pub nodelay: bool,
    /// Close after this long with no bytes moving either way.
    pub idle_timeout: Option<Duration>,
    /// Close when received bytes stay unconsumed (a message started but not
    /// completed) for this long.
    pub read_timeout: Option<Duration>,
    /// Close when queued output makes no progress for this long.
    pub write_timeout: Option<Duration>,
    /// TCP keepalive probes (SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT).
    pub keepalive: Option<Keepalive>,
    /// SO_LINGER on close: `Some(0)` resets instead of FIN. Off by default.
    pub so_linger: Option<Duration>,
    /// SO_SNDBUF / SO_RCVBUF. Off by default: Linux autotunes them, and a
    /// fixed size turns autotuning off.
    pub send_buffer: Option<usize>,
    pub recv_buffer: Option<usize>,
}

/// Kernel keepalive settings. With Linux defaults a dead peer takes over two
/// hours to notice; an application heartbeat (`net::heartbeat`) reacts faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            high_water: 64 * 1024 * 1024,
            linger: Duration::from_secs(2),
            nodelay: true,
            idle_timeout: None,
            read_timeout: None,
            write_timeout: None,
            keepalive: None,
            so_linger: None,
            send_buffer: None,
            recv_buffer: None,
        }
    }
}

impl ConnConfig {
    fn has_timeouts(&self) -> bool {
        self.idle_timeout.is_some() || self.read_timeout.is_some() || self.write_timeout.is_some()
    }

    /// Apply the socket options to a new connection.
    fn apply(&self, fd: RawFd, tcp: bool) -> io::Result<()> {
        sys::socket::with_sock(fd, |sock| self.apply_to(&sock, tcp))
    }

    fn apply_to(&self, sock: &socket2::SockRef<'_>, tcp: bool) -> io::Result<()> {
        if tcp {
            if self.nodelay {
                sock.set_nodelay(true)?;
            }
            if let Some(k) = self.keepalive {
                let ka = socket2::TcpKeepalive::new()
                    .with_time(k.idle)
                    .with_interval(k.interval)
                    .with_retries(k.count);
                sock.set_tcp_keepalive(&ka)?;
            }
        }
        if let Some(l) = self.so_linger {
            sock.set_linger(Some(l))?;
        }
        if let Some(n) = self.send_buffer {
            sock.set_send_buffer_size(n)?;
        }
        if let Some(n) = self.recv_buffer {
            sock.set_recv_buffer_size(n)?;
        }
        Ok(())
    }
}

/// Per-connection timeout state, allocated only when a timeout is set. One
/// wheel timer per connection, re-armed lazily: I/O only stamps times, and
/// the timer, when it fires, checks them and sleeps again for what is left.
struct Watchdog {
    idle: Option<Duration>,
    read: Option<Duration>,
    write: Option<Duration>,
    last_io: Instant,
    partial_since: Option<Instant>,
    write_progress: Instant,
    timer: Option<(TimerId, Instant)>,
}

impl Watchdog {
    fn new(cfg: &ConnConfig, now: Instant) -> Watchdog {
        Watchdog {
            idle: cfg.idle_timeout,
            read: cfg.read_timeout,
            write: cfg.write_timeout,
            last_io: now,
            partial_since: None,
            write_progress: now,
            timer: None,
        }
    }

    /// The earliest deadline in force, with the reason it would close for.
    fn next(&self, writing: bool) -> Option<(Instant, CloseReason)> {
        let mut best: Option<(Instant, CloseReason)> = None;
        let mut consider = |at: Option<Instant>, why: CloseReason| {
            if let Some(at) = at {
                if best.as_ref().is_none_or(|(b, _)| at < *b) {
                    best = Some((at, why));
                }
            }
        };
        consider(
            self.idle.map(|d| self.last_io + d),
            CloseReason::IdleTimeout,
        );
        consider(
            self.read.zip(self.partial_since).map(|(d, t)| t + d),
            CloseReason::ReadTimeout,
        );
        if writing {
            consider(
                self.write.map(|d| self.write_progress + d),
                CloseReason::WriteTimeout,
            );
        }
        best
    }
}

/// The write failed because the connection is closed or closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection is closed")]
pub struct Closed;

// Connection flags.
const READ_PAUSED: u16 = 1 << 0;
const PEER_EOF: u16 = 1 << 1;
/// `close()` requested: finish output, then shut down and linger.
const CLOSING: u16 = 1 << 2;
const SHUT_WR_WANTED: u16 = 1 << 3;
const WRITE_SHUT: u16 = 1 << 4;
const LINGERING: u16 = 1 << 5;
const CLOSED: u16 = 1 << 6;
const HIGH_WATER: u16 = 1 << 7;
const WRITE_COMPLETE_DUE: u16 = 1 << 8;
const HIGH_WATER_DUE: u16 = 1 << 9;
/// Proactor: input that arrived while reads were paused waits in `input`
/// for `resume_read` (a cancelled recv may still post what it took).
const STASHED: u16 = 1 << 10;
/// Proactor: the peer's EOF came behind stashed input; it is reported after it.
const EOF_PENDING: u16 = 1 << 11;
/// Edge-triggered: a read was deferred (reads paused, or the budget spent)
/// after the edge announcing the data, and maybe the peer's FIN, was
/// consumed. Until a read sees EAGAIN or EOF, a short read does not prove
/// the socket drained: the FIN may be behind it and will not be announced
/// again.
const RECHECK: u16 = 1 << 12;

/// Writes at least this large skip the staging copy when nothing is queued.
const DIRECT_WRITE: usize = 16 * 1024;
/// Small writes are appended to the last queued chunk up to this size.
const COALESCE: usize = 64 * 1024;
/// iovecs per sendmsg.
const MAX_IOV: usize = 64;

/// One piece of queued output.
enum Chunk {
    Bytes(Vec<u8>),
    /// A file region sent with sendfile(2), never copied through user space.
    File {
        file: std::fs::File,
        pos: u64,
        end: u64,
    },
}

impl Chunk {
    fn remaining(&self, head: usize) -> usize {
        match self {
            Chunk::Bytes(b) => b.len() - head,
            Chunk::File { pos, end, .. } => (end - pos) as usize,
        }
    }
}

/// Output the socket has not taken yet: chunks in order, the first one
/// partly sent up to `head` (bytes chunks; file chunks advance `pos`).
#[derive(Default)]
struct OutQueue {
    chunks: VecDeque<Chunk>,
    head: usize,
    /// Bytes not yet sent, in `chunks` and (proactor) in flight.
    len: usize,
    /// Proactor: a send (its buffer out of `chunks`, held by the ring) or a
    /// wait for room is in flight.
    busy: bool,
}

thread_local! {
    /// Emptied queues kept for reuse on this thread's loop: in the proactor
    /// model every reply goes through a queue while its send is in flight.
    /// (The boxes themselves are what is kept: a connection holds a box.)
    #[allow(clippy::vec_box)]
    static SPARE_QUEUES: std::cell::RefCell<Vec<Box<OutQueue>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare queues kept per thread.
const SPARE_QUEUES_MAX: usize = 64;

impl OutQueue {
    fn take_spare() -> Box<OutQueue> {
        SPARE_QUEUES
            .with_borrow_mut(|v| v.pop())
            .unwrap_or_default()
    }

    /// Drop a connection's queue, keeping the allocation for the next one.
    fn put_spare(q: Option<Box<OutQueue>>) {
        let Some(mut q) = q else { return };
        if q.chunks.capacity() > 16 {
            return;
        }
        q.chunks.clear();
        q.head = 0;
        q.len = 0;
        q.busy = false;
        SPARE_QUEUES.with_borrow_mut(|v| {
            if v.len() < SPARE_QUEUES_MAX {
                v.push(q);
            }
        });
    }

    fn push(&mut self, data: &[u8]) {
        self.len += data.len();
        if let Some(Chunk::Bytes(last)) = self.chunks.back_mut() {
            if last.len() + data.len() <= COALESCE {
                last.extend_from_slice(data);
                return;
            }
        }
        self.chunks.push_back(Chunk::Bytes(data.to_vec()));
    }

    fn push_vec(&mut self, data: Vec<u8>) {
        if data.len() < DIRECT_WRITE {
            return self.push(&data);
        }
        self.len += data.len();
        self.chunks.push_back(Chunk::Bytes(data));
    }

    fn push_file(&mut self, file: std::fs::File, pos: u64, end: u64) {
        self.len += (end - pos) as usize;
        self.chunks.push_back(Chunk::File { file, pos, end });
    }

    /// Account for `n` bytes of leading bytes-chunks sent.
    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let first = self.chunks.front().map_or(0, |c| c.remaining(self.head));
            if n >= first {
                n -= first;
                self.chunks.pop_front();
                self.head = 0;
            } else {
                self.head += n;
                n = 0;
            }
        }
    }

    /// The leading bytes-chunks as iovecs (stops at a file chunk).
    fn slices(&self) -> Vec<IoSlice<'_>> {
        self.chunks
            .iter()
            .take(MAX_IOV)
            .map_while(|c| match c {
                Chunk::Bytes(b) => Some(b),
                Chunk::File { .. } => None,
            })
            .enumerate()
            .map(|(i, c)| IoSlice::new(if i == 0 { &c[self.head..] } else { c }))
            .collect()
    }

    /// Send from the front of the queue once; `Ok(0)` means a file ended early.
    fn send_some(&mut self, fd: RawFd) -> io::Result<usize> {
        let single =
            self.chunks.len() == 1 || matches!(self.chunks.get(1), Some(Chunk::File { .. }));
        match self.chunks.front_mut() {
            Some(Chunk::File { file, pos, end }) => {
                let want = ((*end - *pos) as usize).min(1 << 20);
                let n = sys::sendfile(fd, file.as_raw_fd(), pos, want)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ));
                }
                self.len -= n;
                if *pos >= *end {
                    self.chunks.pop_front();
                }
                Ok(n)
            }
            Some(Chunk::Bytes(b)) if single => {
                let n = sys::socket::send(fd, &b[self.head..])?;
                self.advance(n);
                Ok(n)
            }
            Some(Chunk::Bytes(_)) => {
                let n = sys::socket::sendv(fd, &self.slices())?;
                self.advance(n);
                Ok(n)
            }
            None => Ok(0),
        }
    }
}

/// The handler-independent part of a connection.
pub(crate) struct Core {
    fd: OwnedFd,
    token: Token,
    flags: u16,
    out: Option<Box<OutQueue>>,
    input: Option<Box<Buffer>>,
    /// Shared with `ConnHandle`s; allocated on the first `handle()`.
    closed_flag: Option<Arc<AtomicBool>>,
    /// Why the connection must close, set where the close cannot happen yet
    /// (inside a callback).
    doom: Option<CloseReason>,
    /// The reason to report when a graceful close completes.
    closing_reason: Option<CloseReason>,
    linger_timer: Option<TimerId>,
    watch: Option<Box<Watchdog>>,
    ops: OpsFn,
}

/// What a handler works with during a callback: write, close, inspect.
///
/// Not `Send`: it exists only on the connection's loop thread, for the
/// duration of one callback. Use [`Conn::handle`] to reach the connection
/// from elsewhere.
pub struct Conn<'a, H: EventHandler> {
    core: &'a mut Core,
    ctx: &'a mut H::Context,
    el: &'a mut EventLoop,
    cfg: &'a ConnConfig,
}

impl<H: EventHandler> Conn<'_, H> {
    /// Queue `data` for sending; it goes out, in order, when the callback
    /// returns (large writes go out at once). Fails only if the connection is
    /// closed or closing; a send error later closes it with a reason.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Closed> {
        self.core.write(self.el, self.cfg, data)
    }

    /// Like [`Conn::write`], taking ownership (a large vector is queued
    /// without a copy if the socket cannot take it at once).
    pub fn write_vec(&mut self, data: Vec<u8>) -> Result<(), Closed> {
        self.core.write_vec(self.el, self.cfg, data)
    }

    /// Queue `len` bytes of `file` from `offset`, after everything written
    /// before; they go out with sendfile(2), without passing through user
    /// space. The file must not shrink meanwhile (that closes the connection).
    pub fn send_file(&mut self, file: std::fs::File, offset: u64, len: u64) -> Result<(), Closed> {
        self.core.check_writable()?;
        // What this callback staged goes first, then the file.
        let out = self.core.queue();
        out.push(&self.el.write_buf);
        out.push_file(file, offset, offset + len);
        self.el.write_buf.clear();
        self.core.flush_queue(self.el);
        self.core.check_high_water(self.cfg);
        Ok(())
    }

    /// Send what this callback has written so far now, instead of when it returns.
    pub fn flush(&mut self) {
        self.core.flush_staged(self.el);
        if self.core.out.is_some() {
            self.core.flush_queue(self.el);
        }
    }

    /// Append to the output directly (encoders write here without an
    /// intermediate buffer).
    pub fn write_with<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> Result<R, Closed> {
        self.write_with_context(|_, out| f(out))
    }

    /// Like [`Conn::write_with`], also lending the per-connection context
    /// (a protocol engine that keeps session state encodes its reply
    /// straight into the output).
    pub fn write_with_context<R>(
        &mut self,
        f: impl FnOnce(&mut H::Context, &mut Vec<u8>) -> R,
    ) -> Result<R, Closed> {
        self.core.check_writable()?;
        if let Some(out) = self.core.out.as_mut() {
            let mut tmp = std::mem::take(&mut self.el.write_buf);
            let start = tmp.len();
            let r = f(self.ctx, &mut tmp);
            out.push(&tmp[start..]);
            tmp.truncate(start);
            self.el.write_buf = tmp;
            self.core.check_high_water(self.cfg);
            return Ok(r);
        }
        Ok(f(self.ctx, &mut self.el.write_buf))
    }

    /// Finish sending what is queued, then half-close (FIN); reading goes on
    /// until the peer closes.
    pub fn shutdown_write(&mut self) {
        self.core.flags |= SHUT_WR_WANTED;
    }

    /// Graceful close: stop delivering input, send what is queued, shut down
    /// the write side, then close (after the peer's FIN or the linger time).
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    /// Graceful close reporting `reason` to `on_close`.
    pub fn close_with(&mut self, reason: CloseReason) {
        if self.core.flags & (CLOSING | CLOSED) == 0 {
            self.core.flags |= CLOSING;
            let reason = if self.core.flags & PEER_EOF != 0 && reason == CloseReason::Local {
                CloseReason::PeerClosed
            } else {
                reason
            };
            self.core.closing_reason = Some(reason);
        }
    }

    /// Close now, dropping queued output.
    pub fn abort(&mut self) {
        if self.core.doom.is_none() {
            self.core.doom = Some(CloseReason::Aborted);
        }
    }

    /// Stop reading from the socket (the peer's writes back up in the kernel).
    pub fn pause_read(&mut self) {
        self.core.flags |= READ_PAUSED;
    }

    /// Resume reading after [`Conn::pause_read`].
    pub fn resume_read(&mut self) {
        if self.core.flags & READ_PAUSED != 0 {
            self.core.flags &= !READ_PAUSED;
            // Edge-triggered: data may have arrived meanwhile without a new
            // edge, so look at the socket next turn. Proactor: hand over
            // what the cancelled recv took, next turn.
            let edge = self.el.trigger() == Trigger::Edge;
            let proactor_stash = self.el.caps().completion && self.core.flags & STASHED != 0;
            if edge || proactor_stash {
                if edge {
                    self.core.flags |= RECHECK;
                }
                self.el.defer(
                    self.core.token,
                    Event::new(self.core.token, Event::READABLE),
                );
            }
        }
    }

    pub fn is_read_paused(&self) -> bool {
        self.core.flags & READ_PAUSED != 0
    }

    /// Bytes waiting in this connection's output queue.
    pub fn queued(&self) -> usize {
        self.core.out.as_ref().map_or(0, |o| o.len)
    }

    pub fn is_closed(&self) -> bool {
        self.core.flags & CLOSED != 0
    }

    /// A close was requested (or happened, or a socket error doomed the
    /// connection): further input will not be delivered and writes fail.
    /// Handlers that process a batch of frames stop at this point.
    pub fn is_closing(&self) -> bool {
        self.core.flags & (CLOSING | CLOSED) != 0 || self.core.doom.is_some()
    }

    /// The per-connection state.
    pub fn context(&mut self) -> &mut H::Context {
        self.ctx
    }

    /// Run `f` with this connection and its handler after `delay`, on this
    /// loop; nothing runs if the connection closed meanwhile.
    pub fn run_after(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut H, &mut Conn<'_, H>) + 'static,
    ) -> TimerId {
        let token = self.core.token;
        self.el.run_after(delay, move |el| {
            el.with_source(token, |src, el| {
                if let Some(c) = src.as_any().downcast_mut::<StreamConn<H>>() {
                    c.with_handler(el, f);
                }
            });
        })
    }

    /// Override this connection's idle, read and write timeouts (see
    /// [`ConnConfig`]); `None` turns one off. Takes effect from now.
    pub fn set_timeouts(
        &mut self,
        idle: Option<Duration>,
        read: Option<Duration>,
        write: Option<Duration>,
    ) {
        let now = self.el.now();
        let w = self
            .core
            .watch
            .get_or_insert_with(|| Box::new(Watchdog::new(&ConnConfig::default(), now)));
        w.idle = idle;
        w.read = read;
        w.write = write;
        w.last_io = now;
        w.write_progress = now;
    }

    /// Run blocking `work` on `pool`, then `then` with its result back on
    /// this connection's loop (to write the reply). Results of one
    /// connection arrive in submission order; if the connection has closed
    /// by then, `then` is dropped unrun. A full pool is refused at once.
    pub fn offload<R: Send + 'static>(
        &mut self,
        pool: &super::offload::WorkerPool,
        work: impl FnOnce() -> R + Send + 'static,
        then: impl FnOnce(&mut H, &mut Conn<'_, H>, R) + Send + 'static,
    ) -> Result<(), super::offload::PoolFull> {
        let lp = self.el.handle();
        let token = self.core.token;
        pool.submit((token.0 & 0xffff_ffff) as usize, move || {
            let r = work();
            let _ = lp.post(move |el| {
                el.with_source(token, |src, el| {
                    if let Some(c) = src.as_any().downcast_mut::<StreamConn<H>>() {
                        c.with_handler(el, |h, conn| then(h, conn, r));
                    }
                });
            });
        })
    }

    /// Cancel a timer from [`Conn::run_after`].
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.el.cancel(id);
    }

    /// The loop this connection lives on (timers, other sources).
    pub fn event_loop(&mut self) -> &mut EventLoop {
        self.el
    }

    pub fn token(&self) -> Token {
        self.core.token
    }

    pub fn fd(&self) -> RawFd {
        self.core.fd.as_raw_fd()
    }

    /// The peer's address (a syscall: not stored, to keep connections small).
    pub fn peer_addr(&self) -> io::Result<Addr> {
        let a = sys::socket::peer_addr(self.fd())?;
        Addr::from_sockaddr(&a).ok_or_else(|| io::Error::other("unnamed peer"))
    }

    pub fn local_addr(&self) -> io::Result<Addr> {
        let a = sys::socket::local_addr(self.fd())?;
        Addr::from_sockaddr(&a).ok_or_else(|| io::Error::other("unnamed socket"))
    }

    /// A `Send` handle for writing to this connection from other threads.
    pub fn handle(&mut self) -> ConnHandle {
        let flag = self
            .core
            .closed_flag
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)))
            .clone();
        ConnHandle {
            lp: self.el.handle(),
            token: self.core.token,
            closed: flag,
            ops: self.core.ops,
        }
    }
}

impl Core {
    fn check_writable(&self) -> Result<(), Closed> {
        if self.flags & (CLOSED | CLOSING | SHUT_WR_WANTED | WRITE_SHUT) != 0 || self.doom.is_some()
        {
            return Err(Closed);
        }
        Ok(())
    }

    fn write(&mut self, el: &mut EventLoop, cfg: &ConnConfig, data: &[u8]) -> Result<(), Closed> {
        self.check_writable()?;
        if let Some(out) = self.out.as_mut() {
            out.push(data);
            self.check_high_water(cfg);
        } else if data.len() >= DIRECT_WRITE && !el.caps().completion {
            let sent = self.send_staged_and(el, data);
            if sent < data.len() {
                self.queue().push(&data[sent..]);
                self.check_high_water(cfg);
            }
        } else {
            el.write_buf.extend_from_slice(data);
        }
        Ok(())
    }

    fn write_vec(
        &mut self,
        el: &mut EventLoop,
        cfg: &ConnConfig,
        data: Vec<u8>,
    ) -> Result<(), Closed> {
        self.check_writable()?;
        if self.out.is_none() && data.len() >= DIRECT_WRITE && el.caps().completion {
            // Queue it without a copy, behind what this callback staged.
            let out = self.queue();
            out.push(&el.write_buf);
            el.write_buf.clear();
            out.push_vec(data);
            self.check_high_water(cfg);
            return Ok(());
        }
        if self.out.is_none() && data.len() >= DIRECT_WRITE {
            let sent = self.send_staged_and(el, &data);
            if sent < data.len() {
                let rest = if sent == 0 {
                    data
                } else {
                    data[sent..].to_vec()
                };
                self.queue().push_vec(rest);
                self.check_high_water(cfg);
            }
            return Ok(());
        }
        match self.out.as_mut() {
            Some(out) => {
                out.push_vec(data);
                self.check_high_water(cfg);
            }
            None => el.write_buf.extend_from_slice(&data),
        }
        Ok(())
    }

    fn queue(&mut self) -> &mut OutQueue {
        self.out.get_or_insert_with(OutQueue::take_spare)
    }

    fn check_high_water(&mut self, cfg: &ConnConfig) {
        let queued = self.out.as_ref().map_or(0, |o| o.len);
        if queued >= cfg.high_water && self.flags & HIGH_WATER == 0 {
            self.flags |= HIGH_WATER | HIGH_WATER_DUE;
        }
    }

    /// Send the staging buffer followed by `data` in one call, with nothing
    /// queued before them. Returns how much of `data` went out; an unsent
    /// staging remainder is queued.
    fn send_staged_and(&mut self, el: &mut EventLoop, data: &[u8]) -> usize {
        debug_assert!(self.out.is_none());
        let staged = el.write_buf.len();
        let r = if staged == 0 {
            sys::socket::send(self.fd.as_raw_fd(), data)
        } else if data.is_empty() {
            // The common case after a callback: plain send(2), cheaper than sendmsg.
            sys::socket::send(self.fd.as_raw_fd(), &el.write_buf)
        } else {
            sys::socket::sendv(
                self.fd.as_raw_fd(),
                &[IoSlice::new(&el.write_buf), IoSlice::new(data)],
            )
        };
        let n = match r {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                self.doom.get_or_insert(CloseReason::from_io(&e));
                el.write_buf.clear();
                return data.len();
            }
        };
        self.note_sent(el, n as u64);
        if n < staged {
            self.queue().push(&el.write_buf[n..]);
            el.write_buf.clear();
            return 0;
        }
        el.write_buf.clear();
        n - staged
    }

    /// Send what the callback staged. Runs after every callback.
    fn flush_staged(&mut self, el: &mut EventLoop) {
        if el.caps().completion {
            return self.flush_staged_ring(el);
        }
        if el.write_buf.is_empty() {
            return;
        }
        if self.flags & CLOSED != 0 || self.doom.is_some() {
            el.write_buf.clear();
            return;
        }
        if let Some(out) = self.out.as_mut() {
            // The socket was full a moment ago: queue, and let the writable
            // event send it.
            out.push(&el.write_buf);
            el.write_buf.clear();
            return;
        }
        self.send_staged_and(el, &[]);
    }

    /// Proactor: queue what the callback staged and start sending. With
    /// nothing pending, the staging buffer itself goes to the ring (the
    /// loop gets a spare one), so a reply is not copied again.
    fn flush_staged_ring(&mut self, el: &mut EventLoop) {
        if self.flags & CLOSED != 0 || self.doom.is_some() {
            el.write_buf.clear();
            return;
        }
        if !el.write_buf.is_empty() {
            match self.out.as_mut() {
                Some(out) => {
                    out.push(&el.write_buf);
                    el.write_buf.clear();
                }
                None => {
                    let spare = ring(el).spare_buf();
                    let staged = std::mem::replace(&mut el.write_buf, spare);
                    let out = self.queue();
                    out.len = staged.len();
                    out.chunks.push_back(Chunk::Bytes(staged));
                }
            }
        }
        self.pump(el);
    }

    /// Proactor: unless an operation is in flight, start the next send (or
    /// sendfile until the socket is full, then wait for room). An emptied
    /// queue completes the write.
    fn pump(&mut self, el: &mut EventLoop) {
        let fd = self.fd.as_raw_fd();
        let Some(out) = self.out.as_mut() else { return };
        let mut written = 0u64;
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
                Some(Chunk::Bytes(_)) => {
                    let Some(Chunk::Bytes(buf)) = out.chunks.pop_front() else {
                        unreachable!()
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
                    self.doom.get_or_insert(CloseReason::from_io(&e));
                    return;
                }
            }
        }
        self.note_sent(el, written);
        self.release_drained();
    }

    /// Proactor: a send finished.
    fn on_sent(&mut self, el: &mut EventLoop, res: i32, buf: Vec<u8>, off: usize) {
        let fd = self.fd.as_raw_fd();
        let Some(out) = self.out.as_mut() else {
            return ring(el).recycle(buf);
        };
        out.busy = false;
        if res == -libc::EAGAIN {
            // An old kernel that does not wait for room itself.
            out.chunks.push_front(Chunk::Bytes(buf));
            out.head = off;
            match ring(el).poll_writable(fd) {
                Ok(()) => out.busy = true,
                Err(e) => {
                    self.doom.get_or_insert(CloseReason::from_io(&e));
                }
            }
            return;
        }
        if res <= 0 {
            let e = if res == 0 {
                io::Error::new(io::ErrorKind::WriteZero, "send made no progress")
            } else {
                io::Error::from_raw_os_error(-res)
            };
            self.doom.get_or_insert(CloseReason::from_io(&e));
            return ring(el).recycle(buf);
        }
        let n = res as usize;
        out.len -= n;
        self.note_sent(el, n as u64);
        let out = self
            .out
            .as_mut()
            .expect("a queue while a send is in flight");
        if off + n < buf.len() {
            match ring(el).send(fd, buf, off + n) {
                Ok(()) => out.busy = true,
                Err(e) => {
                    self.doom.get_or_insert(CloseReason::from_io(&e));
                }
            }
            return;
        }
        ring(el).recycle(buf);
        self.pump(el);
    }

    /// Write queued output until the socket is full or the queue is empty.
    fn flush_queue(&mut self, el: &mut EventLoop) {
        if el.caps().completion {
            return self.pump(el);
        }
        let fd = self.fd.as_raw_fd();
        let Some(out) = self.out.as_mut() else { return };
        let mut written = 0u64;
        while out.len > 0 {
            match out.send_some(fd) {
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.doom.get_or_insert(CloseReason::from_io(&e));
                    break;
                }
            }
        }
        self.note_sent(el, written);
        self.release_drained();
    }

    /// Account for `n` bytes read from the socket.
    fn note_received(&mut self, el: &EventLoop, n: u64) {
        LoopStats::add(&el.stats().bytes_in, n);
        if let Some(w) = self.watch.as_mut() {
            w.last_io = el.now();
        }
    }

    /// Account for `n` bytes the socket took.
    fn note_sent(&mut self, el: &EventLoop, n: u64) {
        if n == 0 {
            return;
        }
        LoopStats::add(&el.stats().bytes_out, n);
        if let Some(w) = self.watch.as_mut() {
            w.last_io = el.now();
            w.write_progress = el.now();
        }
    }

    /// A queue with nothing left to send or in flight completes the write.
    fn release_drained(&mut self) {
        if self.out.as_ref().is_some_and(|o| o.len == 0 && !o.busy) {
            OutQueue::put_spare(self.out.take());
            self.flags |= WRITE_COMPLETE_DUE;
            self.flags &= !HIGH_WATER;
        }
    }

    fn desired_interest(&self, trigger: Trigger) -> Option<Interest> {
        if trigger == Trigger::Edge {
            // Registered once for both directions: no epoll_ctl per write.
            return Some(Interest::BOTH);
        }
        let read = self.flags & (READ_PAUSED | PEER_EOF) == 0;
        let write = self.out.is_some();
        match (read, write) {
            (true, true) => Some(Interest::BOTH),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }
}

/// The per-loop part of a server: its handler and connection settings.
pub(crate) struct Service<H> {
    pub(crate) handler: std::cell::RefCell<H>,
    pub(crate) cfg: ConnConfig,
}

impl<H> Service<H> {
    pub(crate) fn new(handler: H, cfg: ConnConfig) -> Rc<Service<H>> {
        Rc::new(Service {
            handler: std::cell::RefCell::new(handler),
            cfg,
        })
    }
}

/// A connection registered on a loop.
pub(crate) struct StreamConn<H: EventHandler> {
    core: Core,
    ctx: H::Context,
    service: Rc<Service<H>>,
}

/// Operations on a connection that do not depend on its handler type, for
/// cross-thread handles.
pub(crate) trait ConnOps {
    fn write_from_handle(&mut self, el: &mut EventLoop, data: &[u8]);
    fn close_from_handle(&mut self, el: &mut EventLoop);
}

impl<H: EventHandler> StreamConn<H> {
    /// Register `fd` on `el` and run `on_open`.
    pub(crate) fn open(
        el: &mut EventLoop,
        service: Rc<Service<H>>,
        fd: OwnedFd,
        tcp: bool,
    ) -> io::Result<Token> {
        service.cfg.apply(fd.as_raw_fd(), tcp)?;
        let token = if el.caps().completion {
            // Reads are armed by the first settle.
            let token = el.reserve_parked(fd.as_raw_fd())?;
            if let Err(e) = ring(el).open_stream(fd.as_raw_fd(), token) {
                let _ = el.deregister(token);
                return Err(e);
            }
            token
        } else {
            let interest = if el.trigger() == Trigger::Edge {
                Interest::BOTH
            } else {
                Interest::READABLE
            };
            el.reserve(fd.as_raw_fd(), interest)?
        };
        let stats = &el.stats();
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        LoopStats::add(&stats.connections_total, 1);
        let mut conn = StreamConn {
            core: Core {
                fd,
                token,
                flags: 0,
                out: None,
                input: None,
                closed_flag: None,
                doom: None,
                closing_reason: None,
                linger_timer: None,
                watch: service
                    .cfg
                    .has_timeouts()
                    .then(|| Box::new(Watchdog::new(&service.cfg, el.now()))),
                ops: ops_for::<H>,
            },
            ctx: H::Context::default(),
            service,
        };
        conn.call(el, |h, c| h.on_open(c));
        conn.settle(el);
        if conn.core.flags & CLOSED == 0 {
            el.attach(token, Box::new(conn));
        }
        Ok(token)
    }

    /// Run a handler callback, then send what it staged.
    fn call(&mut self, el: &mut EventLoop, f: impl FnOnce(&mut H, &mut Conn<'_, H>)) {
        let service = &self.service;
        {
            let mut h = service.handler.borrow_mut();
            let mut conn = Conn {
                core: &mut self.core,
                ctx: &mut self.ctx,
                el,
                cfg: &service.cfg,
            };
            f(&mut h, &mut conn);
        }
        self.core.flush_staged(el);
    }

    /// Run `f` on this connection with its handler (typed access for timers
    /// and cross-thread tasks), then settle.
    pub(crate) fn with_handler(
        &mut self,
        el: &mut EventLoop,
        f: impl FnOnce(&mut H, &mut Conn<'_, H>),
    ) {
        if self.core.flags & CLOSED != 0 {
            return;
        }
        self.call(el, f);
        self.settle(el);
    }

    fn on_readable(&mut self, el: &mut EventLoop, ev: Event) {
        // With the peer's FIN already reported, a short read does not mean
        // the socket is drained: the EOF is still to be read, and
        // edge-triggered mode will not report it again. Nor after a
        // deferred read (`RECHECK`), which may sit in front of a FIN whose
        // notice was consumed earlier.
        let short_read_drains =
            !ev.is_read_closed() && !el.caps().merges_notices && self.core.flags & RECHECK == 0;
        let budget = el.config().read_budget;
        let fd = self.core.fd.as_raw_fd();
        for _ in 0..budget {
            if self.core.flags & (READ_PAUSED | PEER_EOF | CLOSED) != 0 || self.core.doom.is_some()
            {
                return;
            }
            let mut rb = std::mem::take(&mut el.read_buf);
            rb.clear();
            let r = sys::socket::recv_spare(fd, &mut rb);
            let cap = rb.capacity();
            match r {
                Ok(0) => {
                    el.read_buf = rb;
                    self.core.flags |= PEER_EOF;
                    self.core.flags &= !RECHECK;
                    self.report_eof(el);
                    return;
                }
                Ok(n) => {
                    self.core.note_received(el, n as u64);
                    if self.core.flags & CLOSING != 0 {
                        // Closing: input is read only to be discarded.
                        el.read_buf = rb;
                    } else {
                        self.deliver(el, rb);
                    }
                    if n < cap && short_read_drains {
                        // A short read drained the socket; a new arrival raises
                        // a new event, in edge mode too.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    el.read_buf = rb;
                    self.core.flags &= !RECHECK;
                    return;
                }
                Err(e) => {
                    el.read_buf = rb;
                    self.core.doom.get_or_insert(CloseReason::from_io(&e));
                    return;
                }
            }
        }
        // Budget used up with data possibly left: let the others run first.
        if el.trigger() == Trigger::Edge {
            self.core.flags |= RECHECK;
            el.defer(
                self.core.token,
                Event::new(self.core.token, Event::READABLE),
            );
        }
    }

    /// The peer's EOF has been read.
    fn report_eof(&mut self, el: &mut EventLoop) {
        if self.core.flags & (CLOSING | LINGERING) != 0 {
            // Nothing more to deliver: the close can finish.
            self.core.flags &= !LINGERING;
        } else {
            self.call(el, |h, c| h.on_read_closed(c));
        }
    }

    /// Proactor: a recv completion (see [`Done::Recv`]).
    fn on_recv(&mut self, el: &mut EventLoop, res: i32, buf: Option<RecvBuf>) {
        if res == 0 {
            self.core.flags |= PEER_EOF;
            if self.core.flags & STASHED != 0 {
                self.core.flags |= EOF_PENDING;
            } else {
                self.report_eof(el);
            }
            return;
        }
        if res < 0 {
            let e = io::Error::from_raw_os_error(-res);
            self.core.doom.get_or_insert(CloseReason::from_io(&e));
            return;
        }
        let mut rb = std::mem::take(&mut el.read_buf);
        rb.clear();
        match buf {
            Some(buf) => ring(el).take_recv(buf, &mut rb),
            None => {
                el.read_buf = rb;
                let e = io::Error::other("io_uring: recv completion without a buffer");
                self.core.doom.get_or_insert(CloseReason::from_io(&e));
                return;
            }
        }
        self.core.note_received(el, rb.len() as u64);
        if self.core.flags & (CLOSING | CLOSED) != 0 || self.core.doom.is_some() {
            // Closing: input is read only to be discarded.
            el.read_buf = rb;
        } else if self.core.flags & READ_PAUSED != 0 {
            self.core
                .input
                .get_or_insert_with(|| Box::new(Buffer::new()))
                .extend_from_slice(&rb);
            self.core.flags |= STASHED;
            el.read_buf = rb;
        } else {
            self.deliver(el, rb);
        }
    }

    /// Proactor: after `resume_read`, hand over the input stashed while
    /// paused (and an EOF that came behind it).
    fn deliver_stash(&mut self, el: &mut EventLoop) {
        if self.core.flags & (STASHED | READ_PAUSED | CLOSING | CLOSED) != STASHED
            || self.core.doom.is_some()
        {
            return;
        }
        self.core.flags &= !STASHED;
        if let Some(tail) = self.core.input.take() {
            self.hand_over_tail(el, tail);
        }
        if self.core.flags & EOF_PENDING != 0 {
            self.core.flags &= !EOF_PENDING;
            self.report_eof(el);
        }
    }

    /// Hand freshly read bytes (in the loop's buffer `rb`) to the handler,
    /// behind any tail kept from before.
    fn deliver(&mut self, el: &mut EventLoop, rb: Vec<u8>) {
        self.core.flags &= !STASHED;
        if let Some(mut tail) = self.core.input.take() {
            tail.extend_from_slice(&rb);
            let mut rb = rb;
            rb.clear();
            el.read_buf = rb;
            self.hand_over_tail(el, tail);
        } else {
            let mut input = Buffer::from(rb);
            self.call(el, |h, c| h.on_message(c, &mut input));
            if !input.is_empty() {
                self.core.input = Some(Box::new(Buffer::from(input.as_slice().to_vec())));
                if let Some(w) = self.core.watch.as_mut() {
                    w.partial_since = Some(el.now());
                }
            }
            let mut rb = input.into_vec();
            rb.clear();
            el.read_buf = rb;
        }
    }

    /// Give the kept input to the handler; keep what it leaves.
    fn hand_over_tail(&mut self, el: &mut EventLoop, mut tail: Box<Buffer>) {
        self.call(el, |h, c| h.on_message(c, &mut tail));
        if !tail.is_empty() {
            self.core.input = Some(tail);
        } else if let Some(w) = self.core.watch.as_mut() {
            w.partial_since = None;
        }
    }

    /// Apply what the callbacks asked for: close, shutdown, interest changes,
    /// deferred callbacks.
    fn settle(&mut self, el: &mut EventLoop) {
        // Bounded: a handler that writes from every on_write_complete gets
        // its next turn later instead of starving the loop.
        for _ in 0..16 {
            if self.core.flags & CLOSED != 0 {
                return;
            }
            if let Some(reason) = self.core.doom.take() {
                return self.close_now(el, reason);
            }
            if self.core.flags & HIGH_WATER_DUE != 0 {
                self.core.flags &= !HIGH_WATER_DUE;
                let queued = self.core.out.as_ref().map_or(0, |o| o.len);
                self.call(el, |h, c| h.on_high_water(c, queued));
                continue;
            }
            if self.core.out.is_none() {
                if self.core.flags & WRITE_COMPLETE_DUE != 0 {
                    self.core.flags &= !WRITE_COMPLETE_DUE;
                    if self.core.flags & CLOSING == 0 {
                        self.call(el, |h, c| h.on_write_complete(c));
                        continue;
                    }
                }
                if self.core.flags & CLOSING != 0 {
                    if self.core.flags & PEER_EOF != 0 {
                        let reason = self
                            .core
                            .closing_reason
                            .take()
                            .unwrap_or(CloseReason::Local);
                        return self.close_now(el, reason);
                    }
                    if self.core.flags & LINGERING == 0 {
                        self.start_linger(el);
                    }
                } else if self.core.flags & SHUT_WR_WANTED != 0 && self.core.flags & WRITE_SHUT == 0
                {
                    self.core.flags |= WRITE_SHUT;
                    if let Err(e) = sys::socket::shutdown_write(self.core.fd.as_raw_fd()) {
                        self.core.doom = Some(CloseReason::from_io(&e));
                        continue;
                    }
                }
            }
            break;
        }
        let r = if el.caps().completion {
            let read = self.core.flags & (READ_PAUSED | PEER_EOF) == 0;
            ring(el).set_reading(self.core.fd.as_raw_fd(), read)
        } else {
            let want = self.core.desired_interest(el.trigger());
            el.set_interest(self.core.token, want)
        };
        if let Err(e) = r {
            return self.close_now(el, CloseReason::from_io(&e));
        }
        if self.core.watch.is_some() {
            self.arm_watchdog(el);
        }
    }

    /// Make sure a timer is set no later than the earliest deadline.
    fn arm_watchdog(&mut self, el: &mut EventLoop) {
        let writing = self.core.out.is_some();
        let Some(w) = self.core.watch.as_mut() else {
            return;
        };
        let Some((at, _)) = w.next(writing) else {
            return;
        };
        if let Some((_, armed)) = w.timer {
            if armed <= at {
                return; // fires early enough; it re-checks then
            }
        }
        if let Some((id, _)) = w.timer.take() {
            el.cancel(id);
        }
        let token = self.core.token;
        let delay = at.saturating_duration_since(Instant::now());
        let id = el.run_after(delay, move |el| {
            el.with_source(token, |src, el| {
                if let Some(c) = src.as_any().downcast_mut::<StreamConn<H>>() {
                    c.on_watchdog(el);
                }
            });
        });
        w.timer = Some((id, at));
    }

    fn on_watchdog(&mut self, el: &mut EventLoop) {
        let writing = self.core.out.is_some();
        let Some(w) = self.core.watch.as_mut() else {
            return;
        };
        w.timer = None;
        if let Some((at, reason)) = w.next(writing) {
            if at <= Instant::now() {
                self.core.doom.get_or_insert(reason);
            }
        }
        self.settle(el);
    }

    fn start_linger(&mut self, el: &mut EventLoop) {
        self.core.flags |= LINGERING | WRITE_SHUT;
        if let Err(e) = sys::socket::shutdown_write(self.core.fd.as_raw_fd()) {
            let reason = CloseReason::from_io(&e);
            return self.close_now(el, reason);
        }
        let token = self.core.token;
        let id = el.run_after(self.service.cfg.linger, move |el| {
            el.with_source(token, |src, el| {
                if let Some(c) = src.as_any().downcast_mut::<StreamConn<H>>() {
                    c.core.linger_timer = None;
                    let reason = c.core.closing_reason.take().unwrap_or(CloseReason::Local);
                    c.close_now(el, reason);
                }
            });
        });
        self.core.linger_timer = Some(id);
    }

    /// Close at once: unregister, tell the handler, release the fd (when the
    /// source is dropped by the dispatcher).
    pub(crate) fn close_now(&mut self, el: &mut EventLoop, reason: CloseReason) {
        if self.core.flags & CLOSED != 0 {
            return;
        }
        // Mark closed first so writes from on_close fail cleanly.
        self.core.flags |= CLOSED;
        if let Some(flag) = &self.core.closed_flag {
            flag.store(true, Ordering::Release);
        }
        if let Some(t) = self.core.linger_timer.take() {
            el.cancel(t);
        }
        if let Some((t, _)) = self.core.watch.as_mut().and_then(|w| w.timer.take()) {
            el.cancel(t);
        }
        if el.caps().completion {
            let _ = ring(el).close_stream(self.core.fd.as_raw_fd());
        }
        let _ = el.deregister(self.core.token);
        el.stats().connections_open.fetch_sub(1, Ordering::Relaxed);
        OutQueue::put_spare(self.core.out.take());
        self.core.input = None;
        let service = self.service.clone();
        let mut h = service.handler.borrow_mut();
        let mut conn = Conn {
            core: &mut self.core,
            ctx: &mut self.ctx,
            el,
            cfg: &service.cfg,
        };
        h.on_close(&mut conn, &reason);
        el.write_buf.clear();
    }
}

impl<H: EventHandler> Source for StreamConn<H> {
    fn ready(&mut self, el: &mut EventLoop, _token: Token, ev: Event) {
        if el.caps().completion {
            // Only deferred events come here: the ring reports the rest.
            if ev.is_readable() {
                self.deliver_stash(el);
            }
            return self.settle(el);
        }
        if ev.is_readable() {
            self.on_readable(el, ev);
        }
        if ev.is_writable() && self.core.out.is_some() && self.core.doom.is_none() {
            self.core.flush_queue(el);
        }
        if ev.is_error() && self.core.doom.is_none() && self.core.flags & CLOSED == 0 {
            if let Ok(Some(e)) = sys::socket::take_error(self.core.fd.as_raw_fd()) {
                self.core.doom = Some(CloseReason::from_io(&e));
            }
        }
        if ev.is_hup() && self.core.flags & PEER_EOF != 0 && self.core.flags & CLOSING != 0 {
            // Both directions are gone: nothing left to drain or send.
            OutQueue::put_spare(self.core.out.take());
        }
        self.settle(el);
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn complete(&mut self, el: &mut EventLoop, _token: Token, c: Completion) {
        match c.done {
            // (A closed connection is out of the registry: its completions
            // never reach it; the loop gives their buffers back.)
            Done::Recv { res, buf } => self.on_recv(el, res, buf),
            Done::Send { res, buf, off } => self.core.on_sent(el, res, buf, off),
            Done::Writable { res } => {
                if let Some(out) = self.core.out.as_mut() {
                    out.busy = false;
                }
                if res < 0 {
                    let e = io::Error::from_raw_os_error(-res);
                    self.core.doom.get_or_insert(CloseReason::from_io(&e));
                } else {
                    self.core.pump(el);
                }
            }
        }
        self.settle(el);
    }

    fn shutdown(&mut self, el: &mut EventLoop, _token: Token) {
        self.close_now(el, CloseReason::Shutdown);
    }

    fn drain(&mut self, el: &mut EventLoop, _token: Token) {
        self.with_handler(el, |_, c| c.close_with(CloseReason::Shutdown));
    }
}

impl<H: EventHandler> ConnOps for StreamConn<H> {
    fn write_from_handle(&mut self, el: &mut EventLoop, data: &[u8]) {
        self.with_handler(el, |_, c| {
            let _ = c.write(data);
        });
    }

    fn close_from_handle(&mut self, el: &mut EventLoop) {
        self.with_handler(el, |_, c| c.close());
    }
}

/// A `Send + Sync` handle to a connection: write to it or close it from any
/// thread. Each write is delivered whole and in order relative to other
/// writes through handles from the same thread; a write to a connection that
/// has closed fails with [`Closed`] (or, if it closes while the write is in
/// flight to its loop, is dropped).
#[derive(Clone)]
pub struct ConnHandle {
    lp: LoopHandle,
    token: Token,
    closed: Arc<AtomicBool>,
    ops: OpsFn,
}

impl ConnHandle {
    pub fn write(&self, data: impl Into<Vec<u8>>) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        let data = data.into();
        let (token, ops) = (self.token, self.ops);
        self.lp
            .post(move |el| {
                el.with_source(token, |src, el| {
                    if let Some(c) = ops(src.as_any()) {
                        c.write_from_handle(el, &data);
                    }
                });
            })
            .map_err(|_| Closed)
    }

    /// Graceful close, as `Conn::close`.
    pub fn close(&self) {
        let (token, ops) = (self.token, self.ops);
        let _ = self.lp.post(move |el| {
            el.with_source(token, |src, el| {
                if let Some(c) = ops(src.as_any()) {
                    c.close_from_handle(el);
                }
            });
        });
    }

    /// Run `f` with the connection's handler on its loop (typed access).
    /// Does nothing if the connection is gone or `H` is not its handler type.
    pub fn run<H: EventHandler>(
        &self,
        f: impl FnOnce(&mut H, &mut Conn<'_, H>) + Send + 'static,
    ) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        let token = self.token;
        self.lp
            .post(move |el| {
                el.with_source(token, |src, el| {
                    if let Some(c) = src.as_any().downcast_mut::<StreamConn<H>>() {
                        c.with_handler(el, f);
                    }
                });
            })
            .map_err(|_| Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.lp.is_stopped()
    }

    pub fn loop_handle(&self) -> &LoopHandle {
        &self.lp
    }
}

type OpsFn = fn(&mut dyn Any) -> Option<&mut dyn ConnOps>;

/// A handle does not know its connection's handler type; this function,
/// instantiated for it when the connection opened, recovers `ConnOps`.
fn ops_for<H: EventHandler>(src: &mut dyn Any) -> Option<&mut dyn ConnOps> {
    src.downcast_mut::<StreamConn<H>>()
        .map(|c| c as &mut dyn ConnOps)
}

/// The loop's ring, for a connection opened on a completion driver (only
/// such a loop opens one that way, so the ring is there).
fn ring(el: &mut EventLoop) -> &mut Uring {
    el.ring()
        .expect("a completion-driven connection on a loop without a ring")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poller::PollerKind;
    use crate::reactor::LoopConfig;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Takes one message, then pauses reading; records what it is given.
    #[derive(Default)]
    struct Pauser {
        got: Vec<u8>,
        messages: usize,
        eof: bool,
    }

    impl EventHandler for Pauser {
        type Context = ();

        fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
            self.got.extend_from_slice(input.as_slice());
            self.messages += 1;
            input.clear();
            conn.pause_read();
        }

        fn on_read_closed(&mut self, _conn: &mut Conn<'_, Self>) {
            self.eof = true;
        }
    }

    /// Proactor: completions already posted when reading pauses (data the
    /// recv took, then the peer's FIN) are kept, and handed over, in order,
    /// on resume.
    #[test]
    fn proactor_keeps_what_arrives_while_paused_and_the_eof_behind_it() {
        let mut el = EventLoop::new(LoopConfig {
            poller: PollerKind::Proactor,
            ..LoopConfig::default()
        })
        .unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let svc = Service::new(Pauser::default(), ConnConfig::default());
        let token = StreamConn::open(&mut el, svc.clone(), OwnedFd::from(a), false).unwrap();
        el.turn(Some(Duration::ZERO)).unwrap(); // the recv goes to the kernel
                                                // Each write returns to user space on the loop's thread, which runs
                                                // the ring's pending work: one completion per write, none reaped yet.
        b.write_all(b"one").unwrap();
        b.write_all(b"two").unwrap();
        b.shutdown(std::net::Shutdown::Write).unwrap();
        for _ in 0..100 {
            el.turn(Some(Duration::from_millis(20))).unwrap();
            if svc.handler.borrow().messages > 0 {
                break;
            }
        }
        {
            let h = svc.handler.borrow();
            assert_eq!(h.got, b"one", "paused after the first message");
            assert!(!h.eof, "the EOF is behind stashed input");
        }
        el.with_source(token, |src, el| {
            let c = src.as_any().downcast_mut::<StreamConn<Pauser>>().unwrap();
            assert_ne!(c.core.flags & STASHED, 0, "the second completion was kept");
            c.with_handler(el, |_, conn| conn.resume_read());
        })
        .unwrap();
        el.turn(Some(Duration::ZERO)).unwrap();
        let h = svc.handler.borrow();
        assert_eq!(h.got, b"onetwo");
        assert_eq!(h.messages, 2);
        assert!(h.eof);
    }
}
