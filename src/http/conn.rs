//! The per-connection HTTP/1.1 state machine, driven by the framework's
//! callbacks.
//!
//! ```text
//!            bytes                head done              body done
//!   Idle ──────────────▶ Head ─────────────────▶ Body ───────────────▶ respond
//!    ▲                                                                   │
//!    └──────────── keep-alive ◀────────┬──── written now ◀───────────────┤
//!                                      └──── Waiting (deferred) ◀────────┘
//!   any error, `Connection: close`, timeout ───▶ Done (conn.close())
//! ```
//!
//! Input is parsed in place in the connection's input buffer; a request is
//! consumed only once its head is complete (the head parser needs the buffer
//! to start at the request). While a deferred response is outstanding the
//! bytes behind it are moved to `stash` and parsed from there afterwards, so
//! responses leave in request order.
//!
//! Timeouts use one timer per connection that fires at least every
//! `tick` (the shortest of the three timeouts) and compares the phase's
//! deadline with the loop clock. Moving between phases then never re-arms a
//! timer (no allocation per request), yet every deadline is met within the
//! timer's resolution: a timer armed at `a <= s` with delay `<= tick` fires
//! by `s + tick`, so a phase starting at `s` is always checked in time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::message::{Exchange, HandleSource, OwnedResponse, Request, Response};
use super::proto::body::{BodyDecoder, BodyKind};
use super::proto::encode::{write_continue, write_error_response};
use super::proto::parse::{HeadParser, RequestHead};
use super::proto::HttpError;
use super::server::HttpHandler;
use crate::net::{Buffer, CloseReason, Conn, ConnHandle, EventHandler};
use crate::reactor::LoopStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Between requests (or before the first): keep-alive timeout applies.
    #[default]
    Idle,
    /// Some bytes of a head have arrived: header timeout applies.
    Head,
    /// Reading the body: body timeout (between reads) applies.
    Body,
    /// A deferred response is outstanding.
    Waiting,
    /// Closing: nothing more is read or answered.
    Done,
}

/// Per-connection state (the handler's `Context`).
#[derive(Debug)]
pub struct HttpConn {
    parser: HeadParser,
    head: RequestHead,
    decoder: BodyDecoder,
    body: Vec<u8>,
    phase: Phase,
    /// When the phase started (Head: first byte; Body: last progress).
    since: Option<Instant>,
    /// Unparsed input held back while a deferred response is outstanding.
    stash: Vec<u8>,
    /// Reading was paused because `stash` grew too large.
    stash_paused: bool,
    timer_armed: bool,
    /// Number of the request being answered (for deferred responses).
    seq: u64,
    /// The peer shut down its side while a response was deferred.
    peer_eof: bool,
}

impl Default for HttpConn {
    fn default() -> Self {
        HttpConn {
            parser: HeadParser::new(),
            head: RequestHead::new(),
            decoder: BodyDecoder::Length { remaining: 0 },
            body: Vec::new(),
            phase: Phase::Idle,
            since: None,
            stash: Vec::new(),
            stash_paused: false,
            timer_armed: false,
            seq: 0,
            peer_eof: false,
        }
    }
}

impl HandleSource for Conn<'_, HttpHandler> {
    fn conn_handle(&mut self) -> ConnHandle {
        self.handle()
    }
}

impl HttpHandler {
    /// Keep the cached `Date` current: reformat it when the loop clock has
    /// passed the next whole second. (Chosen over a per-loop one-second
    /// timer: an idle server does no work, and the check is one compare.)
    fn refresh_date(&mut self, conn: &mut Conn<'_, Self>) {
        let now = conn.event_loop().now();
        if self.next_date.is_some_and(|t| now < t) {
            return;
        }
        let wall = SystemTime::now();
        self.date.refresh(wall);
        let sub = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        self.next_date =
            Some(now + Duration::from_nanos(u64::from(1_000_000_000 - sub.min(999_999_999))));
    }

