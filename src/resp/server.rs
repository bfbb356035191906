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

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::{execute_spliced, Outcome, Session, Store, SPLICE_TAIL};
use crate::codec::framed::{FrameHandler, Framed};
use crate::codec::resp::{write_protocol_error, CommandDecoder};
use crate::codec::CodecError;
use crate::net::{Addr, CloseReason, Conn, Server, ServerBuilder};
use crate::reactor::TimerId;

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

impl FrameHandler for RespHandler {
    type Codec = CommandDecoder;
    type Context = Session;

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
        let session = &mut conn.context().user;
        if let Some(p) = peer {
            session.set_peer_addr(p);
        }
        if let Some(l) = local {
            session.set_local_addr(l);
        }
        session.set_fd(i64::from(fd));
    }

    fn on_frame(&mut self, conn: &mut Conn<'_, Framed<Self>>, args: Vec<Vec<u8>>) {
        let store = &self.store;
        let mut splice = None;
        let r = conn.write_with_context(|cx, out| {
            execute_spliced(store, &mut cx.user, &args, out, &mut splice)
        });
        if let Some(value) = splice {
            // A large value goes out from the store's own copy.
            let _ = conn.write_shared(value);
            let _ = conn.write(SPLICE_TAIL);
        }
        if r == Ok(Outcome::Close) {
            conn.close();
        }
    }

    fn on_decode_error(&mut self, conn: &mut Conn<'_, Framed<Self>>, err: CodecError) {
        let _ = conn.write_with(|out| write_protocol_error(out, &err));
        conn.close_with(CloseReason::Protocol(err.to_string()));
    }
}
