//! How a connection's bytes move: one [`IoPath`] trait, one file per
//! implementation, chosen when the connection opens.
//!
//! | path | when | reads | writes |
//! |---|---|---|---|
//! | [`readiness::Readiness`] | readiness drivers (epoll, uring polls, poll, select, ...) | `recv` into the shared buffer on a readable event | `send`/`writev` at once, the rest queued until writable |
//! | [`ring::Ring`] | completion driver (io_uring proactor) | a multishot recv from the ring's buffers | the staged buffer handed to the ring |
//! | `tls::Tls<P>` | a TLS session (feature `tls`) over either of the above | records from the inner path, decrypted | encrypted into records for the inner path |
//! | [`kcp::KcpPath`] | a KCP session, on a UDP socket connected to its peer | datagrams into the KCP engine, delivered in order | into the send window, the rest queued; datagrams from the engine |
//!
//! The connection core (lifecycle, queue, accounting, callbacks) calls the
//! path; the path never calls the handler. Reading is a *pull*: the core
//! asks [`IoPath::pull`] for the next input until it says [`Input::Stop`],
//! within the read budget, and delivers each piece itself.
//!
//! ## Adding a path
//! A third way of moving bytes (a TLS record layer over a socket, a KCP
//! session over UDP) is a new file here with a type implementing
//! [`IoPath`], one variant in [`Path`] and its arm in `delegate!` below,
//! and the choice in `Path::open`. Nothing
//! else in the core changes: the lifecycle, the queue, the timeouts and the
//! handler API are the same for every path.

pub(crate) mod kcp;
pub(crate) mod readiness;
pub(crate) mod ring;
#[cfg(feature = "tls")]
pub(crate) mod tls;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use super::out::DIRECT_WRITE;
use crate::net::SharedBytes;

use super::core::Core;
use crate::poller::{Event, Token};
use crate::reactor::{EventLoop, SourceId};
use crate::ring::Completion;

/// What a pull or a completion produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// Bytes, appended to the read buffer given (and accounted).
    Data,
    /// Deliver the kept input tail (`Core::input`) as it is: bytes the path
    /// held back while reading was paused.
    Tail,
    /// The peer's FIN.
    Eof,
    /// Nothing more now (drained, would block, or an error that doomed the
    /// connection).
    Stop,
}

/// One way of moving a connection's bytes. Every method runs on the loop
/// thread, outside handler callbacks.
///
/// The handler's writes (`Conn::write` and the rest) come through the
/// `write*` methods; their default bodies are the plain paths' policy
/// (stage small writes, send large ones at once, queue behind waiting
/// output, sendfile for files). A layer that transforms bytes (TLS)
/// overrides them so nothing untransformed reaches the core's queue.
pub(crate) trait IoPath: Sized {
    /// A readable event is about to be pulled (`ev` is the event, or a
    /// deferred one).
    fn readable(&mut self, core: &mut Core, el: &mut EventLoop, ev: Event);

    /// The next input into `rb` (empty on entry).
    fn pull(&mut self, core: &mut Core, el: &mut EventLoop, rb: &mut Vec<u8>) -> Input;

    /// The read budget ran out with input possibly left.
    fn budget_spent(&mut self, core: &mut Core, el: &mut EventLoop);

    /// An operation this path started on the ring finished.
    fn complete(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        c: Completion,
        rb: &mut Vec<u8>,
    ) -> Input;

    /// A large write with nothing queued: `staged` (what the callback wrote
    /// before) goes first, then `data`; what does not leave now is queued.
    fn write_now(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>, data: &[u8]);

    /// Like `write_now`, owning `data` (queued without a copy if it waits).
    fn write_vec_now(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: Vec<u8>,
    );

    /// Send what a callback staged (behind what is queued). Runs after every
    /// callback.
    fn flush_staged(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>);

    /// Send queued output as far as the socket takes it.
    fn flush(&mut self, core: &mut Core, el: &mut EventLoop);

    /// Reading was resumed after a pause: arrange for input that arrived
    /// meanwhile to be pulled.
    fn resumed(&mut self, core: &mut Core, el: &mut EventLoop);

    /// Tell the driver what the connection wants now (after callbacks).
    fn settle(&mut self, core: &mut Core, el: &mut EventLoop) -> io::Result<()>;

    /// The connection closes: stop its I/O on the driver (the caller then
    /// deregisters the token).
    fn close(&mut self, core: &mut Core, el: &mut EventLoop);

