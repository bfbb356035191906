//! Incremental, validating HTTP/1.x request-head parsing (RFC 9112 §2-§3,
//! RFC 9110 §5-§7).
//!
//! Parsing happens in two passes over the head, both bounded by
//! [`Limits::max_head_bytes`]:
//!
//! 1. A resumable line scanner ([`HeadParser`]) finds the end of the head.
//!    It remembers how far it got, so feeding a head one byte at a time costs
//!    O(head) in total rather than O(head²). While scanning it enforces the
//!    limits that must trip *before* the head is complete (request line length
//!    → 414, field count and head size → 431) and the line-ending rules
//!    (a bare LF or bare CR anywhere in the head → 400; obs-fold → 400).
//! 2. Once the empty line has arrived, the head is copied once into the
//!    reusable [`RequestHead`] and parsed by `httparse`, after which the
//!    semantic checks run (version, request-target form, `Host`, message
//!    framing, `Connection`, `Expect`).
//!
//! Policy decisions (documented here once):
//!
//! * Line endings must be CRLF; a bare LF (which RFC 9112 §2.2 permits a
//!   recipient to accept) is rejected because lenient line endings are a
//!   classic request-smuggling vector between differing parsers.
//! * Empty lines before the request line are skipped (RFC 9112 §2.2) and
//!   count towards the head length and `max_head_bytes`.
//! * `HTTP/1.x` with `x >= 2` is processed as HTTP/1.1, as RFC 9110 §6.2
//!   requires of a 1.1 recipient; any other major version (`HTTP/0.9`,
//!   `HTTP/2.0`, `HTTP/3.0`) is answered with 505. A version token that is not
//!   `HTTP/` DIGIT `.` DIGIT is a malformed request line (400).
//! * `Content-Length` is accepted as a comma-separated list only if every
//!   element is the same decimal number (`5, 5` → 5, as permitted by RFC 9110
//!   §8.6); differing values, empty elements, signs, non-digits or overflow
//!   are 400 + close.
//! * Framing with `Transfer-Encoding` (RFC 9112 §6.1, §6.3): together with
//!   `Content-Length` → 400; in an HTTP/1.0 request → 400; `chunked` missing,
//!   not last, or applied twice → 400; otherwise a coding other than
//!   `chunked` (e.g. `gzip, chunked`) → 501, since this server decodes none.
//! * The request target must be origin-form (`/path?query`), absolute-form
//!   with an `http`/`https` scheme and a non-empty authority, authority-form
//!   only with CONNECT, or `*` only with OPTIONS. A fragment (`#`) or a
//!   malformed `%` escape in the target → 400. Other printable bytes and UTF-8
//!   are tolerated (the handler decides what a path means).
//! * `Expect` other than `100-continue` in HTTP/1.1 → 417; in HTTP/1.0 the
//!   field is ignored (RFC 9110 §10.1.1).
//! * Every error from [`HeadParser::parse`] sets `close = true`
//!   ([`percent_decode`], a helper for handlers, does not).

use std::mem::MaybeUninit;
use std::net::Ipv6Addr;

use super::error::HttpError;
use super::limits::{Limits, HEADER_SLOTS};

// ---------------------------------------------------------------------------
// Errors produced by the parser.

const E_BARE_LF: HttpError = HttpError::fatal(400, "bare LF line terminator");
const E_BARE_CR: HttpError = HttpError::fatal(400, "bare CR in request head");
const E_OBS_FOLD: HttpError = HttpError::fatal(400, "obsolete line folding");
const E_REQUEST_LINE: HttpError = HttpError::fatal(400, "malformed request line");
const E_METHOD_TOO_LONG: HttpError = HttpError::fatal(400, "request method too long");
const E_TARGET_TOO_LONG: HttpError = HttpError::fatal(414, "request target too long");
const E_TOO_MANY_FIELDS: HttpError = HttpError::fatal(431, "too many header fields");
const E_HEAD_TOO_LARGE: HttpError = HttpError::fatal(431, "request head too large");
const E_VERSION: HttpError = HttpError::fatal(505, "HTTP version not supported");
const E_FIELD_NAME: HttpError = HttpError::fatal(400, "invalid header field name");
const E_FIELD_VALUE: HttpError = HttpError::fatal(400, "invalid header field value");
const E_TARGET: HttpError = HttpError::fatal(400, "invalid request target");
const E_MISSING_HOST: HttpError = HttpError::fatal(400, "missing Host header");
const E_DUP_HOST: HttpError = HttpError::fatal(400, "duplicate Host header");
const E_BAD_HOST: HttpError = HttpError::fatal(400, "invalid Host header");
const E_CL_TE: HttpError = HttpError::fatal(400, "Content-Length with Transfer-Encoding");
const E_BAD_CL: HttpError = HttpError::fatal(400, "invalid Content-Length");
const E_CONFLICTING_CL: HttpError = HttpError::fatal(400, "conflicting Content-Length values");
const E_TE_HTTP10: HttpError = HttpError::fatal(400, "Transfer-Encoding in HTTP/1.0 request");
const E_BAD_TE: HttpError = HttpError::fatal(400, "invalid Transfer-Encoding");
const E_CHUNKED_NOT_LAST: HttpError = HttpError::fatal(400, "chunked is not the final coding");
const E_UNKNOWN_TE: HttpError = HttpError::fatal(501, "unsupported transfer coding");
const E_EXPECT: HttpError = HttpError::fatal(417, "unsupported expectation");
const E_PERCENT: HttpError = HttpError::new(400, "invalid percent-encoding", false);
const E_PERCENT_NUL: HttpError = HttpError::new(400, "NUL in percent-encoding", false);

// ---------------------------------------------------------------------------
// Small byte helpers.

/// Position of the first LF in `buf[from..to]`, as an index into `buf`.
///
/// Scans a word (8 bytes) at a time with the classic "has zero byte" bit
/// trick on `word ^ 0x0a0a..`: the lowest flagged byte is always exact
/// (false positives can only appear above a true match).
#[inline]
fn find_lf(buf: &[u8], from: usize, to: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let hay = &buf[from..to];
    let mut words = hay.chunks_exact(8);
    let mut base = from;
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes) ^ LFS;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

/// Whether some LF in `bytes` is not preceded by CR (`prev` is the byte
/// before `bytes`). Eight bytes at a time: exact per-byte equality masks
/// (high bit of each byte), the CR mask shifted up one byte.
fn has_bare_lf(bytes: &[u8], prev: u8) -> bool {
    const LOWS: u64 = u64::from_ne_bytes([0x7f; 8]);
    fn eq_mask(word: u64, byte: u8) -> u64 {
        let x = word ^ u64::from_ne_bytes([byte; 8]);
        !(((x & LOWS).wrapping_add(LOWS)) | x | LOWS)
    }
    let mut carry = u64::from(prev == b'\r') << 7;
    let mut words = bytes.chunks_exact(8);
    let mut bad = 0u64;
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let word = u64::from_le_bytes(b);
        let cr = eq_mask(word, b'\r');
        bad |= eq_mask(word, b'\n') & !((cr << 8) | carry);
        carry = cr >> 56;
    }
    let mut prev_cr = carry != 0;
    for &b in words.remainder() {
        if b == b'\n' && !prev_cr {
            return true;
        }
        prev_cr = b == b'\r';
    }
    bad != 0
}

