//! The dispatcher: where HTTP meets the framework's connections. This is the
//! only file in `http/` that uses the connection API (`Conn`, `ConnHandle`,
//! `EventHandler`, `Buffer`, `CloseReason`).
//!
//! [`HttpHandler`] is the [`EventHandler`] of every HTTP connection. It
//! feeds input to the connection's state machine ([`HttpConn`]), carries out
//! the `Step`s it returns, and hands each complete request to a
//! [`Service`] (the [`Router`](super::Router), for [`HttpBuilder`]) with a
//! [`Response`] to fill. A service that cannot answer at once defers
//! ([`Response::defer`]): the [`Deferred`] it gets is the way back to the
//! connection, from any thread.
//!
//! `HttpHandler` is generic over its service so that the call to the router
//! is static (no indirection per request) while the router, which names
//! `Response`, stays above this file.
//!
//! [`HttpBuilder`]: super::HttpBuilder

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::conn::{timer_period, HttpConn, OnTimer, Step, DRAIN_IDLE};
use super::message::{Exchange, OwnedResponse, Parts, Request};
use super::proto::{write_continue, DateCache, HttpError, Limits};
use crate::net::{Addr, Buffer, CloseReason, Closed, Conn, ConnHandle, EventHandler};
use crate::reactor::LoopStats;

/// What a connection hands each complete request to.
///
/// Runs on a loop thread: it must not block (defer with
/// [`Response::defer`] and answer from another thread instead).
pub trait Service: Send + Sync + 'static {
    /// Answer `req` by filling `resp`.
    fn call(&self, req: &Request<'_>, resp: &mut Response<'_>);
}

/// The framework handler serving HTTP/1.1 to `S`; one per loop, shared by
/// the loop's connections. [`HttpBuilder`](super::HttpBuilder) makes these
/// for a [`Router`](super::Router).
pub struct HttpHandler<S> {
    service: Arc<S>,
    limits: Limits,
    date: DateCache,
    /// Loop time at which `date` must be reformatted.
    next_date: Option<Instant>,
    /// The response being built, reused for every request of this loop.
    parts: Parts,
}

impl<S: Service> HttpHandler<S> {
    /// A loop's handler; `service` is shared by every loop's handler.
    /// Call from the factory given to
    /// [`ServerBuilder::start`](crate::net::ServerBuilder::start).
    pub fn new(service: Arc<S>, limits: Limits) -> Self {
        HttpHandler {
            service,
            limits,
            date: DateCache::new(),
            next_date: None,
            parts: Parts::default(),
        }
    }

