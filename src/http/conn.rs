//! The per-connection HTTP/1.1 state machine: bytes in, `Step`s out.
//!
//! ```text
//!            bytes                head done              body done
//!   Idle ──────────────▶ Head ─────────────────▶ Body ───────────────▶ Respond
//!    ▲                                                                   │
//!    └──────────── keep-alive ◀────────┬──── answered now ◀──────────────┤
//!                                      └──── Waiting (deferred) ◀────────┘
//!   any error, `Connection: close`, timeout ───▶ Done (the connection closes)
//! ```
//!
//! [`HttpConn`] decides; it does no I/O and never sees the connection. The
//! dispatcher (`dispatch.rs`) feeds it input with `HttpConn::advance` and
//! carries out each `Step` (write `100 Continue`, run the service and
//! write its response, write an error and close), then reports back how the
//! exchange ended (`HttpConn::answered`, `HttpConn::deferred`).
//!
//! Input is parsed in place in the connection's input buffer; a request is
//! consumed only once its head is complete (the head parser needs the buffer
//! to start at the request). While a deferred response is outstanding the
//! bytes behind it are queued here and parsed from the queue afterwards, so
//! responses leave in request order. A queue grown past
//! `queue_cap` pauses reading until the deferred response is out.
//!
//! Timeouts use one timer per connection that fires at least every
//! `timer_period` (the shortest of the three timeouts) and compares the
//! phase's deadline with the loop clock (`HttpConn::on_timer`). Moving
//! between phases then never re-arms a timer (no allocation per request),
//! yet every deadline is met within the timer's resolution: a timer armed at
//! `a <= s` with delay `<= period` fires by `s + period`, so a phase starting
//! at `s` is always checked in time.

use std::time::{Duration, Instant};

use super::message::{Exchange, Request};
use super::proto::{BodyDecoder, BodyKind, HeadParser, HttpError, Limits, RequestHead};

/// Where the connection is in its request/response cycle. Legal moves are
/// the arrows of the diagram above; `Done` is final.
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

/// What the dispatcher must do next, from [`HttpConn::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more can be done with the input given: wait for more bytes,
    /// for the deferred response, or for the close.
    Stop,
    /// The client waits for `100 Continue` before sending the body: write
    /// it, then go on.
    Continue,
    /// A request is complete: answer [`HttpConn::request`], report with
    /// [`HttpConn::answered`] or [`HttpConn::deferred`], then go on.
    Respond,
    /// The request cannot be served: write the error response for this
    /// exchange and close.
    Fail(HttpError, Exchange),
}

/// What the connection timer calls for, from [`HttpConn::on_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnTimer {
    /// The connection is closing: let the timer lapse.
    Stop,
    /// No deadline has passed: arm the timer again with this delay.
    Rearm(Duration),
    /// The keep-alive timeout passed: close silently.
    CloseIdle,
    /// The header or body timeout passed: answer `408` (best effort) for
    /// this exchange and close.
    Expired(Exchange),
}

/// What to do once the input queued behind a deferred response has been
/// worked through, from [`HttpConn::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Reading was paused for a full queue and may resume.
    pub resume_read: bool,
    /// The peer has shut down its side and nothing is left to answer.
    pub close: bool,
}

/// The connection timer's longest period: the shortest timeout.
pub(crate) fn timer_period(limits: &Limits) -> Duration {
    limits
        .header_timeout
        .min(limits.body_timeout)
        .min(limits.keepalive_timeout)
        .max(Duration::from_millis(1))
}

/// Most input queued behind a deferred response before reading pauses.
fn queue_cap(limits: &Limits) -> usize {
    limits.max_head_bytes + 64 * 1024
}

/// Per-connection state (the HTTP handler's `Context`).
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
    queue: Vec<u8>,
    /// Reading was paused because `queue` grew too large.
    queue_paused: bool,
    timer_armed: bool,
    /// Number of the request being answered (for deferred responses).
    seq: u64,
    /// The peer shut down its side while a response was deferred.
    peer_eof: bool,
    /// The server is draining: the next response closes the connection,
    /// and an idle connection closes after [`DRAIN_IDLE`].
    draining: bool,
    /// The last request asked for the close (`Connection: close`, or
    /// HTTP/1.0) and was answered: the client sends nothing more.
    asked_close: bool,
}

