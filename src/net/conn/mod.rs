//! The connection core: one stream connection (TCP or Unix-domain) on a
//! loop, and the [`Conn`] view a handler works through.
//!
//! ```text
//!  mod.rs       Conn: the handler's API (write, close, pause, timers, offload, handle)
//!  handle.rs    ConnHandle: the Send handle; the table's mailbox
//!  table.rs     Table: a server's (or client's) per-loop state: handler, connections,
//!               listeners, dials, timers; the Source the loop dispatches to
//!  core.rs      Core: fd, lifecycle, output queue, input tail, accounting
//!  state.rs     the lifecycle enums and their legal combinations
//!  out.rs       the output queue and its pool
//!  watchdog.rs  idle / read / write timeouts
//!  config.rs    ConnConfig, Keepalive
//!  path/        IoPath: how bytes move — readiness.rs (syscalls on readiness),
//!               ring.rs (io_uring completions); a new path is a new file there
//! ```
//!
//! Arrows go down: `Conn` and the table use the core and the path; the path
//! uses the core and the loop, never the handler.
//!
//! Memory of an idle connection: the socket fd, a token, the lifecycle and
//! a few `Option<Box<_>>`s in a table slot. Input is read into the table's
//! shared buffer and only an unconsumed tail is copied into the connection;
//! output is gathered in the table's staging buffer and sent when the
//! callback returns, and only what the socket did not take is queued in the
//! connection.

mod config;
mod core;
pub(crate) mod handle;
mod out;
pub(crate) mod path;
mod preamble;
mod state;
pub(crate) mod table;
mod watchdog;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use config::{ConnConfig, Keepalive, DEFAULT_HIGH_WATER, DEFAULT_WRITE_TIMEOUT};
pub use handle::ConnHandle;
pub use out::SharedBytes;
pub use table::ConnTimer;

use self::core::Core;
use self::out::DIRECT_WRITE;
use self::path::Path;
use self::state::{Closing, Phase, ReadState, WriteState};
use self::table::{Job, Shared};
use self::watchdog::Watchdog;
use super::handler::{CloseReason, EventHandler};
use super::Addr;
use crate::reactor::LoopCtx;
use crate::sys;

/// The write failed because the connection is closed or closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection is closed")]
pub struct Closed;

/// What a handler works with during a callback: write, close, inspect.
///
/// Not `Send`: it exists only on the connection's loop thread, for the
/// duration of one callback. Use [`Conn::handle`] to reach the connection
/// from elsewhere.
pub struct Conn<'a, H: EventHandler> {
    pub(crate) core: &'a mut Core,
    pub(crate) path: &'a mut Path,
    pub(crate) ctx: &'a mut H::Context,
    pub(crate) lp: LoopCtx<'a>,
    pub(crate) shared: &'a mut Shared<H>,
    /// This connection's key in its table.
    pub(crate) key: u64,
}