    /// Keep the cached `Date` current: reformat it when the loop clock has
    /// passed the next whole second. (Chosen over a per-loop one-second
    /// timer: an idle server does no work, and the check is one compare.)
    fn refresh_date(&mut self, conn: &mut Conn<'_, Self>) {
        let now = conn.loop_ctx().now();
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
        if st.arm_timer() {
            conn.run_after(delay.max(Duration::from_millis(1)), |h, conn| {
                h.on_timer(conn)
            });
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_, Self>) {
        let now = conn.loop_ctx().now();
        let mut st = std::mem::take(conn.context());
        if conn.queued() > 0 {
            st.sending(now);
        }
        match st.on_timer(now, &self.limits) {
            OnTimer::Stop => {}
            OnTimer::Rearm(delay) => self.arm_timer(conn, &mut st, delay),
            // An idle keep-alive connection just goes away.
            OnTimer::CloseIdle => conn.close_with(CloseReason::IdleTimeout),
            OnTimer::Expired(ex) => {
                self.refresh_date(conn);
                let err = HttpError::REQUEST_TIMEOUT;
                let date = &self.date;
                let now = conn.loop_ctx().now();
                count_response(conn.loop_ctx().stats(), err.status, now);
                let _ = conn.write_with(|out| ex.write_error(out, &err, date));
                conn.close_with(CloseReason::ReadTimeout);
            }
        }
        *conn.context() = st;
    }

    /// Answer a request that cannot be served and close.
    fn fail(&mut self, conn: &mut Conn<'_, Self>, err: HttpError, ex: Exchange) {
        let date = &self.date;
        let now = conn.loop_ctx().now();
        count_response(conn.loop_ctx().stats(), err.status, now);
        let _ = conn.write_with(|out| ex.write_error(out, &err, date));
        conn.close_with(CloseReason::Protocol(format!(
            "{} {}",
            err.status, err.reason
        )));
    }

    /// Parse and answer every complete request at the front of `data`.
    /// Returns how many bytes were consumed; what remains starts a request.
    fn process(&mut self, conn: &mut Conn<'_, Self>, st: &mut HttpConn, data: &[u8]) -> usize {
        let now = conn.loop_ctx().now();
        let mut pos = 0;
        loop {
            let (n, step) = st.advance(&data[pos..], &self.limits, now);
            pos += n;
            match step {
                Step::Stop => return pos,
                Step::Continue => {
                    let _ = conn.write_with(write_continue);
                }
                Step::Respond => {
                    self.respond(conn, st, now);
                    if Self::backlogged(conn, st) {
                        return pos;
                    }
                }
                Step::Fail(err, ex) => {
                    self.fail(conn, err, ex);
                    return pos;
                }
            }
        }
    }

    /// Whether to stop answering pipelined requests for now: the responses
    /// written reach the high-water mark and the socket cannot take them.
    /// Reading pauses; the requests not yet parsed stay in the input and
    /// come again when the output drains (`on_write_complete`), so one read
    /// of small requests cannot make the connection hold an unbounded
    /// amount of responses.
    fn backlogged(conn: &mut Conn<'_, Self>, st: &HttpConn) -> bool {
        if st.is_waiting() || conn.is_closing() || conn.pending_output() < conn.high_water() {
            return false;
        }
        conn.flush();
        if conn.queued() == 0 {
            return false;
        }
        conn.pause_read();
        true
    }

    /// Run the service for the complete request in `st` and write its
    /// response.
    fn respond(&mut self, conn: &mut Conn<'_, Self>, st: &mut HttpConn, now: Instant) {
        let ex = match st.is_draining() {
            true => st.exchange().closing_after(),
            false => st.exchange(),
        };
        LoopStats::add(&conn.loop_ctx().stats().messages, 1);
        self.parts.reset();
        {
            let req = st.request();
            let mut resp = Response {
                parts: &mut self.parts,
                replier: conn,
                exchange: ex,
                seq: st.seq(),
            };
            self.service.call(&req, &mut resp);
        }
        if self.parts.is_deferred() {
            st.deferred(now);
            return;
        }
        count_response(conn.loop_ctx().stats(), self.parts.status(), now);
        let (parts, date) = (&mut self.parts, &self.date);
        let framing = conn.write_with(|out| parts.encode(out, date, ex));
        if let Some((file, offset, len)) = self.parts.take_file(ex) {
            let _ = conn.send_file(file, offset, len);
        }
        if !st.answered(framing.is_ok_and(|f| f.keep_alive), now) {
            if !st.exchange().keeps_alive() {
                st.answered_a_close();
            }
            conn.close();
        }
    }

    /// Parse what is queued; keep the unconsumed rest queued.
    fn process_queue(&mut self, conn: &mut Conn<'_, Self>, st: &mut HttpConn) {
        let queue = st.take_queue();
        let n = self.process(conn, st, &queue);
        st.requeue(queue, n);
    }

    /// Write a deferred response (on the loop, from `Deferred::send`), then
    /// go on with the requests that queued up behind it.
    fn complete_deferred(
        &mut self,
        conn: &mut Conn<'_, Self>,
        seq: u64,
        ex: Exchange,
        resp: &OwnedResponse,
    ) {
        let mut st = std::mem::take(conn.context());
        if !st.awaits(seq) {
            *conn.context() = st;
            return;
        }
        self.refresh_date(conn);
        let now = conn.loop_ctx().now();
        let stats = conn.loop_ctx().stats();
        count_response(stats, resp.status, st.waiting_since().unwrap_or(now));
        let date = &self.date;
        let ex = if st.is_draining() {
            ex.closing_after()
        } else {
            ex
        };
        let framing = conn.write_with(|out| resp.encode(out, date, ex));
        if !st.answered(framing.is_ok_and(|f| f.keep_alive), now) {
            conn.close();
        }
        if !st.is_done() {
            self.process_queue(conn, &mut st);
        }
        let settled = st.settle();
        if settled.resume_read {
            conn.resume_read();
        }
        if settled.close {
            conn.close();
        }
        *conn.context() = st;
    }
}

impl<S: Service> EventHandler for HttpHandler<S> {
    type Context = HttpConn;

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        let mut st = std::mem::take(conn.context());
        st.open(conn.loop_ctx().now());
        let period = timer_period(&self.limits);
        self.arm_timer(conn, &mut st, period);
        *conn.context() = st;
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        self.refresh_date(conn);
        let mut st = std::mem::take(conn.context());
        if st.queues_input() {
            st.queue_input(input.as_slice());
            input.clear();
            if !st.is_waiting() {
                self.process_queue(conn, &mut st);
            }
        } else {
            let n = self.process(conn, &mut st, input.as_slice());
            // The client asked for the close and sent nothing after its
            // request: no FIN-and-wait (`close_done`), as nginx.
            let clean = n == input.len() && st.client_asked_close();
            if st.keeps_rest(&input.as_slice()[n..]) {
                input.consume(n);
            } else {
                input.clear();
            }
            if clean {
                conn.close_done();
            }
        }
        if st.pause_for_queue(&self.limits) {
            conn.pause_read();
        }
        *conn.context() = st;
    }