#[inline]
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_ows(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_ows(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// A 256-entry membership table: alphanumerics plus `extra`.
const fn byte_class(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// `tchar` (RFC 9110 §5.6.2).
static TCHAR: [bool; 256] = byte_class(b"!#$%&'*+-.^_`|~");
/// `unreserved / sub-delims` (RFC 3986 §2.2-2.3): a reg-name's bytes
/// besides percent escapes.
static REG_NAME: [bool; 256] = byte_class(b"-._~!$&'()*+,;=");

/// `tchar` from RFC 9110 §5.6.2.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Iterates over the non-empty, OWS-trimmed elements of a comma-separated
/// field value (RFC 9110 §5.6.1: empty list elements are ignored).
fn list_elements(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Percent-decodes `input` (RFC 3986 §2.1) by appending to `out`.
///
/// `+` is not special (this is for paths, not form data). A `%` not followed
/// by two hex digits is an error, and so is `%00` (a NUL can never be part of
/// a file name and is a common truncation trick). The output is bytes; check
/// it with `std::str::from_utf8` if text is required.
pub fn percent_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HttpError> {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            let hi = input.get(i + 1).copied().and_then(hex_val);
            let lo = input.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(0), Some(0)) => return Err(E_PERCENT_NUL),
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(E_PERCENT),
            }
            i += 3;
        } else {
            if b == 0 {
                return Err(E_PERCENT_NUL);
            }
            out.push(b);
            i += 1;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Public types.

/// Request method, recognised for fast dispatch. Methods are case-sensitive
/// (RFC 9110 §9.1): `get` is [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// `GET`: fetch a resource. The default.
    #[default]
    Get,
    /// `HEAD`: like GET, but the response carries no body. A
    /// [`Router`](crate::http::Router) serves it with the GET route.
    Head,
    /// `POST`: submit the request body for processing.
    Post,
    /// `PUT`: replace the target resource with the request body.
    Put,
    /// `DELETE`: remove the target resource.
    Delete,
    /// `CONNECT`: open a tunnel; the target is in authority form
    /// (`host:port`, see [`TargetForm::Authority`]).
    Connect,
    /// `OPTIONS`: ask for communication options; the target may be `*`.
    Options,
    /// `TRACE`: echo the request back (RFC 9110 §9.3.8).
    Trace,
    /// `PATCH`: apply a partial modification (RFC 5789).
    Patch,
    /// Any other syntactically valid method token; see [`RequestHead::method`].
    Other,
}

impl Method {
    /// Classifies a method token.
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// The form of the request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetForm {
    /// `/path?query`
    #[default]
    Origin,
    /// `http://authority/path?query`
    Absolute,
    /// `host:port`, CONNECT only.
    Authority,
    /// `*`, OPTIONS only.
    Asterisk,
}

/// Byte range into one of [`RequestHead`]'s buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Heads are bounded by `max_head_bytes`; anything near 4 GiB would be
        // a configuration error, so saturate rather than wrap.
        let c = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Span {
            start: c(start),
            end: c(end),
        }
    }
    fn of<'a>(&self, b: &'a [u8]) -> &'a [u8] {
        &b[self.start as usize..self.end as usize]
    }
    fn str<'a>(&self, s: &'a str) -> &'a str {
        &s[self.start as usize..self.end as usize]
    }
    fn shift(self, by: usize) -> Span {
        Span::new(self.start as usize + by, self.end as usize + by)
    }
    fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A parsed and validated request head that owns its bytes.
///
/// Designed for reuse: keep one per connection and refill it with
/// [`HeadParser::parse`] / [`parse_head_into`]; after the first few requests
/// its buffers have grown to fit and parsing allocates nothing.
///
/// Internally it stores one copy of the head bytes plus index ranges for the
/// method, target, path, query and every field line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// Copy of the head bytes as received (except that an `HTTP/1.x`, x >= 2,
    /// version is rewritten to `HTTP/1.1`).
    raw: Vec<u8>,
    /// `method SP target`, kept as text so accessors need no re-validation.
    line: String,
    method: Span,
    target: Span,
    path: Span,
    query: Option<Span>,
    authority: Option<Span>,
    form: TargetForm,
    method_kind: Method,
    version: u8,
    /// (name, value) ranges into `raw`, in order of appearance.
    fields: Vec<(Span, Span)>,
    host: Option<Span>,
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl RequestHead {
    /// An empty head, ready to be filled by the parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// The method token, e.g. `"GET"`.
    pub fn method(&self) -> &str {
        self.method.str(&self.line)
    }

    /// The method, classified.
    pub fn method_kind(&self) -> Method {
        self.method_kind
    }

    /// Whether this is a HEAD request (the response carries no body).
    pub fn is_head(&self) -> bool {
        self.method_kind == Method::Head
    }

    /// The raw request target, exactly as sent.
    pub fn target(&self) -> &str {
        self.target.str(&self.line)
    }

    /// The form of the request target.
    pub fn target_form(&self) -> TargetForm {
        self.form
    }

    /// The raw (still percent-encoded) path: the target up to `?` for
    /// origin-form, the path component for absolute-form (`/` if empty),
    /// `*` for asterisk-form and `""` for authority-form. Use
    /// [`RequestHead::decoded_path`] or [`percent_decode`] to decode it.
    pub fn path(&self) -> &str {
        if self.path.is_empty() && self.form == TargetForm::Absolute {
            "/"
        } else {
            self.path.str(&self.line)
        }
    }

    /// The raw query string after `?`, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.map(|q| q.str(&self.line))
    }

    /// Appends the percent-decoded path to `out` (see [`percent_decode`]).
    pub fn decoded_path(&self, out: &mut Vec<u8>) -> Result<(), HttpError> {
        percent_decode(self.path().as_bytes(), out)
    }

    /// Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1 (and for 1.x,
    /// x >= 2, which is processed as 1.1).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The first field with this name (case-insensitive), value trimmed of
    /// surrounding whitespace.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_all(name).next()
    }

    /// Like [`RequestHead::header`], if the value is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of the fields with this name (case-insensitive), in order.
    pub fn header_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        let name = name.as_bytes();
        self.fields
            .iter()
            .filter(move |(n, _)| n.of(&self.raw).eq_ignore_ascii_case(name))
            .map(move |(_, v)| v.of(&self.raw))
    }

    /// All fields in order of appearance, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.fields.iter().map(move |(n, v)| {
            // Names were validated as tokens (ASCII) by the parser.
            let name = std::str::from_utf8(n.of(&self.raw)).unwrap_or("");
            (name, v.of(&self.raw))
        })
    }

    /// Number of field lines.
    pub fn header_count(&self) -> usize {
        self.fields.len()
    }

    /// The authority the request is for: the target's authority for
    /// absolute-form and authority-form (RFC 9112 §3.2.2: the `Host` field is
    /// then ignored), otherwise the `Host` field value (possibly empty; absent
    /// only in HTTP/1.0 requests without `Host`).
    pub fn host(&self) -> Option<&[u8]> {
        match self.authority {
            Some(a) => Some(a.of(self.line.as_bytes())),
            None => self.host.map(|h| h.of(&self.raw)),
        }
    }

    /// The validated `Content-Length`, if the request has one.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Whether the body uses the chunked transfer coding.
    pub fn is_chunked(&self) -> bool {
        self.chunked
    }

    /// Whether the connection may persist after this exchange as far as the
    /// request is concerned: HTTP/1.1 unless `Connection` lists `close`;
    /// HTTP/1.0 only if `Connection` lists `keep-alive` (and not `close`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether an HTTP/1.1 client sent `Expect: 100-continue` and waits for a
    /// `100 Continue` before sending its body. The glue should send one (see
    /// `encode::write_continue`) only if it intends to read the body and none
    /// of it has arrived yet, or else answer with a final status directly.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue
    }

    /// Length of the raw head in bytes, including any leading empty lines
    /// and the terminating empty line.
    pub fn head_len(&self) -> usize {
        self.raw.len()
    }

    fn clear(&mut self) {
        self.raw.clear();
        self.line.clear();
        self.fields.clear();
        self.method = Span::default();
        self.target = Span::default();
        self.path = Span::default();
        self.query = None;
        self.authority = None;
        self.form = TargetForm::Origin;
        self.method_kind = Method::Get;
        self.version = 1;
        self.host = None;
        self.content_length = None;
        self.chunked = false;
        self.keep_alive = false;
        self.expect_continue = false;
    }
}

