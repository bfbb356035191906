//! [`ConnHandle`]: reach a connection from any thread, through its table's
//! mailbox.
//!
//! A handle is an address (loop, table, connection key with generation)
//! plus the table's mailbox. An operation is pushed to the mailbox and the
//! table is notified on its loop, where it finds the connection by key; a
//! connection that has closed (or whose slot was reused: the generation
//! differs) is not found and the operation is dropped.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Closed, Conn};
use crate::net::EventHandler;
use crate::reactor::{LoopHandle, SourceId};

/// A typed job for one connection, run on its loop.
pub(crate) type RunFn<H> = Box<dyn FnOnce(&mut H, &mut Conn<'_, H>) + Send>;

/// What other threads ask of a table.
pub(crate) enum Op<H: EventHandler> {
    /// Write to connection `key`.
    Write(u64, Vec<u8>),
    /// Close connection `key` gracefully.
    Close(u64),
    /// Run a job with connection `key` and the handler.
    Run(u64, RunFn<H>),
    /// A connection accepted by another loop (main/sub reactors).
    Adopt {
        fd: OwnedFd,
        tcp: bool,
        /// The acceptor's count of hand-overs not yet registered, to release.
        in_flight: Option<(Arc<Vec<AtomicUsize>>, usize)>,
        /// Its place under the server's connection cap.
        permit: Option<crate::net::limit::Permit>,
    },
}

/// The queue other threads fill and a table drains on its loop.
pub(crate) struct Mailbox<H: EventHandler> {
    ops: Mutex<Vec<Op<H>>>,
}

impl<H: EventHandler> Mailbox<H> {
    pub(crate) fn new() -> Mailbox<H> {
        Mailbox {
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Queue `op` and make sure the table will look: the first op into an
    /// empty mailbox notifies it (later ones ride on that notice).
    pub(crate) fn send(&self, lp: &LoopHandle, table: SourceId, op: Op<H>) -> Result<(), Closed> {
        let first = {
            let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
            ops.push(op);
            ops.len() == 1
        };
        if first {
            lp.notify(table).map_err(|_| Closed)?;
        }
        Ok(())
    }

    /// Everything queued, in order, leaving `spare`'s allocation behind.
    pub(crate) fn take(&self, spare: Vec<Op<H>>) -> Vec<Op<H>> {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *ops, spare)
    }
}

/// A `Send + Sync` handle to a connection: write to it, close it, or run a
/// job with it and its handler, from any thread. Each write is delivered
/// whole and in order relative to other operations through handles from the
/// same thread; an operation on a connection that has closed fails with
/// [`Closed`] (or, if it closes while the operation is on its way, is
/// dropped). Every method is safe to call from any thread.
pub struct ConnHandle<H: EventHandler> {
    lp: LoopHandle,
    table: SourceId,
    key: u64,
    closed: Arc<AtomicBool>,
    mailbox: Arc<Mailbox<H>>,
}

impl<H: EventHandler> Clone for ConnHandle<H> {
    fn clone(&self) -> Self {
        ConnHandle {
            lp: self.lp.clone(),
            table: self.table,
            key: self.key,
            closed: self.closed.clone(),
            mailbox: self.mailbox.clone(),
        }
    }
}

impl<H: EventHandler> ConnHandle<H> {
    pub(crate) fn new(
        lp: LoopHandle,
        table: SourceId,
        key: u64,
        closed: Arc<AtomicBool>,
        mailbox: Arc<Mailbox<H>>,
    ) -> ConnHandle<H> {
        ConnHandle {
            lp,
            table,
            key,
            closed,
            mailbox,
        }
    }

    fn send(&self, op: Op<H>) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        self.mailbox.send(&self.lp, self.table, op)
    }

    /// Write `data` (as [`Conn::write`], on the connection's loop).
    pub fn write(&self, data: impl Into<Vec<u8>>) -> Result<(), Closed> {
        self.send(Op::Write(self.key, data.into()))
    }

    /// Graceful close, as [`Conn::close`].
    pub fn close(&self) {
        let _ = self.send(Op::Close(self.key));
    }

    /// Run `f` with the connection and its handler on its loop.
    pub fn run(
        &self,
        f: impl FnOnce(&mut H, &mut Conn<'_, H>) + Send + 'static,
    ) -> Result<(), Closed> {
        self.send(Op::Run(self.key, Box::new(f)))
    }

    /// Whether the connection is known to have closed (or its loop stopped).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.lp.is_stopped()
    }

    /// The connection's loop.
    pub fn loop_handle(&self) -> &LoopHandle {
        &self.lp
    }
}

impl<H: EventHandler> std::fmt::Debug for ConnHandle<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnHandle({:?}, {:#x})", self.lp, self.key)
    }
}