    fn on_high_water(&mut self, conn: &mut Conn<'_, Self>, _queued: usize) {
        conn.pause_read();
    }

    fn on_write_complete(&mut self, conn: &mut Conn<'_, Self>) {
        // The keep-alive clock starts when the response has gone.
        let now = conn.loop_ctx().now();
        conn.context().sending(now);
        if !conn.context().is_paused_for_queue() {
            conn.resume_read();
        }
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, Self>) {
        if conn.context().read_closed() {
            conn.close();
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_, Self>) -> bool {
        if conn.context().drain() {
            return true;
        }
        // Check soon whether it is idle, whatever the timer armed before
        // (its period may be seconds); a second timer only checks again.
        conn.run_after(DRAIN_IDLE, |h, conn| h.on_timer(conn));
        false
    }
}

/// Gives a [`Response`] its way back to the connection, used only when the
/// service defers (making a `ConnHandle` costs an allocation per
/// connection, so it is not done up front).
trait Replier {
    fn defer(&mut self, seq: u64, exchange: Exchange) -> Deferred;
    fn peer_addr(&self) -> Option<Addr>;
}

impl<S: Service> Replier for Conn<'_, HttpHandler<S>> {
    fn defer(&mut self, seq: u64, exchange: Exchange) -> Deferred {
        let handle: ConnHandle<HttpHandler<S>> = self.handle();
        // Boxed, so that `Deferred` need not name `S`.
        let complete: CompleteFn = Box::new(move |resp| {
            handle.run(move |h, conn| h.complete_deferred(conn, seq, exchange, &resp))
        });
        Deferred {
            complete: Some(complete),
            seq,
        }
    }

    fn peer_addr(&self) -> Option<Addr> {
        Conn::peer_addr(self).ok()
    }
}

/// Runs [`HttpHandler::complete_deferred`] on the connection's loop.
type CompleteFn = Box<dyn FnOnce(OwnedResponse) -> Result<(), Closed> + Send>;

/// The response to a [`Request`]: status, fields and a body from memory or
/// from a file. The framing fields (`Content-Length`, `Transfer-Encoding`,
/// `Connection`, `Date`, `Server`) are generated and cannot be set.
///
/// Status defaults to 200 with an empty body.
pub struct Response<'a> {
    parts: &'a mut Parts,
    replier: &'a mut (dyn Replier + 'a),
    exchange: Exchange,
    seq: u64,
}