// ---------------------------------------------------------------------------
// The resumable scanner.

/// Resumable request-head parser.
///
/// Keep one per connection. Call [`HeadParser::parse`] with the connection's
/// read buffer (which must start at the first byte of the request) every time
/// more bytes arrive; the parser remembers how far it scanned, so the buffer
/// may only grow between calls (appending is fine; compacting it so that it
/// still starts at the request is fine too). When it returns `Ok(Some(n))` the
/// head occupies `buf[..n]`, `head` is filled, and the parser has reset itself
/// for the next request: drain `n` bytes (what follows is body or the next
/// pipelined request). After `Err`, or when abandoning a partial head, call
/// [`HeadParser::reset`] before reusing it.
#[derive(Debug, Clone, Default)]
pub struct HeadParser {
    /// Where scanning resumes.
    pos: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// Start of the request line (after any leading empty lines).
    req_start: Option<usize>,
    /// `(start, end)` of the request line, excluding its CRLF.
    req_line: Option<(usize, usize)>,
    /// Complete field lines seen so far.
    fields: usize,
}

impl HeadParser {
    /// A parser positioned at the start of a request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any partially scanned head.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Parses as much of the head in `buf` as has arrived.
    ///
    /// Returns `Ok(None)` if the head is incomplete (and no limit is already
    /// breached), `Ok(Some(head_len))` once complete and valid, and `Err` for
    /// any violation (always with `close == true`).
    pub fn parse(
        &mut self,
        buf: &[u8],
        head: &mut RequestHead,
        limits: &Limits,
    ) -> Result<Option<usize>, HttpError> {
        if self.pos == 0 && self.req_start.is_none() {
            if let Some(done) = Self::parse_whole(buf, head, limits) {
                return done;
            }
        }
        match self.scan(buf, limits)? {
            None => Ok(None),
            Some((len, req_line)) => {
                self.reset();
                fill(head, &buf[..len], req_line, limits, true)?;
                Ok(Some(len))
            }
        }
    }

    /// The common case, a whole head at the start of `buf` on the first
    /// call: one httparse pass, then the checks httparse does not make (no
    /// bare LF, the request-line limit). `None` leaves the request to the
    /// scanner, which also words any error precisely.
    fn parse_whole(
        buf: &[u8],
        head: &mut RequestHead,
        limits: &Limits,
    ) -> Option<Result<Option<usize>, HttpError>> {
        let avail = &buf[..buf.len().min(limits.max_head_bytes)];
        if !is_tchar(*avail.first()?) {
            return None;
        }
        let cap = avail.len().min(limits.max_request_line.saturating_add(2));
        let lf = find_lf(avail, 0, cap)?;
        if lf < 2 || avail[lf - 1] != b'\r' {
            return None;
        }
        let len = fill(head, avail, (0, lf - 1), limits, false).ok()?;
        // Every LF after the request line ends a CRLF (the head's own last
        // byte is one).
        (!has_bare_lf(&avail[lf + 1..len], b'\n')).then_some(Ok(Some(len)))
    }

    /// Called when the scanner needs more bytes than `buf` holds.
    fn need_more(&self, buf: &[u8], limits: &Limits) -> Result<Option<Scanned>, HttpError> {
        if buf.len() >= limits.max_head_bytes {
            Err(E_HEAD_TOO_LARGE)
        } else {
            Ok(None)
        }
    }

    /// Finds the end of the head, enforcing the early limits.
    fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<Scanned>, HttpError> {
        let avail = buf.len().min(limits.max_head_bytes);

        // Leading empty lines.
        if self.req_start.is_none() {
            let mut i = self.pos;
            loop {
                if i >= avail {
                    self.pos = i;
                    return self.need_more(buf, limits);
                }
                match buf[i] {
                    b'\r' => {
                        if i + 1 >= avail {
                            self.pos = i;
                            return self.need_more(buf, limits);
                        }
                        if buf[i + 1] != b'\n' {
                            return Err(E_BARE_CR);
                        }
                        i += 2;
                    }
                    b'\n' => return Err(E_BARE_LF),
                    _ => {
                        self.req_start = Some(i);
                        self.line_start = i;
                        self.pos = i;
                        break;
                    }
                }
            }
        }

        // Request line.
        if self.req_line.is_none() {
            let start = self.line_start;
            // The line plus its CRLF may take at most max_request_line + 2.
            let cap = start
                .saturating_add(limits.max_request_line)
                .saturating_add(2)
                .min(avail);
            match find_lf(buf, self.pos, cap) {
                Some(p) => {
                    if p == start || buf[p - 1] != b'\r' {
                        return Err(E_BARE_LF);
                    }
                    let end = p - 1;
                    if end - start > limits.max_request_line {
                        return Err(line_too_long(&buf[start..end]));
                    }
                    self.req_line = Some((start, end));
                    self.line_start = p + 1;
                    self.pos = p + 1;
                }
                None => {
                    self.pos = cap;
                    let seen = cap - start;
                    if seen >= limits.max_request_line.saturating_add(2)
                        || buf.len() >= limits.max_head_bytes
                    {
                        return Err(line_too_long(&buf[start..cap]));
                    }
                    return Ok(None);
                }
            }
        }
        let req_line = self.req_line.unwrap_or_default();

        // Field lines, up to the empty line.
        loop {
            let ls = self.line_start;
            if ls >= avail {
                self.pos = ls;
                return self.need_more(buf, limits);
            }
            match buf[ls] {
                b'\r' => {
                    if ls + 1 >= avail {
                        self.pos = ls;
                        return self.need_more(buf, limits);
                    }
                    if buf[ls + 1] == b'\n' {
                        return Ok(Some((ls + 2, req_line)));
                    }
                    return Err(E_BARE_CR);
                }
                b'\n' => return Err(E_BARE_LF),
                b' ' | b'\t' => return Err(E_OBS_FOLD),
                _ => {}
            }
            let from = self.pos.max(ls + 1);
            match find_lf(buf, from, avail) {
                Some(p) => {
                    if buf[p - 1] != b'\r' {
                        return Err(E_BARE_LF);
                    }
                    self.fields += 1;
                    if self.fields > limits.header_slots() {
                        return Err(E_TOO_MANY_FIELDS);
                    }
                    self.line_start = p + 1;
                    self.pos = p + 1;
                }
                None => {
                    self.pos = avail;
                    return self.need_more(buf, limits);
                }
            }
        }
    }
}

