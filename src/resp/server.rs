//! The RESP server: the command engine on the framework.
//!
//! Every loop gets its own [`RespHandler`]; all of them share one
//! [`Store`] (`Arc`), so a key set through one connection is visible on every
//! other, whatever loop serves it. Each connection decodes with its own
//! [`CommandDecoder`] and keeps a [`Session`]; the replies for a pipelined
//! batch are encoded straight into the connection's output and leave in one
//! send.
//!
//! * A protocol error is answered `-ERR Protocol error: ...` and the
//!   connection is closed gracefully (the reply is delivered first); other
//!   connections are not affected.
//! * QUIT is answered `+OK`, then the connection closes; commands pipelined
//!   after it are not executed.
//! * Active expiry: every loop runs a timer that deletes up to a budget of
//!   keys whose deadline has passed, so expired keys nobody reads again do
//!   not stay in memory (reads expire lazily as well).
//! * Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//!   BZPOPMAX, BZMPOP) that find nothing
//!   park the connection: it joins the store's queue for each key, first
//!   come first served, and a loop timer holds its timeout. It goes on
//!   reading, so a client that disconnects while blocked leaves the queue
//!   at once (no pushed element is handed to a dead client); commands it
//!   pipelines behind are kept, up to `PARKED_FRAMES` (then its reading
//!   pauses), and run in order once it is served. The client whose
//!   command pushes to one of the keys, on whatever loop, serves the
//!   waiting clients before its own next command (after the whole
//!   transaction, in EXEC), oldest first, by running their commands for
//!   them ([`serve_ready`]); each reply is posted
//!   to its client's loop, which sends it and resumes reading. A blocked
//!   client costs its connection and a queue entry per key: no thread.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::cmd::{end_blocked, serve_ready};
use super::store::Waiter;
use super::{execute_spliced, time_out_blocked, Outcome, Session, Store, SPLICE_TAIL};
use crate::codec::framed::{FrameHandler, Framed};
use crate::codec::resp::{write_protocol_error, CommandDecoder};
use crate::codec::CodecError;
use crate::net::{Addr, CloseReason, Conn, ConnTimer, Server, ServerBuilder};
use crate::reactor::{LoopStats, TimerId};

/// Active-expiry settings: how each loop deletes keys whose TTL has passed
/// even if nobody reads them again. Default: every 100 ms, up to 2000 keys
/// per sweep.
#[derive(Clone, Copy, Debug)]
pub struct ActiveExpiry {
    /// How often each loop sweeps (Redis: 10 Hz).
    pub every: Duration,
    /// Most keys one sweep deletes (a sweep visits only due keys, so its cost
    /// is proportional to what it deletes).
    pub budget: usize,
}

impl Default for ActiveExpiry {
    fn default() -> Self {
        ActiveExpiry {
            every: Duration::from_millis(100),
            budget: 2000,
        }
    }
}

/// One loop's RESP handler: executes commands against the shared
/// [`Store`] and runs that loop's active-expiry sweep. Used as
/// `Framed<RespHandler>`; [`handler_factory`] builds one per loop.
pub struct RespHandler {
    store: Arc<Store>,
    expiry: ActiveExpiry,
    /// The loop's sweep timer, started with the loop's first connection (a
    /// handler only meets its loop through a connection).
    sweeper: Option<TimerId>,
}

impl RespHandler {
    /// A handler for one loop serving `store`, with the default active
    /// expiry (every 100 ms, up to 2000 keys per sweep). Wrap it in
    /// [`Framed::new`] to get an [`EventHandler`](crate::net::EventHandler).
    pub fn new(store: Arc<Store>) -> RespHandler {
        RespHandler::with_expiry(store, ActiveExpiry::default())
    }

    /// Like [`RespHandler::new`] with explicit active-expiry settings. The
    /// sweep timer starts with the loop's first connection.
    pub fn with_expiry(store: Arc<Store>, expiry: ActiveExpiry) -> RespHandler {
        RespHandler {
            store,
            expiry,
            sweeper: None,
        }
    }

    /// The keyspace this handler serves, shared with every other loop of
    /// the server.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// Start a RESP server: `builder` supplies addresses and the thread model;
/// every loop shares `store`.
pub fn serve(
    builder: ServerBuilder,
    store: Arc<Store>,
    expiry: ActiveExpiry,
) -> io::Result<Server> {
    builder.start(handler_factory(store, expiry))
}

/// Makes one loop's handler (for [`ServerBuilder::start`] or
/// [`ServerBuilder::run`]); every loop shares `store`.
pub fn handler_factory(
    store: Arc<Store>,
    expiry: ActiveExpiry,
) -> impl Fn(usize) -> Framed<RespHandler> + Send + Sync + 'static {
    move |_| Framed::new(RespHandler::with_expiry(store.clone(), expiry))
}

/// `ip:port` for TCP; the socket path otherwise (what CLIENT INFO shows).
fn addr_text(a: io::Result<Addr>) -> Option<String> {
    match a.ok()? {
        Addr::Tcp(s) => Some(s.to_string()),
        other => Some(other.to_string()),
    }
}

/// Commands a blocked client may pipeline behind its blocking command
/// before its reading pauses.
const PARKED_FRAMES: usize = 1024;

/// One connection's state: its session, and while a blocking command waits,
/// its place in the store's queues, its timeout and the commands behind it.
#[derive(Default)]
pub struct RespConn {
    /// The client's session.
    pub session: Session,
    /// While blocked: the waiter registered with the store.
    waiter: Option<Waiter>,
    /// While blocked with a timeout: its timer.
    timer: Option<ConnTimer>,
    /// Commands that arrived while blocked, in order.
    parked: std::collections::VecDeque<Vec<Vec<u8>>>,
}