/// How long a draining server keeps an idle keep-alive connection open. A
/// client at full speed sends its next request within microseconds of the
/// last response, so closing an idle connection at once would race that
/// request (the client sees its request dropped); waiting this long lets
/// it arrive and be answered with `Connection: close`. An idle client
/// costs the drain this much.
pub(crate) const DRAIN_IDLE: Duration = Duration::from_millis(100);

impl Default for HttpConn {
    fn default() -> Self {
        HttpConn {
            parser: HeadParser::new(),
            head: RequestHead::new(),
            decoder: BodyDecoder::Length { remaining: 0 },
            body: Vec::new(),
            phase: Phase::Idle,
            since: None,
            queue: Vec::new(),
            queue_paused: false,
            timer_armed: false,
            seq: 0,
            peer_eof: false,
            draining: false,
            asked_close: false,
        }
    }
}

impl HttpConn {
    /// The connection opened at `now`; the keep-alive timeout runs from here.
    pub(crate) fn open(&mut self, now: Instant) {
        self.since = Some(now);
    }

    /// Parse and decode from the front of `data` until the dispatcher has
    /// something to do. Returns how many bytes were consumed and the step;
    /// after [`Step::Stop`], the unconsumed rest starts a request (or is
    /// not to be read at all, if the connection is waiting or done).
    pub(crate) fn advance(&mut self, data: &[u8], limits: &Limits, now: Instant) -> (usize, Step) {
        let mut pos = 0;
        loop {
            match self.phase {
                Phase::Waiting | Phase::Done => return (pos, Step::Stop),
                Phase::Idle | Phase::Head => {
                    if pos == data.len() {
                        return (pos, Step::Stop);
                    }
                    if self.phase == Phase::Idle {
                        self.phase = Phase::Head;
                        self.since = Some(now);
                    }
                    match self.parser.parse(&data[pos..], &mut self.head, limits) {
                        Ok(None) => return (pos, Step::Stop),
                        Ok(Some(n)) => {
                            pos += n;
                            self.body.clear();
                            match self.head.body_kind(limits) {
                                Ok(BodyKind::None) => return (pos, self.complete()),
                                Ok(kind) => {
                                    self.decoder = BodyDecoder::new(kind, limits);
                                    self.phase = Phase::Body;
                                    self.since = Some(now);
                                    // Only when the body is not already here:
                                    // a client that sent it did not wait.
                                    if self.head.expects_continue() && pos == data.len() {
                                        return (pos, Step::Continue);
                                    }
                                }
                                Err(e) => return (pos, self.fail(e, true)),
                            }
                        }
                        Err(e) => {
                            self.parser.reset();
                            return (pos, self.fail(e, false));
                        }
                    }
                }
                Phase::Body => match self.decoder.decode(&data[pos..], &mut self.body) {
                    Ok((n, true)) => return (pos + n, self.complete()),
                    Ok((n, false)) => {
                        if n > 0 {
                            self.since = Some(now);
                        }
                        return (pos + n, Step::Stop);
                    }
                    Err(e) => return (pos, self.fail(e, true)),
                },
            }
        }
    }

    fn complete(&mut self) -> Step {
        self.seq += 1;
        Step::Respond
    }

    /// The connection closes after answering `err`; `with_head`: the head
    /// was parsed and frames the answer.
    fn fail(&mut self, err: HttpError, with_head: bool) -> Step {
        self.phase = Phase::Done;
        Step::Fail(err, Exchange::closing(with_head.then_some(&self.head)))
    }