/// A complete head found by the scanner: its length and the request line's
/// `(start, end)` (excluding CRLF).
type Scanned = (usize, (usize, usize));

fn line_too_long(line: &[u8]) -> HttpError {
    if line.contains(&b' ') {
        E_TARGET_TOO_LONG
    } else {
        E_METHOD_TOO_LONG
    }
}

/// Parses a complete head from the start of `buf` into a fresh
/// [`RequestHead`]. Returns `Ok(None)` while incomplete. Convenient but
/// allocating; connections should prefer [`HeadParser`] with a reused head.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let mut head = RequestHead::new();
    Ok(parse_head_into(&mut head, buf, limits)?.map(|n| (head, n)))
}

/// Parses a head from the start of `buf` into a reused `head` without keeping
/// scan state between calls (each call rescans `buf`; see [`HeadParser`] for
/// the resumable form). Returns the head length once complete.
pub fn parse_head_into(
    head: &mut RequestHead,
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<usize>, HttpError> {
    HeadParser::new().parse(buf, head, limits)
}

// ---------------------------------------------------------------------------
// Full parse of a complete head.

/// Validates `HTTP/` DIGIT `.` DIGIT; returns the minor version to record and
/// whether the minor digit must be rewritten to `1` for httparse.
fn check_version(v: &[u8]) -> Result<(u8, bool), HttpError> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' {
                Err(E_VERSION)
            } else if *minor >= b'2' {
                Ok((1, true))
            } else {
                Ok((minor - b'0', false))
            }
        }
        _ => Err(E_REQUEST_LINE),
    }
}

/// Framing-related facts gathered from the fields.
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    te_present: bool,
    codings: usize,
    chunked_seen: bool,
    chunked_twice: bool,
    last_is_chunked: bool,
    unknown_coding: bool,
    te_malformed: bool,
}

/// Fills `head` from the head at the start of `buf` (whose request line is
/// `buf[req_line.0..req_line.1]`) and returns the head's length. With
/// `exact`, the head must be all of `buf` (the scanner found its end);
/// otherwise it is wherever httparse says, and bytes may follow.
fn fill(
    head: &mut RequestHead,
    buf: &[u8],
    req_line: (usize, usize),
    limits: &Limits,
    exact: bool,
) -> Result<usize, HttpError> {
    head.clear();

    // Version first: it decides how everything else is read.
    let (ls, le) = req_line;
    let line = &buf[ls..le];
    let (minor, patch_at) = if line.ends_with(b" HTTP/1.1") {
        (1, None)
    } else if line.ends_with(b" HTTP/1.0") {
        (0, None)
    } else {
        let sp = line
            .iter()
            .rposition(|&b| b == b' ')
            .ok_or(E_REQUEST_LINE)?;
        let (minor, patch) = check_version(&line[sp + 1..])?;
        (minor, patch.then_some(ls + sp + 1 + 7))
    };
    head.version = minor;
    // An `HTTP/1.x` (x >= 2) request is parsed as `HTTP/1.1` (rare: a copy).
    let patched: Vec<u8>;
    let src: &[u8] = match patch_at {
        Some(i) => {
            let mut v = buf.to_vec();
            v[i] = b'1';
            patched = v;
            &patched
        }
        None => buf,
    };
    let base = src.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - base;

    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    let n = limits.header_slots();
    let len = match req.parse_with_uninit_headers(src, &mut slots[..n]) {
        Ok(httparse::Status::Complete(len)) if len == src.len() || !exact => len,
        Ok(_) => return Err(E_REQUEST_LINE),
        Err(e) => {
            return Err(match e {
                httparse::Error::HeaderName => E_FIELD_NAME,
                httparse::Error::HeaderValue => E_FIELD_VALUE,
                httparse::Error::TooManyHeaders => E_TOO_MANY_FIELDS,
                httparse::Error::NewLine => E_BARE_CR,
                _ => E_REQUEST_LINE,
            })
        }
    };
    // Copied after parsing: reading freshly written bytes back would
    // stall on store forwarding.
    head.raw.extend_from_slice(&src[..len]);
    let RequestHead {
        ref mut line,
        ref mut fields,
        ..
    } = *head;
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let method_kind = Method::from_bytes(method.as_bytes());

    line.push_str(method);
    line.push(' ');
    line.push_str(target);
    let t0 = method.len() + 1;
    let t = classify_target(method_kind, target.as_bytes())?;

    // Fields.
    let mut host: Option<Span> = None;
    let mut framing = Framing::default();
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut expect_other = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        // httparse trims trailing whitespace; leading is skipped too.
        let value = trim_ows(value);
        let vspan = Span::new(offset(value), offset(value) + value.len());
        fields.push((Span::new(offset(name), offset(name) + name.len()), vspan));
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if host.is_some() {
                    return Err(E_DUP_HOST);
                }
                if !valid_authority(value, false) {
                    return Err(E_BAD_HOST);
                }
                host = Some(vspan);
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                content_length(value, &mut framing.content_length)?;
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                transfer_coding(value, &mut framing);
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for tok in list_elements(value) {
                    if tok.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep_alive = true;
                    }
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                for tok in list_elements(value) {
                    if tok.eq_ignore_ascii_case(b"100-continue") {
                        expect_continue = true;
                    } else {
                        expect_other = true;
                    }
                }
            }
            _ => {}
        }
    }

    if minor == 1 && host.is_none() {
        return Err(E_MISSING_HOST);
    }

    // Message framing (RFC 9112 §6.1-§6.3).
    let mut chunked = false;
    if framing.te_present {
        if framing.content_length.is_some() {
            return Err(E_CL_TE);
        }
        if minor == 0 {
            return Err(E_TE_HTTP10);
        }
        if framing.te_malformed || framing.codings == 0 {
            return Err(E_BAD_TE);
        }
        if !framing.last_is_chunked || framing.chunked_twice {
            return Err(E_CHUNKED_NOT_LAST);
        }
        if framing.unknown_coding {
            return Err(E_UNKNOWN_TE);
        }
        chunked = true;
    }

    if minor == 1 && expect_other {
        return Err(E_EXPECT);
    }

    let keep_alive = !conn_close && (minor == 1 || conn_keep_alive);

    head.method = Span::new(0, method.len());
    head.target = Span::new(t0, t0 + target.len());
    head.path = t.path.shift(t0);
    head.query = t.query.map(|q| q.shift(t0));
    head.authority = t.authority.map(|a| a.shift(t0));
    head.form = t.form;
    head.method_kind = method_kind;
    head.host = host;
    head.content_length = framing.content_length;
    head.chunked = chunked;
    head.keep_alive = keep_alive;
    head.expect_continue = minor == 1 && expect_continue;
    Ok(len)
}