impl Response<'_> {
    /// The client's address (a syscall per call; behind a load balancer
    /// speaking the PROXY protocol, the original client it named), or
    /// `None` if the socket has none.
    pub fn peer_addr(&self) -> Option<Addr> {
        self.replier.peer_addr()
    }

    /// Set the status code.
    pub fn status(&mut self, code: u16) -> &mut Self {
        self.parts.set_status(code);
        self
    }

    /// Add a field (repeatable). Invalid names, values with control
    /// characters, and the fields the server sets itself (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`, `Date`, `Server`) are dropped.
    pub fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        self.parts.push_field(name, value.as_ref());
        self
    }

    /// Add field lines (`name: value\r\n` each) the server formatted from
    /// values it made itself, without the checks of [`Response::header`].
    pub(crate) fn trusted_fields(&mut self, lines: &[u8]) -> &mut Self {
        self.parts.push_trusted(lines);
        self
    }

    /// Replace the body with `bytes`.
    pub fn body(&mut self, bytes: &[u8]) -> &mut Self {
        self.parts.set_body(bytes);
        self
    }

    /// The body buffer, to encode into directly (it starts empty).
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        self.parts.body_mut()
    }

    /// A `text/plain` body.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.parts
            .push_line(b"Content-Type: text/plain; charset=utf-8\r\n");
        self.body(s.as_bytes())
    }

    /// An `application/json` body (`s` must already be JSON).
    pub fn json(&mut self, s: &str) -> &mut Self {
        self.parts.push_line(b"Content-Type: application/json\r\n");
        self.body(s.as_bytes())
    }

    /// A `text/html` body.
    pub fn html(&mut self, s: &str) -> &mut Self {
        self.parts
            .push_line(b"Content-Type: text/html; charset=utf-8\r\n");
        self.body(s.as_bytes())
    }

    /// Send `len` bytes of `file` from `offset` as the body: read into the
    /// response when small (up to [`INLINE_FILE_MAX`](crate::http::INLINE_FILE_MAX), so the head and the
    /// body leave in one send), otherwise with sendfile after the head. The
    /// file may be shared (`Arc<File>`); its offset is never moved.
    pub fn file(&mut self, file: impl Into<Arc<File>>, offset: u64, len: u64) -> &mut Self {
        self.parts.set_file(file.into(), offset, len);
        self
    }

    /// Answer with a small `text/plain` error page for `err` instead (closes
    /// the connection afterwards if `err.close`).
    pub fn error(&mut self, err: HttpError) -> &mut Self {
        self.parts.set_error(err);
        self
    }

    /// Close the connection after this response.
    pub fn close(&mut self) -> &mut Self {
        self.parts.set_close();
        self
    }

    /// Whether the response to this request will carry no body (HEAD).
    pub fn is_head_request(&self) -> bool {
        self.exchange.is_head_request()
    }

    /// Answer later: returns a `Send` token to finish the response with, from
    /// any thread. Requests pipelined behind this one wait (their bytes are
    /// kept, unparsed) until it is finished, so responses stay in order.
    /// Whatever was set on this `Response` is discarded. Dropping the token
    /// without answering sends `500`.
    pub fn defer(&mut self) -> Deferred {
        self.parts.set_deferred();
        self.replier.defer(self.seq, self.exchange)
    }
}

/// A response promised by [`Response::defer`]. `Send`: finish it from any
/// thread with [`Deferred::send`]; it is written on the connection's loop,
/// in pipeline order. Dropped unanswered, it sends `500`.
pub struct Deferred {
    complete: Option<CompleteFn>,
    seq: u64,
}

impl Deferred {
    /// Finish the response. Fails if the connection is gone.
    pub fn send(mut self, resp: OwnedResponse) -> Result<(), Closed> {
        self.finish(resp)
    }

    fn finish(&mut self, resp: OwnedResponse) -> Result<(), Closed> {
        let Some(complete) = self.complete.take() else {
            return Err(Closed);
        };
        complete(resp)
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if self.complete.is_some() {
            let _ = self.finish(OwnedResponse::new(500, "deferred response dropped\n"));
        }
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred").field("seq", &self.seq).finish()
    }
}

/// Count a response in the loop's counters: its status class, and its
/// latency from `since` (the start of the loop turn that completed the
/// request, so time the request waited behind other work on the loop is
/// included) to now. One clock read per response.
fn count_response(stats: &LoopStats, status: u16, since: Instant) {
    let class = usize::from(status / 100).clamp(1, 5) - 1;
    LoopStats::add(&stats.responses[class], 1);
    stats
        .latency
        .record(Instant::now().saturating_duration_since(since));
}