    /// A handler's write ([`Conn::write`](crate::net::Conn::write)).
    fn write(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>, data: &[u8]) {
        if let Some(out) = core.out.as_mut() {
            out.push(data);
        } else if data.len() >= DIRECT_WRITE {
            self.write_now(core, el, staged, data);
        } else {
            staged.extend_from_slice(data);
        }
    }

    /// A handler's owned write ([`Conn::write_vec`](crate::net::Conn::write_vec)).
    fn write_vec(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: Vec<u8>,
    ) {
        if let Some(out) = core.out.as_mut() {
            out.push_vec(data);
        } else if data.len() >= DIRECT_WRITE {
            self.write_vec_now(core, el, staged, data);
        } else {
            staged.extend_from_slice(&data);
        }
    }

    /// A file region after everything written before
    /// ([`Conn::send_file`](crate::net::Conn::send_file)).
    #[allow(clippy::too_many_arguments)]
    fn write_file(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        file: Arc<std::fs::File>,
        start: u64,
        end: u64,
    ) {
        let out = core.queue();
        out.push(staged);
        out.push_file(file, start, end);
        staged.clear();
        self.flush(core, el);
    }

    /// Shared bytes after everything written before
    /// ([`Conn::write_shared`](crate::net::Conn::write_shared)).
    fn write_shared(
        &mut self,
        core: &mut Core,
        el: &mut EventLoop,
        staged: &mut Vec<u8>,
        data: SharedBytes,
    ) {
        let out = core.queue();
        out.push(staged);
        staged.clear();
        out.push_shared(data);
        self.flush(core, el);
    }

    /// An encoder appended `staged[from..]` ([`Conn::write_with`](crate::net::Conn::write_with)):
    /// behind waiting output it joins the queue at once.
    fn staged_grew(&mut self, core: &mut Core, staged: &mut Vec<u8>, from: usize) {
        if let Some(out) = core.out.as_mut() {
            out.push(&staged[from..]);
            staged.truncate(from);
        }
    }

    /// A graceful close or `shutdown_write` was asked for: whatever must
    /// go out last (TLS's close_notify) is sent behind the output.
    fn closing(&mut self, _core: &mut Core) {}

    /// Before the core settles a connection (after callbacks and I/O): a
    /// layer moves output it held back (TLS: plaintext behind a file, a
    /// close_notify that waited for the handshake).
    fn prepare(&mut self, _core: &mut Core, _el: &mut EventLoop) {}

    /// A graceful close, its output sent, shuts the write side and waits
    /// for the peer's FIN (the linger). A transport without a FIN (KCP)
    /// closes at once instead.
    fn lingers(&self) -> bool {
        true
    }

    /// Output waits inside the path, not yet in the core's queue (TLS:
    /// plaintext behind a file, or held until the handshake ends; KCP:
    /// data not yet acknowledged): the write side must not shut down yet.
    fn holds_output(&self) -> bool {
        false
    }
}

/// The paths a connection can take, one variant per implementation.
pub(crate) enum Path {
    Readiness(readiness::Readiness),
    Ring(ring::Ring),
    #[cfg(feature = "tls")]
    TlsReadiness(Box<tls::Tls<readiness::Readiness>>),
    #[cfg(feature = "tls")]
    TlsRing(Box<tls::Tls<ring::Ring>>),
    Kcp(Box<kcp::KcpPath>),
}

/// A TLS session a connection starts with (`tls` feature; without it the
/// type has no values).
#[cfg(feature = "tls")]
pub(crate) type Session = (rustls::Connection, Duration);
/// A TLS session a connection starts with (`tls` feature; without it the
/// type has no values).
#[cfg(not(feature = "tls"))]
pub(crate) enum Session {}