type RespConnRef<'c, 'a> = &'c mut Conn<'a, Framed<RespHandler>>;

impl RespHandler {
    /// The command just run blocked: pause reading, queue for its keys,
    /// arm its timeout.
    fn park(&mut self, conn: RespConnRef<'_, '_>) {
        let handle = conn.handle();
        let session = &conn.context().user.session;
        let keys: Arc<[Vec<u8>]> = session.blocked_keys().unwrap_or(&[]).into();
        let args: Arc<[Vec<u8>]> = session.blocked_args().unwrap_or(&[]).into();
        let timeout = session.blocked_timeout();
        let waiter = Waiter {
            id: session.id(),
            keys,
            args,
            claimed: Arc::new(AtomicBool::new(false)),
            deliver: Arc::new(move |reply: Vec<u8>| {
                let _ = handle.run(move |h, conn| h.get_mut().served(conn, &reply));
            }),
        };
        self.store.block(waiter.clone());
        let id = waiter.id;
        let keys = waiter.keys.clone();
        conn.context().user.waiter = Some(waiter);
        if let Some(t) = timeout {
            let timer = conn.run_after(t, |h, conn| h.get_mut().expire(conn));
            conn.context().user.timer = Some(timer);
        }
        // The command found nothing under its gate, but the waiter is
        // queued only now: a push on another loop in between saw nobody
        // waiting. Look again, under a gate, now that it is queued (the
        // reply, if any, arrives through the handle like any other).
        let _gate = self.store.gate(id);
        for k in keys.iter() {
            self.store.signal(k);
        }
        serve_ready(&self.store);
    }

    /// Another client served the blocked command: send its reply, go on.
    fn served(&mut self, conn: RespConnRef<'_, '_>, reply: &[u8]) {
        end_blocked(&mut conn.context().user.session);
        let _ = conn.write(reply);
        self.unpark(conn);
    }

    /// Its timeout passed: answer nil and go on (unless a client is
    /// serving it right now: its reply is on the way).
    fn expire(&mut self, conn: RespConnRef<'_, '_>) {
        conn.context().user.timer = None;
        match conn.context().user.waiter.as_ref() {
            Some(w) if w.claim() => self.store.unblock(w.id, &w.keys),
            _ => return,
        }
        let _ = conn.write_with_context(|cx, out| time_out_blocked(&mut cx.user.session, out));
        self.unpark(conn);
    }

    /// Served (or timed out): leave the queues, drop the timer, and read
    /// the commands waiting behind.
    fn unpark(&mut self, conn: RespConnRef<'_, '_>) {
        let c = &mut conn.context().user;
        let waiter = c.waiter.take();
        let timer = c.timer.take();
        if let Some(w) = waiter {
            self.store.unblock(w.id, &w.keys);
        }
        if let Some(t) = timer {
            conn.cancel_timer(t);
        }
        conn.resume_read();
        // The commands that came meanwhile, in order, until one blocks.
        while conn.context().user.waiter.is_none() && !conn.is_closing() {
            let Some(args) = conn.context().user.parked.pop_front() else {
                break;
            };
            self.run_frame(conn, args);
        }
    }

    /// Run one command (the body of `on_frame`).
    fn run_frame(&mut self, conn: RespConnRef<'_, '_>, args: Vec<Vec<u8>>) {
        // The loop's message count (metrics): one store, this thread only.
        LoopStats::add(&conn.loop_ctx().stats().messages, 1);
        let store = &self.store;
        let mut splice = None;
        let r = conn.write_with_context(|cx, out| {
            execute_spliced(store, &mut cx.user.session, &args, out, &mut splice)
        });
        if let Some(value) = splice {
            // A large value goes out from the store's own copy.
            let _ = conn.write_shared(value);
            let _ = conn.write(SPLICE_TAIL);
        }
        match r {
            Ok(Outcome::Close) => conn.close(),
            Ok(Outcome::Block) => self.park(conn),
            _ => {}
        }
    }
}

impl FrameHandler for RespHandler {
    type Codec = CommandDecoder;
    type Context = RespConn;

    fn on_open(&mut self, conn: &mut Conn<'_, Framed<Self>>) {
        if self.sweeper.is_none() {
            let store = self.store.clone();
            let budget = self.expiry.budget;
            let id = conn.loop_ctx().run_every(self.expiry.every, move |_| {
                store.sweep(budget);
            });
            self.sweeper = Some(id);
        }
        let peer = addr_text(conn.peer_addr());
        let local = addr_text(conn.local_addr());
        let fd = conn.fd();
        let session = &mut conn.context().user.session;
        if let Some(p) = peer {
            session.set_peer_addr(p);
        }
        if let Some(l) = local {
            session.set_local_addr(l);
        }
        session.set_fd(i64::from(fd));
    }

    fn on_frame(&mut self, conn: &mut Conn<'_, Framed<Self>>, args: Vec<Vec<u8>>) {
        let c = &mut conn.context().user;
        if c.waiter.is_some() {
            // Blocked: keep it for later, in order.
            c.parked.push_back(args);
            if c.parked.len() >= PARKED_FRAMES {
                conn.pause_read();
            }
            return;
        }
        self.run_frame(conn, args);
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Framed<Self>>, _reason: &CloseReason) {
        if let Some(w) = conn.context().user.waiter.take() {
            // Nobody may serve a client that is gone (a reply already on
            // its way is lost with the connection, as in Redis).
            w.claim();
            self.store.unblock(w.id, &w.keys);
        }
    }

    fn on_decode_error(&mut self, conn: &mut Conn<'_, Framed<Self>>, err: CodecError) {
        let _ = conn.write_with(|out| write_protocol_error(out, &err));
        conn.close_with(CloseReason::Protocol(err.to_string()));
    }
}