    /// The complete request of the last [`Step::Respond`].
    pub(crate) fn request(&self) -> Request<'_> {
        Request::new(&self.head, &self.body)
    }

    /// How the response to [`HttpConn::request`] is framed.
    pub(crate) fn exchange(&self) -> Exchange {
        Exchange::of(&self.head)
    }

    /// Number of the request being answered, to match its deferred response.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The server began draining. Returns whether the connection should
    /// close now (it is closing anyway); otherwise its next response closes
    /// it, or it closes after idling [`DRAIN_IDLE`] (see `on_timer`).
    pub(crate) fn drain(&mut self) -> bool {
        self.draining = true;
        self.phase == Phase::Done
    }

    /// The response to a request that asked for the close was written.
    pub(crate) fn answered_a_close(&mut self) {
        self.asked_close = true;
    }

    /// Whether the connection ends because its client asked, after a
    /// complete exchange (then it need not wait for the client's FIN).
    pub(crate) fn client_asked_close(&self) -> bool {
        self.asked_close && self.phase == Phase::Done
    }

    /// Whether responses must close the connection (the server drains).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining
    }

    /// The response was written at `now`; `keep_alive`: as its framing said.
    /// Returns whether the connection stays open (else close it).
    pub(crate) fn answered(&mut self, keep_alive: bool, now: Instant) -> bool {
        if keep_alive {
            self.phase = Phase::Idle;
            self.since = Some(now);
        } else {
            self.phase = Phase::Done;
        }
        keep_alive
    }

    /// Response bytes are still going out at `now`: a keep-alive
    /// connection is idle only once they have gone, so its clock restarts
    /// (a slow download is not cut by the keep-alive timeout; one that
    /// stops progressing is ended by the connection's write timeout).
    pub(crate) fn sending(&mut self, now: Instant) {
        if self.phase == Phase::Idle {
            self.since = Some(now);
        }
    }

    /// The handler deferred its response: hold everything behind it.
    /// `now`: when the request was complete (the response's latency runs
    /// from there; the Waiting phase has no deadline to keep `since` for).
    pub(crate) fn deferred(&mut self, now: Instant) {
        self.phase = Phase::Waiting;
        self.since = Some(now);
    }

    /// When the outstanding deferred response was asked for.
    pub(crate) fn waiting_since(&self) -> Option<Instant> {
        self.since.filter(|_| self.phase == Phase::Waiting)
    }

    /// Whether a deferred response is outstanding.
    pub(crate) fn is_waiting(&self) -> bool {
        self.phase == Phase::Waiting
    }

    /// Whether the deferred response for request `seq` is the one awaited
    /// (a stale one, for a connection that moved on, is dropped).
    pub(crate) fn awaits(&self, seq: u64) -> bool {
        self.phase == Phase::Waiting && self.seq == seq
    }

    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether new input must join the queue rather than be parsed in
    /// place: a response is deferred, or older input is queued.
    pub(crate) fn queues_input(&self) -> bool {
        self.phase == Phase::Waiting || !self.queue.is_empty()
    }

    pub(crate) fn queue_input(&mut self, bytes: &[u8]) {
        self.queue.extend_from_slice(bytes);
    }

    /// After parsing in place: `rest` is the unconsumed input. Returns
    /// whether the input buffer keeps it; if not, it was queued (behind a
    /// deferred response) or is not to be read (closing), and the buffer
    /// is to be cleared.
    pub(crate) fn keeps_rest(&mut self, rest: &[u8]) -> bool {
        match self.phase {
            Phase::Waiting => {
                self.queue.extend_from_slice(rest);
                false
            }
            Phase::Done => false,
            _ => true,
        }
    }

    /// The queued input, to parse; give back what is left with
    /// [`HttpConn::requeue`].
    pub(crate) fn take_queue(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.queue)
    }

    /// Puts back the queue from [`HttpConn::take_queue`], minus the
    /// `consumed` bytes at its front (all of it when closing).
    pub(crate) fn requeue(&mut self, mut queue: Vec<u8>, consumed: usize) {
        queue.drain(..consumed);
        if self.phase == Phase::Done {
            queue.clear();
        }
        self.queue = queue;
    }

    /// Whether reading must pause: the queue behind a deferred response
    /// has grown past [`queue_cap`]. True once per pause.
    pub(crate) fn pause_for_queue(&mut self, limits: &Limits) -> bool {
        let pause = self.phase == Phase::Waiting
            && !self.queue_paused
            && self.queue.len() > queue_cap(limits);
        self.queue_paused |= pause;
        pause
    }

    /// Whether reading is paused for the queue (so a drained output must
    /// not resume it).
    pub(crate) fn is_paused_for_queue(&self) -> bool {
        self.queue_paused
    }

    /// After a deferred response went out and the queue was worked
    /// through.
    pub(crate) fn settle(&mut self) -> Settled {
        let mut s = Settled {
            resume_read: false,
            close: false,
        };
        if self.phase != Phase::Waiting {
            s.resume_read = std::mem::take(&mut self.queue_paused);
            if self.peer_eof && self.phase != Phase::Done {
                self.phase = Phase::Done;
                s.close = true;
            }
        }
        s
    }

    /// The peer shut down its side. Returns whether to close now; a
    /// deferred response still goes out first. (A request cut short, EOF in
    /// its head or body, is never handed to the service.)
    pub(crate) fn read_closed(&mut self) -> bool {
        if self.phase == Phase::Waiting {
            self.peer_eof = true;
            false
        } else {
            true
        }
    }

    /// Whether a timer must be armed (none is pending); it now is.
    pub(crate) fn arm_timer(&mut self) -> bool {
        !std::mem::replace(&mut self.timer_armed, true)
    }

    /// The connection timer fired at `now`: check the current phase's
    /// deadline.
    pub(crate) fn on_timer(&mut self, now: Instant, limits: &Limits) -> OnTimer {
        self.timer_armed = false;
        let since = self.since.unwrap_or(now);
        let deadline = match self.phase {
            Phase::Idle if self.draining => Some(since + limits.keepalive_timeout.min(DRAIN_IDLE)),
            Phase::Idle => Some(since + limits.keepalive_timeout),
            Phase::Head => Some(since + limits.header_timeout),
            Phase::Body => Some(since + limits.body_timeout),
            Phase::Waiting => None,
            Phase::Done => return OnTimer::Stop,
        };
        match deadline {
            Some(d) if now >= d => {
                let phase = std::mem::replace(&mut self.phase, Phase::Done);
                match phase {
                    Phase::Idle => OnTimer::CloseIdle,
                    // A head is only known complete once in Body.
                    _ => OnTimer::Expired(Exchange::closing(
                        (phase == Phase::Body).then_some(&self.head),
                    )),
                }
            }
            _ => {
                let period = timer_period(limits);
                OnTimer::Rearm(deadline.map_or(period, |d| (d - now).min(period)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The state machine alone: bytes in, steps out, no connection.
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    /// Feeds `data` like the dispatcher, answering every request at once
    /// and keeping the connection; returns the steps seen (other than
    /// `Stop`) and the bytes consumed.
    fn drive(st: &mut HttpConn, data: &[u8], now: Instant) -> (Vec<Step>, usize) {
        let mut steps = Vec::new();
        let mut pos = 0;
        loop {
            let (n, step) = st.advance(&data[pos..], &limits(), now);
            pos += n;
            match step {
                Step::Stop => return (steps, pos),
                Step::Respond => {
                    st.answered(true, now);
                }
                _ => {}
            }
            steps.push(step);
        }
    }

    #[test]
    fn pipelined_requests_answer_in_order_and_keep_a_partial_head() {
        let mut st = HttpConn::default();
        let now = Instant::now();
        let reqs = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\n";
        let (steps, n) = drive(&mut st, reqs, now);
        assert_eq!(steps, [Step::Respond, Step::Respond]);
        assert_eq!(
            &reqs[n..],
            b"GET /c HTTP/1.1\r\n",
            "a partial head stays unconsumed"
        );
        assert_eq!(st.seq(), 2);
        assert_eq!(st.request().body(), b"abc");
    }

    #[test]
    fn expect_continue_only_when_the_body_is_not_already_here() {
        let head =
            b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        let now = Instant::now();
        let mut st = HttpConn::default();
        assert_eq!(
            drive(&mut st, head, now),
            (vec![Step::Continue], head.len())
        );
        let mut st = HttpConn::default();
        let whole = [&head[..], b"hi"].concat();
        assert_eq!(
            drive(&mut st, &whole, now),
            (vec![Step::Respond], whole.len())
        );
    }

    #[test]
    fn a_bad_head_fails_and_nothing_more_is_read() {
        let mut st = HttpConn::default();
        let (steps, n) = drive(
            &mut st,
            b"GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.1\r\n",
            Instant::now(),
        );
        assert!(matches!(steps[..], [Step::Fail(e, _)] if e.status == 400 && e.close));
        assert_eq!(n, 0);
        assert!(st.is_done());
        assert!(!st.keeps_rest(b"rest"));
    }

    #[test]
    fn input_behind_a_deferred_response_is_queued_then_parsed() {
        let mut st = HttpConn::default();
        let now = Instant::now();
        let data = b"GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n";
        let (n, step) = st.advance(data, &limits(), now);
        assert_eq!(step, Step::Respond);
        st.deferred(Instant::now());
        assert_eq!(st.advance(&data[n..], &limits(), now), (0, Step::Stop));
        assert!(!st.keeps_rest(&data[n..]), "queued, not left in the buffer");
        assert!(st.queues_input());
        assert!(st.awaits(1) && !st.awaits(2));
        assert!(!st.read_closed(), "the deferred response goes out first");

        st.answered(true, now);
        let queue = st.take_queue();
        let (steps, used) = drive(&mut st, &queue, now);
        st.requeue(queue, used);
        assert_eq!(steps, [Step::Respond]);
        assert!(!st.queues_input());
        assert_eq!(
            st.settle(),
            Settled {
                resume_read: false,
                close: true
            },
            "the peer left while waiting: close once answered"
        );
    }

    #[test]
    fn a_large_queue_pauses_reading_once() {
        let mut st = HttpConn::default();
        let now = Instant::now();
        st.advance(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &limits(), now);
        st.deferred(Instant::now());
        let cap = queue_cap(&limits());
        st.queue_input(&vec![b'x'; cap]);
        assert!(!st.pause_for_queue(&limits()));
        st.queue_input(b"x");
        assert!(st.pause_for_queue(&limits()));
        assert!(!st.pause_for_queue(&limits()));
        assert!(st.is_paused_for_queue());
        st.answered(true, now);
        assert!(st.settle().resume_read);
        assert!(!st.is_paused_for_queue());
    }

    #[test]
    fn timer_checks_the_deadline_of_the_current_phase() {
        let l = Limits {
            header_timeout: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let t0 = Instant::now();
        let mut st = HttpConn::default();
        st.open(t0);
        assert!(st.arm_timer());
        assert!(!st.arm_timer(), "one timer at a time");
        assert_eq!(
            st.on_timer(t0 + Duration::from_secs(1), &l),
            OnTimer::Rearm(Duration::from_secs(1)),
            "never longer than the shortest timeout"
        );
        st.advance(b"GET / HT", &l, t0 + Duration::from_secs(2));
        assert_eq!(
            st.on_timer(t0 + Duration::from_secs(3), &l),
            OnTimer::Expired(Exchange::closing(None))
        );
        assert_eq!(st.on_timer(t0 + Duration::from_secs(4), &l), OnTimer::Stop);

        let mut idle = HttpConn::default();
        idle.open(t0);
        assert_eq!(
            idle.on_timer(t0 + Duration::from_secs(5), &l),
            OnTimer::CloseIdle
        );
    }
    /// A draining server closes an idle keep-alive connection after
    /// DRAIN_IDLE, not the keep-alive timeout; a request under way is not
    /// cut, and its answer closes the connection.
    #[test]
    fn draining_closes_idle_connections_soon_and_lets_a_request_finish() {
        let l = limits();
        let t0 = Instant::now();
        let mut idle = HttpConn::default();
        idle.open(t0);
        assert!(!idle.drain(), "an open connection is not closed at once");
        assert!(idle.is_draining());
        assert_eq!(
            idle.on_timer(t0 + DRAIN_IDLE / 2, &l),
            OnTimer::Rearm(DRAIN_IDLE / 2)
        );
        assert_eq!(idle.on_timer(t0 + DRAIN_IDLE, &l), OnTimer::CloseIdle);

        let mut busy = HttpConn::default();
        busy.open(t0);
        let head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab";
        let (n, step) = busy.advance(head, &l, t0);
        assert_eq!((n, step), (head.len(), Step::Stop));
        assert!(!busy.drain());
        // Reading the body: the body timeout applies, not DRAIN_IDLE.
        assert!(matches!(
            busy.on_timer(t0 + DRAIN_IDLE * 2, &l),
            OnTimer::Rearm(_)
        ));
        let (_, step) = busy.advance(b"cd", &l, t0 + DRAIN_IDLE * 2);
        assert_eq!(step, Step::Respond);

        let mut done = HttpConn::default();
        done.open(t0);
        assert!(!done.answered(false, t0));
        assert!(done.drain(), "a connection already closing closes at once");
    }
}
