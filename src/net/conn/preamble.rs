//! The PROXY protocol header of an accepted connection, read before the
//! connection opens: the table holds the socket here, registered for
//! readability with a timer, until the whole header has arrived; then the
//! connection opens with the client the header names (`Conn::peer_addr`).
//!
//! No application byte is ever read: each step peeks at what is queued and
//! consumes only header bytes. While the header is incomplete every byte
//! received so far is the header's, so those are consumed (a level-triggered
//! poller does not report the same bytes again); once the end is in view,
//! exactly up to it. What follows stays in the socket for the connection.
//!
//! ```text
//!  accepted, trusted peer ──> Preamble (readable + timer)
//!      ├─ header complete ──> deregistered, Table::open with the header's addresses
//!      └─ malformed | too long | EOF | error | timeout ──> closed (only this socket)
//! ```

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::net::limit::Permit;
use crate::net::proxy::{self, ProxyHeader};
use crate::poller::Token;
use crate::sys;

/// Slots of `net::metrics::PROXY_REFUSED`.
pub(crate) const UNTRUSTED: usize = 0;
pub(crate) const MALFORMED: usize = 1;
pub(crate) const TIMEOUT: usize = 2;
pub(crate) const CLOSED: usize = 3;

pub(crate) struct Preamble {
    pub(crate) fd: OwnedFd,
    pub(crate) token: Token,
    pub(crate) tcp: bool,
    pub(crate) permit: Option<Permit>,
    /// The table timer that gives up on the header.
    pub(crate) timer: u64,
    /// Header bytes consumed so far.
    got: Vec<u8>,
}

/// What a readable event did.
pub(crate) enum Step {
    /// The header is not complete: wait for more.
    Wait,
    /// The header, consumed.
    Done(ProxyHeader),
    /// Close the socket: its slot in `net::metrics::PROXY_REFUSED` and why.
    Fail(usize, String),
}

impl Preamble {
    pub(crate) fn new(fd: OwnedFd, token: Token, tcp: bool, permit: Option<Permit>) -> Preamble {
        Preamble {
            fd,
            token,
            tcp,
            permit,
            timer: 0,
            got: Vec::new(),
        }
    }

    /// Read what has arrived (headers of at most `max` bytes), until the
    /// socket has nothing more: an edge-triggered poller reports only new
    /// arrivals, so a FIN behind the bytes read must be seen now. Bounded:
    /// each round consumes at least one byte of a header capped at `max`.
    pub(crate) fn step(&mut self, max: usize) -> Step {
        loop {
            match self.round(max) {
                Some(step) => return step,
                None => continue,
            }
        }
    }

    /// One peek and consume; `None`: bytes consumed, header not complete.
    fn round(&mut self, max: usize) -> Option<Step> {
        let fd = self.fd.as_raw_fd();
        let old = self.got.len();
        let want = max.saturating_sub(old).max(1);
        let n = match sys::socket::recv_upto(fd, &mut self.got, want, true) {
            Ok(0) => {
                return Some(Step::Fail(
                    CLOSED,
                    "closed before its PROXY header ended".into(),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Step::Wait),
            Err(e) => return Some(Step::Fail(CLOSED, e.to_string())),
        };
        let parsed = proxy::parse(&self.got, max);
        self.got.truncate(old);
        let (take, done) = match parsed {
            Ok(None) => (n, None),
            Ok(Some((end, header))) => (end - old, Some(header)),
            Err(e) => return Some(Step::Fail(MALFORMED, e.to_string())),
        };
        // The bytes are queued (just peeked): this recv returns them all.
        match sys::socket::recv_upto(fd, &mut self.got, take, false) {
            Ok(k) if k == take => {}
            Ok(_) => return Some(Step::Fail(CLOSED, "PROXY header bytes vanished".into())),
            Err(e) => return Some(Step::Fail(CLOSED, e.to_string())),
        }
        done.map(Step::Done)
    }
}