/// `Path` forwards each [`IoPath`] method to its variant with one `match`
/// (static dispatch: no vtable on the hot path). A new path adds its arm here.
macro_rules! delegate {
    ($(fn $name:ident(&mut self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?;)*) => {
        impl Path {
            $(
                #[inline]
                pub(crate) fn $name(&mut self $(, $arg: $ty)*) $(-> $ret)? {
                    match self {
                        Path::Readiness(p) => p.$name($($arg),*),
                        Path::Ring(p) => p.$name($($arg),*),
                        #[cfg(feature = "tls")]
                        Path::TlsReadiness(p) => p.$name($($arg),*),
                        #[cfg(feature = "tls")]
                        Path::TlsRing(p) => p.$name($($arg),*),
                        Path::Kcp(p) => p.$name($($arg),*),
                    }
                }
            )*
        }
    };
}

delegate! {
    fn readable(&mut self, core: &mut Core, el: &mut EventLoop, ev: Event);
    fn pull(&mut self, core: &mut Core, el: &mut EventLoop, rb: &mut Vec<u8>) -> Input;
    fn budget_spent(&mut self, core: &mut Core, el: &mut EventLoop);
    fn complete(&mut self, core: &mut Core, el: &mut EventLoop, c: Completion, rb: &mut Vec<u8>) -> Input;
    fn flush_staged(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>);
    fn flush(&mut self, core: &mut Core, el: &mut EventLoop);
    fn resumed(&mut self, core: &mut Core, el: &mut EventLoop);
    fn settle(&mut self, core: &mut Core, el: &mut EventLoop) -> io::Result<()>;
    fn close(&mut self, core: &mut Core, el: &mut EventLoop);
    fn write(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>, data: &[u8]);
    fn write_vec(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>, data: Vec<u8>);
    fn write_file(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>, file: Arc<std::fs::File>, start: u64, end: u64);
    fn write_shared(&mut self, core: &mut Core, el: &mut EventLoop, staged: &mut Vec<u8>, data: SharedBytes);
    fn staged_grew(&mut self, core: &mut Core, staged: &mut Vec<u8>, from: usize);
    fn closing(&mut self, core: &mut Core);
    fn prepare(&mut self, core: &mut Core, el: &mut EventLoop);
}

impl Path {
    /// Open `fd` on the path this loop's driver calls for.
    /// With a TLS `session`, the TLS layer over that path.
    pub(crate) fn open(
        el: &mut EventLoop,
        fd: RawFd,
        owner: SourceId,
        sub: u64,
        session: Option<Session>,
    ) -> io::Result<(Path, Token)> {
        let completion = el.caps().completion;
        match session {
            None if completion => {
                ring::Ring::open(el, fd, owner, sub).map(|(p, t)| (Path::Ring(p), t))
            }
            None => {
                readiness::Readiness::open(el, fd, owner, sub).map(|(p, t)| (Path::Readiness(p), t))
            }
            #[cfg(feature = "tls")]
            Some((s, timeout)) if completion => ring::Ring::open(el, fd, owner, sub)
                .map(|(p, t)| (Path::TlsRing(Box::new(tls::Tls::new(p, s, timeout))), t)),
            #[cfg(feature = "tls")]
            Some((s, timeout)) => readiness::Readiness::open(el, fd, owner, sub).map(|(p, t)| {
                (
                    Path::TlsReadiness(Box::new(tls::Tls::new(p, s, timeout))),
                    t,
                )
            }),
        }
    }

    /// How long the handshake may take, if this path has one that has not
    /// finished.
    pub(crate) fn handshake_timeout(&self) -> Option<Duration> {
        match self {
            #[cfg(feature = "tls")]
            Path::TlsReadiness(p) => p.handshake_timeout(),
            #[cfg(feature = "tls")]
            Path::TlsRing(p) => p.handshake_timeout(),
            _ => None,
        }
    }

    /// See [`IoPath::holds_output`].
    pub(crate) fn holds_output(&self) -> bool {
        match self {
            Path::Readiness(p) => p.holds_output(),
            Path::Ring(p) => p.holds_output(),
            #[cfg(feature = "tls")]
            Path::TlsReadiness(p) => p.holds_output(),
            #[cfg(feature = "tls")]
            Path::TlsRing(p) => p.holds_output(),
            Path::Kcp(p) => p.holds_output(),
        }
    }

    /// See [`IoPath::lingers`].
    pub(crate) fn lingers(&self) -> bool {
        match self {
            Path::Kcp(p) => p.lingers(),
            _ => true,
        }
    }

    /// The KCP conversation id, on a KCP connection.
    pub(crate) fn kcp_conv(&self) -> Option<u32> {
        match self {
            Path::Kcp(p) => Some(p.conv()),
            _ => None,
        }
    }

    /// The KCP session, on a KCP connection.
    pub(crate) fn kcp(&mut self) -> Option<&mut kcp::KcpPath> {
        match self {
            Path::Kcp(p) => Some(p),
            _ => None,
        }
    }

    /// Whether a handshake is still in progress.
    pub(crate) fn handshaking(&self) -> bool {
        match self {
            #[cfg(feature = "tls")]
            Path::TlsReadiness(p) => p.handshaking(),
            #[cfg(feature = "tls")]
            Path::TlsRing(p) => p.handshaking(),
            _ => false,
        }
    }
}