    fn arm_timer(&mut self, conn: &mut Conn<'_, Self>, st: &mut HttpConn, delay: Duration) {
        if !st.timer_armed {
            st.timer_armed = true;
            conn.run_after(delay.max(Duration::from_millis(1)), |h, conn| {
                h.on_timer(conn)
            });
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_, Self>) {
        let now = conn.event_loop().now();
        let mut st = std::mem::take(conn.context());
        st.timer_armed = false;
        let limits = &self.shared.limits;
        let since = st.since.unwrap_or(now);
        let deadline = match st.phase {
            Phase::Idle => Some(since + limits.keepalive_timeout),
            Phase::Head => Some(since + limits.header_timeout),
            Phase::Body => Some(since + limits.body_timeout),
            Phase::Waiting => None,
            Phase::Done => {
                *conn.context() = st;
                return;
            }
        };
        match deadline {
            Some(d) if now >= d => {
                if st.phase == Phase::Idle {
                    // An idle keep-alive connection just goes away.
                    conn.close_with(CloseReason::IdleTimeout);
                } else {
                    self.refresh_date(conn);
                    let (v, h) = if st.phase == Phase::Body {
                        (st.head.version(), st.head.is_head())
                    } else {
                        (1, false)
                    };
                    let err = HttpError::REQUEST_TIMEOUT;
                    let date = &self.date;
                    let _ =
                        conn.write_with(|out| write_error_response(out, &err, date, false, v, h));
                    conn.close_with(CloseReason::ReadTimeout);
                }
                st.phase = Phase::Done;
            }
            _ => {
                let tick = self.shared.tick;
                let delay = deadline.map_or(tick, |d| (d - now).min(tick));
                self.arm_timer(conn, &mut st, delay);
            }
        }
        *conn.context() = st;
    }

    /// Answer a parse error and close.
    fn fail(
        &mut self,
        conn: &mut Conn<'_, Self>,
        st: &mut HttpConn,
        err: HttpError,
        with_head: bool,
    ) {
        let (v, h) = if with_head {
            (st.head.version(), st.head.is_head())
        } else {
            (1, false)
        };
        let date = &self.date;
        let _ = conn.write_with(|out| write_error_response(out, &err, date, false, v, h));
        conn.close_with(CloseReason::Protocol(format!(
            "{} {}",
            err.status, err.reason
        )));
        st.phase = Phase::Done;
    }

    /// Parse and answer every complete request at the front of `data`.
    /// Returns how many bytes were consumed; what remains starts a request.
    fn process(&mut self, conn: &mut Conn<'_, Self>, st: &mut HttpConn, data: &[u8]) -> usize {
        let now = conn.event_loop().now();
        let mut pos = 0;
        loop {
            match st.phase {
                Phase::Waiting | Phase::Done => break,
                Phase::Idle | Phase::Head => {
                    if pos == data.len() {
                        break;
                    }
                    if st.phase == Phase::Idle {
                        st.phase = Phase::Head;
                        st.since = Some(now);
                    }
                    let limits = &self.shared.limits;
                    match st.parser.parse(&data[pos..], &mut st.head, limits) {
                        Ok(None) => break,
                        Ok(Some(n)) => {
                            pos += n;
                            match st.head.body_kind(limits) {
                                Ok(BodyKind::None) => {
                                    // No body: answer at once.
                                    st.body.clear();
                                    self.respond(conn, st, now);
                                }
                                Ok(kind) => {
                                    if st.head.expects_continue() && pos == data.len() {
                                        let _ = conn.write_with(write_continue);
                                    }
                                    st.decoder = BodyDecoder::new(kind, limits);
                                    st.body.clear();
                                    st.phase = Phase::Body;
                                    st.since = Some(now);
                                }
                                Err(e) => {
                                    self.fail(conn, st, e, true);
                                    break;
                                }
                            }
                        }
                        Err(e) => {
                            st.parser.reset();
                            self.fail(conn, st, e, false);
                            break;
                        }
                    }
                }
                Phase::Body => match st.decoder.decode(&data[pos..], &mut st.body) {
                    Ok((n, done)) => {
                        pos += n;
                        if !done {
                            if n > 0 {
                                st.since = Some(now);
                            }
                            break;
                        }
                        self.respond(conn, st, now);
                    }
                    Err(e) => {
                        self.fail(conn, st, e, true);
                        break;
                    }
                },
            }
        }
        pos
    }

    /// Run the route for the complete request in `st` and write its response.
    fn respond(&mut self, conn: &mut Conn<'_, Self>, st: &mut HttpConn, now: Instant) {
        st.seq += 1;
        let ex = Exchange {
            version: st.head.version(),
            keep_alive: st.head.keep_alive(),
            head_request: st.head.is_head(),
        };
        LoopStats::add(&conn.event_loop().stats().requests, 1);
        self.parts.reset();
        {
            let req = Request::new(&st.head, &st.body);
            let mut resp = Response {
                parts: &mut self.parts,
                source: conn,
                exchange: ex,
                seq: st.seq,
            };
            self.shared.router.dispatch(&req, &mut resp);
        }
        if self.parts.deferred {
            st.phase = Phase::Waiting;
            return;
        }
        let (parts, date) = (&mut self.parts, &self.date);
        let framing = conn.write_with(|out| parts.encode(out, date, ex));
        if let Some((file, offset, len)) = self.parts.file.take() {
            if !ex.head_request && len > 0 && self.parts.error.is_none() {
                let _ = conn.send_file(file, offset, len);
            }
        }
        self.finish_exchange(conn, st, framing.is_ok_and(|f| f.keep_alive), now);
    }

    fn finish_exchange(
        &mut self,
        conn: &mut Conn<'_, Self>,
        st: &mut HttpConn,
        keep_alive: bool,
        now: Instant,
    ) {
        if keep_alive {
            st.phase = Phase::Idle;
            st.since = Some(now);
        } else {
            conn.close();
            st.phase = Phase::Done;
        }
    }

    /// Parse what is stashed; keep the unconsumed rest there.
    fn process_stash(&mut self, conn: &mut Conn<'_, Self>, st: &mut HttpConn) {
        let mut stash = std::mem::take(&mut st.stash);
        let n = self.process(conn, st, &stash);
        stash.drain(..n);
        if st.phase == Phase::Done {
            stash.clear();
        }
        st.stash = stash;
    }

    /// Write a deferred response (on the loop, from `Deferred::send`), then
    /// go on with the requests that queued up behind it.
    pub(crate) fn complete_deferred(
        &mut self,
        conn: &mut Conn<'_, Self>,
        seq: u64,
        ex: Exchange,
        resp: &OwnedResponse,
    ) {
        let mut st = std::mem::take(conn.context());
        if st.phase != Phase::Waiting || st.seq != seq {
            *conn.context() = st;
            return;
        }
        self.refresh_date(conn);
        let now = conn.event_loop().now();
        let date = &self.date;
        let framing = conn.write_with(|out| resp.encode(out, date, ex));
        self.finish_exchange(conn, &mut st, framing.is_ok_and(|f| f.keep_alive), now);
        if st.phase != Phase::Done {
            self.process_stash(conn, &mut st);
        }
        if st.phase != Phase::Waiting {
            if st.stash_paused {
                st.stash_paused = false;
                conn.resume_read();
            }
            if st.peer_eof && st.phase != Phase::Done {
                conn.close();
                st.phase = Phase::Done;
            }
        }
        *conn.context() = st;
    }

    /// Most input held back behind a deferred response before reading pauses.
    fn stash_cap(&self) -> usize {
        self.shared.limits.max_head_bytes + 64 * 1024
    }
}

impl EventHandler for HttpHandler {
    type Context = HttpConn;

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        let mut st = std::mem::take(conn.context());
        st.since = Some(conn.event_loop().now());
        let tick = self.shared.tick;
        self.arm_timer(conn, &mut st, tick);
        *conn.context() = st;
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        self.refresh_date(conn);
        let mut st = std::mem::take(conn.context());
        if st.phase == Phase::Waiting || !st.stash.is_empty() {
            st.stash.extend_from_slice(input.as_slice());
            input.clear();
            if st.phase != Phase::Waiting {
                self.process_stash(conn, &mut st);
            }
        } else {
            let n = self.process(conn, &mut st, input.as_slice());
            match st.phase {
                Phase::Waiting => {
                    st.stash.extend_from_slice(&input.as_slice()[n..]);
                    input.clear();
                }
                Phase::Done => input.clear(),
                _ => input.consume(n),
            }
        }
        if st.phase == Phase::Waiting && !st.stash_paused && st.stash.len() > self.stash_cap() {
            st.stash_paused = true;
            conn.pause_read();
        }
        *conn.context() = st;
    }

    fn on_high_water(&mut self, conn: &mut Conn<'_, Self>, _queued: usize) {
        conn.pause_read();
    }

    fn on_write_complete(&mut self, conn: &mut Conn<'_, Self>) {
        if !conn.context().stash_paused {
            conn.resume_read();
        }
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, Self>) {
        // A request cut short (EOF in its head or body) is never handed to
        // a route; a deferred response still goes out before the close.
        let st = conn.context();
        if st.phase == Phase::Waiting {
            st.peer_eof = true;
        } else {
            conn.close();
        }
    }
}