impl<'a, H: EventHandler> Conn<'a, H> {
    /// Queue `data` for sending; it goes out, in order, when the callback
    /// returns (large writes go out at once). Fails only if the connection is
    /// closed or closing; a send error later closes it with a reason.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Closed> {
        self.core.check_writable()?;
        let el = &mut *self.lp.el;
        self.path
            .write(self.core, el, &mut self.shared.staged, data);
        self.core.check_high_water(&self.shared.cfg);
        Ok(())
    }

    /// Like [`Conn::write`], taking ownership (a large vector is queued
    /// without a copy if the socket cannot take it at once).
    pub fn write_vec(&mut self, data: Vec<u8>) -> Result<(), Closed> {
        self.core.check_writable()?;
        let el = &mut *self.lp.el;
        self.path
            .write_vec(self.core, el, &mut self.shared.staged, data);
        self.core.check_high_water(&self.shared.cfg);
        Ok(())
    }

    /// Queue `len` bytes of `file` from `offset`, after everything written
    /// before; they go out with sendfile(2), without passing through user
    /// space. The file must not shrink meanwhile (that closes the connection).
    /// A shared file (`Arc<File>`, e.g. from an open-file cache) is held
    /// until its region is sent; sendfile never moves its offset.
    pub fn send_file(
        &mut self,
        file: impl Into<std::sync::Arc<std::fs::File>>,
        offset: u64,
        len: u64,
    ) -> Result<(), Closed> {
        self.core.check_writable()?;
        // What this callback staged goes first, then the file.
        let el = &mut *self.lp.el;
        let staged = &mut self.shared.staged;
        self.path
            .write_file(self.core, el, staged, file.into(), offset, offset + len);
        self.core.check_high_water(&self.shared.cfg);
        Ok(())
    }

    /// Queue shared bytes after everything written before, without copying
    /// them: the queue holds a reference until the socket has taken them,
    /// so many connections can send one large value (a stored blob, a
    /// cached page) at once for the memory of one copy. Small data (under
    /// 16 KiB) is copied like [`Conn::write`], which is cheaper.
    pub fn write_shared(&mut self, data: SharedBytes) -> Result<(), Closed> {
        self.core.check_writable()?;
        if (*data).as_ref().len() < DIRECT_WRITE {
            return self.write((*data).as_ref());
        }
        // What this callback staged goes first, then the shared bytes.
        let el = &mut *self.lp.el;
        self.path
            .write_shared(self.core, el, &mut self.shared.staged, data);
        self.core.check_high_water(&self.shared.cfg);
        Ok(())
    }

    /// Send what this callback has written so far now, instead of when it returns.
    pub fn flush(&mut self) {
        let el = &mut *self.lp.el;
        self.path
            .flush_staged(self.core, el, &mut self.shared.staged);
        if self.core.out.is_some() {
            self.path.flush(self.core, el);
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
        let staged = &mut self.shared.staged;
        if self.core.out.is_some() {
            // Output is waiting: encode behind what is staged, then let the
            // path queue it.
            let start = staged.len();
            let r = f(self.ctx, staged);
            self.path.staged_grew(self.core, staged, start);
            self.core.check_high_water(&self.shared.cfg);
            return Ok(r);
        }
        Ok(f(self.ctx, staged))
    }

    /// Finish sending what is queued, then half-close (FIN); reading goes on
    /// until the peer closes.
    pub fn shutdown_write(&mut self) {
        if self.core.write == WriteState::Open {
            self.core.write = WriteState::ShutWanted;
            self.path.closing(self.core);
        }
    }

    /// Graceful close: stop delivering input, send what is queued, shut down
    /// the write side, then close (after the peer's FIN or the linger time).
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    /// Graceful close reporting `reason` to `on_close`.
    pub fn close_with(&mut self, reason: CloseReason) {
        if self.core.phase == Phase::Open {
            let reason = if self.core.read == ReadState::Eof && reason == CloseReason::Local {
                CloseReason::PeerClosed
            } else {
                reason
            };
            self.path.closing(self.core);
            let budget = self.shared.cfg.closing_time;
            self.core.phase = Phase::Closing(Box::new(Closing {
                reason,
                lingering: false,
                linger: self.path.lingers(),
                discarded: 0,
                deadline: self.lp.now() + budget,
            }));
            // The whole close is bounded in time (the linger, once output
            // has drained, takes this timer's place).
            let tag = self
                .shared
                .add_timer(self.lp.el, budget, Job::Linger(self.key));
            self.core.linger_timer = Some(tag);
        }
    }

    /// Close after an exchange that ended cleanly, when the peer is not
    /// expected to send anything more (an HTTP client that asked for
    /// `Connection: close` and whose request was read to its end): like
    /// [`close`](Self::close), but once the output is sent the socket is
    /// closed at once instead of shutting down its write side and waiting
    /// for the peer's FIN, which saves a `shutdown`, a wakeup and a read per
    /// connection (what nginx does). Only when no input is left unread in
    /// the connection's buffer; otherwise, and on a connection already
    /// lingering, it is [`close`](Self::close). A peer that sends after all
    /// may get a reset (closing over unread bytes sends one), so keep
    /// `close` for errors and for closes the peer did not ask for.
    pub fn close_done(&mut self) {
        self.close();
        if let Phase::Closing(c) = &mut self.core.phase {
            // Unread input is checked when the output has gone (the
            // buffer is only settled after the callback).
            c.linger = false;
        }
    }

    /// Close now, dropping queued output.
    pub fn abort(&mut self) {
        self.core.doom.get_or_insert(CloseReason::Aborted);
    }

    /// Stop reading from the socket (the peer's writes back up in the kernel).
    pub fn pause_read(&mut self) {
        if self.core.read == ReadState::Reading {
            self.core.read = ReadState::Paused;
        }
    }

    /// Resume reading after [`Conn::pause_read`].
    pub fn resume_read(&mut self) {
        if self.core.read == ReadState::Paused {
            self.core.read = ReadState::Reading;
            // Input the handler left (a message it stopped before, or a
            // partial one) comes again once this callback returns, without
            // waiting for more bytes.
            self.core.due.kept_input = self.core.input.is_some();
            self.path.resumed(self.core, self.lp.el);
        }
    }

    /// Output this connection holds: written during this callback and not
    /// sent yet, plus the queue. A handler that turns each message into a
    /// reply stops taking messages past [`high_water`](Self::high_water)
    /// (see [`Framed`](crate::codec::framed::Framed)), so one read of small
    /// requests cannot make it hold an unbounded amount of replies.
    pub fn pending_output(&self) -> usize {
        self.shared.staged.len() + self.core.queued()
    }

    /// The server's high-water mark for queued output
    /// ([`ConnConfig::high_water`]).
    pub fn high_water(&self) -> usize {
        self.shared.cfg.high_water
    }

    /// Whether reading is paused.
    pub fn is_read_paused(&self) -> bool {
        self.core.read == ReadState::Paused
    }

    /// Bytes waiting in this connection's output queue.
    pub fn queued(&self) -> usize {
        self.core.queued()
    }

    /// Whether the connection has closed (`on_close` is running or ran).
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// A close was requested (or happened, or a socket error doomed the
    /// connection): further input will not be delivered and writes fail.
    /// Handlers that process a batch of frames stop at this point.
    pub fn is_closing(&self) -> bool {
        self.core.is_closing()
    }

    /// The per-connection state.
    pub fn context(&mut self) -> &mut H::Context {
        self.ctx
    }

    /// The loop this connection lives on, as handlers see it: time, timers,
    /// its handle and counters. Nothing there re-enters this callback.
    pub fn loop_ctx(&mut self) -> &mut LoopCtx<'a> {
        &mut self.lp
    }

    /// Run `f` with this connection and its handler after `delay`, on this
    /// loop; nothing runs if the connection closed meanwhile.
    pub fn run_after(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut H, &mut Conn<'_, H>) + 'static,
    ) -> ConnTimer {
        let job = Job::User(self.key, Box::new(f));
        ConnTimer(self.shared.add_timer(self.lp.el, delay, job))
    }

    /// Cancel a timer from [`Conn::run_after`] (nothing happens if it fired).
    pub fn cancel_timer(&mut self, id: ConnTimer) {
        self.shared.cancel_timer(self.lp.el, id.0);
    }

    /// Override this connection's idle, read and write timeouts (see
    /// [`ConnConfig`]); `None` turns one off. Takes effect from now.
    pub fn set_timeouts(
        &mut self,
        idle: Option<Duration>,
        read: Option<Duration>,
        write: Option<Duration>,
    ) {
        let now = self.lp.now();
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
        let handle = self.handle();
        // One connection's jobs go to one worker: they finish in order.
        let affinity = (self.key & 0xffff_ffff) as usize;
        pool.submit(affinity, move || {
            let r = work();
            let _ = handle.run(move |h, conn| then(h, conn, r));
        })
    }

    /// The socket's fd.
    pub fn fd(&self) -> RawFd {
        self.core.fd.as_raw_fd()
    }

    /// The peer's address (a syscall: not stored, to keep connections
    /// small). Behind a load balancer speaking the PROXY protocol
    /// ([`ServerBuilder::proxy_protocol`](crate::net::ServerBuilder::proxy_protocol)),
    /// the original client the header named.
    pub fn peer_addr(&self) -> io::Result<Addr> {
        if let Some(p) = &self.core.proxied {
            return Ok(Addr::from(p.0));
        }
        let a = sys::socket::peer_addr(self.fd())?;
        Addr::from_sockaddr(&a).ok_or_else(|| io::Error::other("unnamed peer"))
    }

    /// The local address of the socket; behind the PROXY protocol, the
    /// address the client connected to (the balancer's) as the header
    /// named it.
    pub fn local_addr(&self) -> io::Result<Addr> {
        if let Some(p) = &self.core.proxied {
            return Ok(Addr::from(p.1));
        }
        let a = sys::socket::local_addr(self.fd())?;
        Addr::from_sockaddr(&a).ok_or_else(|| io::Error::other("unnamed socket"))
    }

    /// The conversation id of a KCP session
    /// ([`ServerBuilder::kcp`](crate::net::ServerBuilder::kcp)); `None` on
    /// any other connection.
    pub fn kcp_conv(&self) -> Option<u32> {
        self.path.kcp_conv()
    }

    /// A `Send` handle for writing to this connection from other threads.
    pub fn handle(&mut self) -> ConnHandle<H> {
        let flag = self
            .core
            .closed_flag
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)))
            .clone();
        ConnHandle::new(
            self.lp.handle(),
            self.shared.id,
            self.key,
            flag,
            self.shared.mailbox.clone(),
        )
    }
}
