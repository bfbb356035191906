//! The part of a connection that does not depend on its handler or I/O
//! path: the fd, the lifecycle, the output queue, the kept input tail, the
//! watchdog, and the accounting every path shares.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::config::ConnConfig;
use super::out::OutQueue;
use super::state::{Due, Phase, ReadState, WriteState};
use super::watchdog::Watchdog;
use super::Closed;
use crate::net::limit::Permit;
use crate::net::{Buffer, CloseReason};
use crate::poller::Token;
use crate::reactor::{EventLoop, LoopStats};

pub(crate) struct Core {
    pub(crate) fd: OwnedFd,
    /// The fd's registration on the loop.
    pub(crate) token: Token,
    pub(crate) phase: Phase,
    pub(crate) read: ReadState,
    pub(crate) write: WriteState,
    pub(crate) due: Due,
    /// Output the socket has not taken; `None` when nothing waits (the
    /// common case: a reply leaves from the staging buffer in one send).
    pub(crate) out: Option<Box<OutQueue>>,
    /// Input the handler left unconsumed (a message not yet complete).
    pub(crate) input: Option<Box<Buffer>>,
    /// Shared with `ConnHandle`s; allocated on the first `handle()`.
    pub(crate) closed_flag: Option<Arc<AtomicBool>>,
    /// Why the connection must close, set where the close cannot happen yet
    /// (inside a callback, or in the middle of an I/O step).
    pub(crate) doom: Option<CloseReason>,
    /// The table timer that ends a lingering close.
    pub(crate) linger_timer: Option<u64>,
    /// Timeout state, only when a timeout is set.
    pub(crate) watch: Option<Box<Watchdog>>,
    /// This connection's place under the server's cap: given back (and a
    /// listener paused at the cap woken) when the connection is dropped.
    pub(crate) permit: Option<Permit>,
    /// The client and destination a PROXY protocol header named (boxed:
    /// most connections have none).
    pub(crate) proxied: Option<Box<(std::net::SocketAddr, std::net::SocketAddr)>>,
}

impl Core {
    pub(crate) fn new(fd: OwnedFd, token: Token, cfg: &ConnConfig, el: &EventLoop) -> Core {
        Core {
            fd,
            token,
            phase: Phase::Open,
            read: ReadState::Reading,
            write: WriteState::Open,
            due: Due::default(),
            out: None,
            input: None,
            closed_flag: None,
            doom: None,
            linger_timer: None,
            watch: cfg
                .watches_from_open()
                .then(|| Box::new(Watchdog::new(cfg, el.now()))),
            permit: None,
            proxied: None,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Closing, closed, or doomed: no more input is delivered.
    pub(crate) fn is_closing(&self) -> bool {
        self.phase != Phase::Open || self.doom.is_some()
    }

    /// Whether the socket should be read now.
    pub(crate) fn reading(&self) -> bool {
        self.read == ReadState::Reading && self.phase != Phase::Closed && self.doom.is_none()
    }

    /// Whether the path should keep a read armed (reads go on while closing,
    /// to discard).
    pub(crate) fn wants_read(&self) -> bool {
        self.read == ReadState::Reading && self.phase != Phase::Closed
    }

    pub(crate) fn check_writable(&self) -> Result<(), Closed> {
        if self.phase != Phase::Open || self.write != WriteState::Open || self.doom.is_some() {
            return Err(Closed);
        }
        Ok(())
    }

    /// Close at the next chance with `reason` (the first reason wins).
    pub(crate) fn fail(&mut self, e: &std::io::Error) {
        self.doom.get_or_insert(CloseReason::from_io(e));
    }

    pub(crate) fn queue(&mut self) -> &mut OutQueue {
        self.out.get_or_insert_with(OutQueue::take_spare)
    }

    pub(crate) fn queued(&self) -> usize {
        self.out.as_ref().map_or(0, |o| o.len)
    }

    pub(crate) fn check_high_water(&mut self, cfg: &ConnConfig) {
        if self.queued() >= cfg.high_water && !self.due.above_high_water {
            self.due.above_high_water = true;
            self.due.high_water = true;
        }
    }

    /// Account for `n` bytes read from the socket.
    pub(crate) fn note_received(&mut self, el: &EventLoop, n: u64) {
        LoopStats::add(&el.stats().bytes_in, n);
        if let Some(w) = self.watch.as_mut() {
            w.last_io = el.now();
        }
    }

    /// Account for `n` bytes the socket took.
    pub(crate) fn note_sent(&mut self, el: &EventLoop, n: u64) {
        if n == 0 {
            return;
        }
        LoopStats::add(&el.stats().bytes_out, n);
        if let Some(w) = self.watch.as_mut() {
            w.last_io = el.now();
            w.write_progress = el.now();
        }
    }

    /// `n` bytes read on a closing connection were discarded; past `limit`
    /// in all, the connection is reset (doomed with its closing reason).
    pub(crate) fn discard(&mut self, n: u64, limit: u64) {
        let Phase::Closing(c) = &mut self.phase else {
            return;
        };
        c.discarded += n;
        if c.discarded > limit && self.doom.is_none() {
            tracing::debug!("closing connection sent {} bytes more: reset", c.discarded);
            self.doom = Some(c.reason.clone());
            self.reset();
        }
    }

    /// Make the close a reset (RST, not FIN): SO_LINGER with zero time.
    pub(crate) fn reset(&mut self) {
        let _ = crate::sys::socket::with_sock(self.fd.as_raw_fd(), |s| {
            s.set_linger(Some(std::time::Duration::ZERO))
        });
    }

    /// A queue with nothing left to send or in flight completes the write.
    pub(crate) fn release_drained(&mut self) {
        if self.out.as_ref().is_some_and(|o| o.len == 0 && !o.busy) {
            OutQueue::put_spare(self.out.take());
            self.due.write_complete = true;
            self.due.above_high_water = false;
        }
    }
}