/// Parses one `Content-Length` field value into `acc`, rejecting anything
/// but identical decimal numbers.
fn content_length(v: &[u8], acc: &mut Option<u64>) -> Result<(), HttpError> {
    for elem in v.split(|&b| b == b',') {
        let e = trim_ows(elem);
        if e.is_empty() {
            return Err(E_BAD_CL);
        }
        let mut n: u64 = 0;
        for &b in e {
            if !b.is_ascii_digit() {
                return Err(E_BAD_CL);
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or(E_BAD_CL)?;
        }
        match acc {
            Some(prev) if *prev != n => return Err(E_CONFLICTING_CL),
            _ => *acc = Some(n),
        }
    }
    Ok(())
}

/// Accumulates the transfer codings of one `Transfer-Encoding` field.
fn transfer_coding(v: &[u8], f: &mut Framing) {
    f.te_present = true;
    for elem in list_elements(v) {
        let name = trim_ows(elem.split(|&b| b == b';').next().unwrap_or(b""));
        if !is_token(name) {
            f.te_malformed = true;
            continue;
        }
        f.codings += 1;
        if name.eq_ignore_ascii_case(b"chunked") {
            if f.chunked_seen {
                f.chunked_twice = true;
            }
            f.chunked_seen = true;
            f.last_is_chunked = true;
        } else {
            f.unknown_coding = true;
            f.last_is_chunked = false;
        }
    }
}

/// Target components relative to the start of the target.
struct Target {
    form: TargetForm,
    path: Span,
    query: Option<Span>,
    authority: Option<Span>,
}

fn classify_target(method: Method, t: &[u8]) -> Result<Target, HttpError> {
    // No fragment, and well-formed percent escapes, in every form.
    // (A fold rather than `any`: no early exit, so it vectorises.)
    let mut i = if t
        .iter()
        .fold(false, |seen, &b| seen | (b == b'#') | (b == b'%'))
    {
        0
    } else {
        t.len()
    };
    while i < t.len() {
        match t[i] {
            b'#' => return Err(E_TARGET),
            b'%' => {
                let ok = t.get(i + 1).copied().and_then(hex_val).is_some()
                    && t.get(i + 2).copied().and_then(hex_val).is_some();
                if !ok {
                    return Err(E_TARGET);
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }

    let split_query = |from: usize| -> (Span, Option<Span>) {
        match t[from..].iter().position(|&b| b == b'?') {
            Some(q) => (
                Span::new(from, from + q),
                Some(Span::new(from + q + 1, t.len())),
            ),
            None => (Span::new(from, t.len()), None),
        }
    };

    if method == Method::Connect {
        if !valid_authority(t, true) {
            return Err(E_TARGET);
        }
        return Ok(Target {
            form: TargetForm::Authority,
            path: Span::new(0, 0),
            query: None,
            authority: Some(Span::new(0, t.len())),
        });
    }
    if t.first() == Some(&b'/') {
        let (path, query) = split_query(0);
        return Ok(Target {
            form: TargetForm::Origin,
            path,
            query,
            authority: None,
        });
    }
    if t == b"*" {
        if method != Method::Options {
            return Err(E_TARGET);
        }
        return Ok(Target {
            form: TargetForm::Asterisk,
            path: Span::new(0, 1),
            query: None,
            authority: None,
        });
    }
    // absolute-form: only http and https are meaningful to this server.
    let scheme_len = if t.len() >= 7 && t[..7].eq_ignore_ascii_case(b"http://") {
        4
    } else if t.len() >= 8 && t[..8].eq_ignore_ascii_case(b"https://") {
        5
    } else {
        return Err(E_TARGET);
    };
    let a0 = scheme_len + 3;
    let a1 = t[a0..]
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .map_or(t.len(), |p| p + a0);
    let authority = &t[a0..a1];
    if authority.is_empty() || !valid_authority(authority, false) {
        return Err(E_TARGET);
    }
    let (path, query) = split_query(a1);
    Ok(Target {
        form: TargetForm::Absolute,
        path,
        query,
        authority: Some(Span::new(a0, a1)),
    })
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2). An empty value
/// is valid for `Host` (RFC 9112 §3.2); `require_port` demands authority-form
/// (`host:port`, CONNECT). No userinfo is allowed.
fn valid_authority(v: &[u8], require_port: bool) -> bool {
    if v.is_empty() {
        return !require_port;
    }
    let (host_ok, rest) = if v[0] == b'[' {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        (valid_ip_literal(&v[1..close]), &v[close + 1..])
    } else {
        // ':' is not a reg-name byte, so the host ends at the first byte
        // outside the class (or at a percent escape, checked the slow way).
        let end = v
            .iter()
            .position(|&b| !REG_NAME[b as usize])
            .unwrap_or(v.len());
        if v.get(end) == Some(&b'%') {
            let end = v.iter().position(|&b| b == b':').unwrap_or(v.len());
            (valid_reg_name(&v[..end]), &v[end..])
        } else {
            (end > 0, &v[end..])
        }
    };
    if !host_ok {
        return false;
    }
    match rest {
        [] => !require_port,
        [b':', port @ ..] => {
            port.iter().all(u8::is_ascii_digit) && !(require_port && port.is_empty())
        }
        _ => false,
    }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (covers IPv4).
fn valid_reg_name(h: &[u8]) -> bool {
    let mut i = 0;
    while i < h.len() {
        let b = h[i];
        if b == b'%' {
            if h.get(i + 1).copied().and_then(hex_val).is_none()
                || h.get(i + 2).copied().and_then(hex_val).is_none()
            {
                return false;
            }
            i += 3;
        } else if REG_NAME[b as usize] {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// The inside of `[...]`: an IPv6 address or `IPvFuture`.
fn valid_ip_literal(inner: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inner {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (ver, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !ver.is_empty()
            && ver.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail.iter().all(|&b| REG_NAME[b as usize] || b == b':');
    }
    std::str::from_utf8(inner)
        .ok()
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proto::body::BodyKind;

    fn small() -> Limits {
        Limits {
            max_request_line: 32,
            max_headers: 4,
            max_head_bytes: 128,
            ..Limits::default()
        }
    }

    /// Parses `bytes` whole, and checks that every prefix gives either
    /// `Ok(None)` or the same result (a head split at any byte parses
    /// identically), both statelessly and with a resumable parser fed the
    /// growing prefixes.
    fn check(bytes: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, HttpError> {
        let full = parse_head(bytes, limits);
        let mut parser = HeadParser::new();
        let mut head = RequestHead::new();
        let mut resumable_done = false;
        for end in 0..=bytes.len() {
            let r = parse_head(&bytes[..end], limits);
            if r != Ok(None) {
                assert_eq!(r, full, "stateless prefix of {end} bytes");
            }
            if !resumable_done {
                match parser.parse(&bytes[..end], &mut head, limits) {
                    Ok(None) => {}
                    Ok(Some(n)) => {
                        assert_eq!(Ok(Some((head.clone(), n))), full, "resumable at {end}");
                        resumable_done = true;
                    }
                    Err(e) => {
                        assert_eq!(Err(e), full, "resumable at {end}");
                        resumable_done = true;
                    }
                }
            }
        }
        assert!(resumable_done || full == Ok(None));
        full
    }

    fn ok(r: Result<Option<(RequestHead, usize)>, HttpError>) -> (RequestHead, usize) {
        match r {
            Ok(Some(x)) => x,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    /// A valid head of exactly `len` bytes (padded with an `X` field).
    fn padded_head(len: usize) -> Vec<u8> {
        let mut v = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
        v.resize(len - 4, b'x');
        v.extend_from_slice(b"\r\n\r\n");
        v
    }

    /// `req!{name, bytes, |result| assertions}` runs [`check`] with the
    /// default limits (or `limits: expr` before the bytes).
    macro_rules! req {
        ($name:ident, limits: $limits:expr, $bytes:expr, |$r:ident| $body:expr) => {
            #[test]
            fn $name() {
                let $r = check($bytes, &$limits);
                $body;
            }
        };
        ($name:ident, $bytes:expr, |$r:ident| $body:expr) => {
            req!($name, limits: Limits::default(), $bytes, |$r| $body);
        };
    }

    /// `rej!{name, bytes, status}`: the request is rejected with `status`
    /// and the connection must close.
    macro_rules! rej {
        ($name:ident, limits: $limits:expr, $bytes:expr, $status:expr) => {
            req!($name, limits: $limits, $bytes, |r| {
                let e = r.expect_err("request must be rejected");
                assert_eq!(e.status, $status, "{e:?}");
                assert!(e.close);
            });
        };
        ($name:ident, $bytes:expr, $status:expr) => {
            rej!($name, limits: Limits::default(), $bytes, $status);
        };
    }

    // --- valid requests -------------------------------------------------

    req!(
        parses_simple_get,
        b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
        |r| {
            let (h, n) = ok(r);
            assert_eq!(n, 47);
            assert_eq!(h.head_len(), 47);
            assert_eq!(h.method(), "GET");
            assert_eq!(h.method_kind(), Method::Get);
            assert_eq!(h.target(), "/index.html");
            assert_eq!(h.target_form(), TargetForm::Origin);
            assert_eq!(h.path(), "/index.html");
            assert_eq!(h.query(), None);
            assert_eq!(h.version(), 1);
            assert_eq!(h.host(), Some(&b"example.com"[..]));
            assert!(h.keep_alive());
            assert!(!h.expects_continue());
            assert_eq!(h.content_length(), None);
            assert!(!h.is_chunked());
            assert_eq!(h.body_kind(&Limits::default()), Ok(BodyKind::None));
        }
    );

    req!(
        incomplete_head_is_none,
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        |r| {
            assert_eq!(r, Ok(None));
        }
    );

    req!(
        parses_path_and_query,
        b"GET /a/b%20c?x=1&y=%2F HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.path(), "/a/b%20c");
            assert_eq!(h.query(), Some("x=1&y=%2F"));
            let mut d = Vec::new();
            h.decoded_path(&mut d).unwrap();
            assert_eq!(d, b"/a/b c");
        }
    );

    req!(
        parses_headers_case_insensitively,
        b"POST /p HTTP/1.1\r\nHOST: h\r\nX-Multi: 1\r\ncontent-length:   12  \r\nx-multi: 2\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.method_kind(), Method::Post);
            assert_eq!(h.header("Content-Length"), Some(&b"12"[..]));
            assert_eq!(h.header_str("host"), Some("h"));
            assert_eq!(h.header_all("X-MULTI").collect::<Vec<_>>(), vec![&b"1"[..], &b"2"[..]]);
            assert_eq!(h.header("missing"), None);
            assert_eq!(h.header_count(), 4);
            let names: Vec<&str> = h.headers().map(|(n, _)| n).collect();
            assert_eq!(names, ["HOST", "X-Multi", "content-length", "x-multi"]);
            assert_eq!(h.content_length(), Some(12));
            assert_eq!(h.body_kind(&Limits::default()), Ok(BodyKind::Length(12)));
        }
    );

    req!(
        accepts_obs_text_in_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9 \xff\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.header("x"), Some(&b"caf\xc3\xa9 \xff"[..]));
        }
    );

    req!(
        accepts_empty_header_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nY:  \r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.header("x-empty"), Some(&b""[..]));
            assert_eq!(h.header("y"), Some(&b""[..]));
        }
    );

    req!(
        skips_leading_empty_lines,
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\nNEXT",
        |r| {
            let (h, n) = ok(r);
            assert_eq!(n, 4 + 16 + 9 + 2);
            assert_eq!(h.method(), "GET");
        }
    );

    req!(parses_http10_without_host, b"GET / HTTP/1.0\r\n\r\n", |r| {
        let (h, _) = ok(r);
        assert_eq!(h.version(), 0);
        assert_eq!(h.host(), None);
        assert!(!h.keep_alive());
    });

    req!(
        accepts_higher_minor_version_as_1_1,
        b"GET / HTTP/1.7\r\nHost: h\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.version(), 1);
            assert!(h.keep_alive());
        }
    );

    req!(
        accepts_empty_host,
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        |r| {
            assert_eq!(ok(r).0.host(), Some(&b""[..]));
        }
    );

    req!(
        accepts_ipv6_host_with_port,
        b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n",
        |r| {
            assert_eq!(ok(r).0.host(), Some(&b"[2001:db8::1]:8080"[..]));
        }
    );

    req!(
        parses_absolute_form,
        b"GET http://Example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.target_form(), TargetForm::Absolute);
            assert_eq!(h.path(), "/p/q");
            assert_eq!(h.query(), Some("x=1"));
            assert_eq!(h.host(), Some(&b"Example.com:8080"[..]));
        }
    );

    req!(
        absolute_form_empty_path_is_slash,
        b"GET https://h?q HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.path(), "/");
            assert_eq!(h.query(), Some("q"));
        }
    );

    req!(
        parses_asterisk_form_for_options,
        b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.target_form(), TargetForm::Asterisk);
            assert_eq!(h.method_kind(), Method::Options);
            assert_eq!(h.path(), "*");
        }
    );

    req!(
        parses_authority_form_for_connect,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.target_form(), TargetForm::Authority);
            assert_eq!(h.path(), "");
            assert_eq!(h.host(), Some(&b"example.com:443"[..]));
        }
    );

    req!(
        accepts_extension_method,
        b"PROPFIND /x HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert_eq!(h.method(), "PROPFIND");
            assert_eq!(h.method_kind(), Method::Other);
        }
    );

    req!(
        accepts_identical_content_length_list,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n",
        |r| assert_eq!(ok(r).0.content_length(), Some(5))
    );

    req!(
        parses_chunked_transfer_encoding,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
        |r| {
            let (h, _) = ok(r);
            assert!(h.is_chunked());
            assert_eq!(h.body_kind(&Limits::default()), Ok(BodyKind::Chunked));
        }
    );

    req!(
        accepts_empty_list_elements_in_transfer_encoding,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked, \r\n\r\n",
        |r| assert!(ok(r).0.is_chunked())
    );

    req!(
        detects_expect_100_continue,
        b"PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
        |r| assert!(ok(r).0.expects_continue())
    );

    req!(
        ignores_expect_in_http10,
        b"PUT /u HTTP/1.0\r\nExpect: something-else\r\nContent-Length: 3\r\n\r\n",
        |r| assert!(!ok(r).0.expects_continue())
    );

    req!(head_exactly_at_size_limit_is_accepted, limits: small(), &padded_head(128), |r| {
        assert_eq!(ok(r).1, 128)
    });

    req!(request_line_exactly_at_limit_is_accepted, limits: small(),
        b"GET /012345678901234567 HTTP/1.1\r\nHost: h\r\n\r\n",
        |r| assert_eq!(ok(r).0.target().len() + 13, 32)
    );

    req!(accepts_head_followed_by_more_than_limit_bytes, limits: small(),
        &[&b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 300\r\n\r\n"[..], &[b'x'; 300]].concat(),
        |r| assert_eq!(ok(r).1, 49)
    );

    req!(max_headers_exactly_is_accepted, limits: small(),
        b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        |r| assert_eq!(ok(r).0.header_count(), 4)
    );

    // --- request line -----------------------------------------------------

    rej!(rejects_missing_version, b"GET /\r\nHost: h\r\n\r\n", 400);
    rej!(
        rejects_missing_target,
        b"GET HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_double_space_in_request_line,
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_trailing_space_in_request_line,
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_invalid_method_token,
        b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_lowercase_http_name,
        b"GET / http/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_multi_digit_version,
        b"GET / HTTP/1.10\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_control_char_in_target,
        b"GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_non_utf8_target,
        b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_fragment_in_target,
        b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_bad_percent_encoding_in_target,
        b"GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_truncated_percent_encoding_in_target,
        b"GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_relative_target,
        b"GET index.html HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_asterisk_for_non_options,
        b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_authority_form_for_non_connect,
        b"GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_origin_form_for_connect,
        b"CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_connect_without_port,
        b"CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_non_http_scheme,
        b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_absolute_form_with_userinfo,
        b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_absolute_form_with_empty_host,
        b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );

    rej!(
        rejects_http2_version_with_505,
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        505
    );
    rej!(
        rejects_http09_version_with_505,
        b"GET / HTTP/0.9\r\n\r\n",
        505
    );
    rej!(
        rejects_http3_version_with_505,
        b"GET / HTTP/3.0\r\nHost: h\r\n\r\n",
        505
    );

    rej!(target_too_long_is_414, limits: small(),
        b"GET /01234567890123456789 HTTP/1.1\r\nHost: h\r\n\r\n", 414);
    rej!(target_too_long_is_414_before_line_complete, limits: small(),
        b"GET /0123456789012345678901234567890123", 414);
    rej!(method_too_long_is_400, limits: small(),
        b"GETGETGETGETGETGETGETGETGETGETGETGETGET", 400);

    #[test]
    fn target_too_long_is_414_before_line_complete_with_default_limits() {
        let mut req = b"GET /".to_vec();
        req.resize(8 * 1024 + 3, b'a');
        let limits = Limits::default();
        // One byte short of proving the line too long: keep waiting.
        assert_eq!(parse_head(&req[..8 * 1024 + 1], &limits), Ok(None));
        let e = parse_head(&req, &limits).unwrap_err();
        assert_eq!((e.status, e.close), (414, true));
        // Resumable parser, fed in pieces, agrees.
        let mut p = HeadParser::new();
        let mut h = RequestHead::new();
        for end in (0..req.len()).step_by(100) {
            assert_eq!(p.parse(&req[..end], &mut h, &limits), Ok(None));
        }
        assert_eq!(p.parse(&req, &mut h, &limits).unwrap_err().status, 414);
    }

    // --- line endings and field syntax ----------------------------------

    rej!(
        rejects_bare_lf_line_ending,
        b"GET / HTTP/1.1\nHost: h\n\n",
        400
    );
    rej!(
        rejects_bare_lf_after_header,
        b"GET / HTTP/1.1\r\nHost: h\n\r\n",
        400
    );
    rej!(
        rejects_bare_lf_leading_line,
        b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        400
    );
    rej!(
        rejects_lf_in_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n",
        400
    );
    rej!(
        rejects_cr_in_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        400
    );
    rej!(
        rejects_nul_in_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
        400
    );
    rej!(
        rejects_control_char_in_value,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x1bb\r\n\r\n",
        400
    );
    rej!(
        rejects_bare_cr_as_head_end,
        b"GET / HTTP/1.1\r\nHost: h\r\n\rX",
        400
    );
    rej!(
        rejects_obs_fold,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        400
    );
    rej!(
        rejects_obs_fold_with_tab,
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n",
        400
    );
    rej!(
        rejects_space_before_first_header,
        b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
        400
    );
    rej!(
        rejects_whitespace_between_field_name_and_colon,
        b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        400
    );
    rej!(
        rejects_tab_between_field_name_and_colon,
        b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n",
        400
    );
    rej!(
        rejects_empty_field_name,
        b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",
        400
    );
    rej!(
        rejects_field_without_colon,
        b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
        400
    );
    rej!(
        rejects_invalid_char_in_field_name,
        b"GET / HTTP/1.1\r\nHost: h\r\nX(y): v\r\n\r\n",
        400
    );

    // --- limits ------------------------------------------------------------

    rej!(too_many_headers_is_431, limits: small(),
        b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431);
    rej!(too_many_headers_is_431_before_head_complete, limits: small(),
        b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n", 431);
    rej!(head_too_large_is_431, limits: small(), &padded_head(129), 431);
    rej!(head_too_large_is_431_before_head_complete, limits: small(),
        b"GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789", 431);

    #[test]
    fn too_many_headers_is_431_with_default_limits() {
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..100 {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let e = parse_head(&req, &Limits::default()).unwrap_err();
        assert_eq!(e.status, 431);
    }

    // --- Host ------------------------------------------------------------------

    rej!(
        rejects_missing_host_in_http11,
        b"GET / HTTP/1.1\r\nX: y\r\n\r\n",
        400
    );
    rej!(
        rejects_duplicate_host,
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        400
    );
    rej!(
        rejects_duplicate_host_in_http10,
        b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
        400
    );
    rej!(
        rejects_host_with_space,
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        400
    );
    rej!(
        rejects_host_with_path,
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        400
    );
    rej!(
        rejects_host_with_userinfo,
        b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
        400
    );
    rej!(
        rejects_host_with_bad_port,
        b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n",
        400
    );
    rej!(
        rejects_host_with_bad_ipv6,
        b"GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n",
        400
    );
    rej!(
        rejects_host_with_empty_name_and_port,
        b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n",
        400
    );

    // --- framing -----------------------------------------------------------

    rej!(
        rejects_content_length_with_transfer_encoding,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400
    );
    rej!(
        rejects_transfer_encoding_with_content_length,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400
    );
    rej!(
        rejects_differing_content_lengths,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        400
    );
    rej!(
        rejects_differing_content_length_list,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n",
        400
    );
    rej!(
        rejects_non_digit_content_length,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n",
        400
    );
    rej!(
        rejects_signed_content_length,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
        400
    );
    rej!(
        rejects_negative_content_length,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        400
    );
    rej!(
        rejects_hex_content_length,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n",
        400
    );
    rej!(
        rejects_empty_content_length,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
        400
    );
    rej!(
        rejects_content_length_with_inner_space,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n",
        400
    );
    rej!(
        rejects_content_length_list_with_empty_element,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,,5\r\n\r\n",
        400
    );
    rej!(
        rejects_overflowing_content_length,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n",
        400
    );
    rej!(
        rejects_unknown_transfer_coding,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501
    );
    rej!(rejects_unknown_transfer_coding_across_fields,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: x-custom\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
    rej!(
        rejects_chunked_not_final,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400
    );
    rej!(
        rejects_transfer_encoding_without_chunked,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        400
    );
    rej!(rejects_chunked_applied_twice,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    rej!(
        rejects_empty_transfer_encoding,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n",
        400
    );
    rej!(
        rejects_malformed_transfer_coding,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
        400
    );
    rej!(
        rejects_transfer_encoding_in_http10,
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        400
    );
    rej!(
        rejects_unsupported_expectation,
        b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n",
        417
    );

    // --- keep-alive -----------------------------------------------------------

    #[test]
    fn keep_alive_rules() {
        let table: &[(&str, &[&str], bool)] = &[
            ("1.1", &[], true),
            ("1.1", &["close"], false),
            ("1.1", &["Close"], false),
            ("1.1", &["keep-alive"], true),
            ("1.1", &["upgrade"], true),
            ("1.1", &["foo, close"], false),
            ("1.1", &["foo", "CLOSE"], false),
            ("1.1", &["keep-alive, close"], false),
            ("1.1", &["closed"], true),
            ("1.0", &[], false),
            ("1.0", &["keep-alive"], true),
            ("1.0", &["Keep-Alive"], true),
            ("1.0", &[" foo ,  keep-alive "], true),
            ("1.0", &["keep-alive", "close"], false),
            ("1.0", &["close"], false),
            ("1.0", &["keep-alives"], false),
        ];
        for (version, conn, expected) in table {
            let mut req = format!("GET / HTTP/{version}\r\nHost: h\r\n");
            for c in conn.iter() {
                req.push_str(&format!("Connection: {c}\r\n"));
            }
            req.push_str("\r\n");
            let (h, _) = ok(parse_head(req.as_bytes(), &Limits::default()));
            assert_eq!(h.keep_alive(), *expected, "{version} {conn:?}");
        }
    }

    // --- pipelining and reuse ---------------------------------------------

    #[test]
    fn pipelined_heads_parse_one_after_another() {
        let a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
        let b = "HEAD /bb?q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        let c = "GET /ccc HTTP/1.0\r\n\r\n";
        let all = format!("{a}{b}{c}");
        let mut buf = all.as_bytes();
        let mut head = RequestHead::new();
        let mut parser = HeadParser::new();
        let limits = Limits::default();
        let mut seen = Vec::new();
        while !buf.is_empty() {
            let n = parser.parse(buf, &mut head, &limits).unwrap().unwrap();
            seen.push((head.method().to_string(), head.path().to_string(), n));
            buf = &buf[n..];
        }
        assert_eq!(
            seen,
            [
                ("GET".to_string(), "/a".to_string(), a.len()),
                ("HEAD".to_string(), "/bb".to_string(), b.len()),
                ("GET".to_string(), "/ccc".to_string(), c.len()),
            ]
        );
        assert!(!head.keep_alive());
    }

    #[test]
    fn reused_head_keeps_no_stale_state() {
        let limits = Limits::default();
        let mut h = RequestHead::new();
        let first = b"POST /x?y HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        parse_head_into(&mut h, first, &limits).unwrap().unwrap();
        assert!(h.is_chunked() && h.expects_continue() && !h.keep_alive());
        let second = b"GET /z HTTP/1.1\r\nHost: h\r\n\r\n";
        parse_head_into(&mut h, second, &limits).unwrap().unwrap();
        assert_eq!(h, parse_head(second, &limits).unwrap().unwrap().0);
        assert!(!h.is_chunked() && !h.expects_continue() && h.keep_alive());
        assert_eq!(h.query(), None);
        assert_eq!(h.header_count(), 1);
    }

    #[test]
    fn has_bare_lf_matches_naive_search() {
        let naive = |b: &[u8], prev: u8| {
            (0..b.len()).any(|i| b[i] == b'\n' && (if i == 0 { prev } else { b[i - 1] }) != b'\r')
        };
        let alphabet = [b'\r', b'\n', b'a', 0x8d, 0x0a | 0x80];
        let mut seed = 0x1234_5678_u32;
        for len in 0..40 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        alphabet[(seed >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                for prev in [b'\r', b'x'] {
                    assert_eq!(
                        has_bare_lf(&bytes, prev),
                        naive(&bytes, prev),
                        "{bytes:?} {prev}"
                    );
                }
            }
        }
    }

    #[test]
    fn find_lf_matches_naive_search() {
        let mut buf = vec![b'a'; 40];
        for b in [0x0b, 0x09, 0x8a, 0xff, 0x00, 0x0a] {
            for pos in 0..40 {
                buf.fill(b'\x0b');
                buf[pos] = b;
                buf[(pos * 7 + 3) % 40] ^= 0x80;
                for from in [0, 1, 5, 8, 13] {
                    for to in [from, 20, 33, 40] {
                        if to < from {
                            continue;
                        }
                        let naive = buf[from..to]
                            .iter()
                            .position(|&c| c == b'\n')
                            .map(|i| i + from);
                        assert_eq!(find_lf(&buf, from, to), naive, "{b} {pos} {from} {to}");
                    }
                }
            }
        }
    }

    #[test]
    fn percent_decode_rules() {
        let mut out = Vec::new();
        percent_decode(b"/a%20b%2Fc%c3%A9+", &mut out).unwrap();
        assert_eq!(out, "/a b/cé+".as_bytes());
        for bad in [&b"%"[..], b"%4", b"%zz", b"%%41", b"a%0g"] {
            assert_eq!(
                percent_decode(bad, &mut Vec::new()).unwrap_err().status,
                400
            );
        }
        assert_eq!(
            percent_decode(b"a%00b", &mut Vec::new()),
            Err(E_PERCENT_NUL)
        );
    }
}
