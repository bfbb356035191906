//! A request and its response as values, apart from any connection: the
//! [`Request`] a route handler reads, the response it builds (`Parts`,
//! filled through a [`Response`](super::Response)), the framing facts that
//! tie one to the other (`Exchange`), and [`OwnedResponse`] for answers
//! sent later from another thread.
//!
//! `Request` and `Parts` are views over, and buffers of, memory the
//! connection and its loop reuse from one request to the next, so answering
//! a request from memory allocates nothing once the buffers have grown to
//! fit.

use std::fs::File;
use std::sync::Arc;

use super::proto::encode::{write_head_lines, FieldLines};
use super::proto::{
    write_error_response, write_head, BodyFraming, DateCache, Framing, HttpError, Method,
    RequestHead,
};

/// File bodies up to this size are read into the response after its head,
/// so that both leave in one send (a `pread` and a `send` instead of a
/// `send` and a `sendfile`); larger ones go out with sendfile. Measured in
/// `bench/static.sh` (see bench/results/static.md).
pub const INLINE_FILE_MAX: usize = 8 * 1024;

/// A complete request: its head and its whole (decoded) body.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    head: &'a RequestHead,
    body: &'a [u8],
}

impl<'a> Request<'a> {
    pub(crate) fn new(head: &'a RequestHead, body: &'a [u8]) -> Self {
        Request { head, body }
    }

    /// The method token, e.g. `"GET"`.
    pub fn method(&self) -> &'a str {
        self.head.method()
    }

    /// The method, classified.
    pub fn method_kind(&self) -> Method {
        self.head.method_kind()
    }

    /// The raw request target as sent.
    pub fn target(&self) -> &'a str {
        self.head.target()
    }

    /// The raw (percent-encoded) path.
    pub fn path(&self) -> &'a str {
        self.head.path()
    }

    /// The raw query string, without `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query()
    }

    /// The first field with this name (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.head.header(name)
    }

    /// Like [`Request::header`], if the value is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.head.header_str(name)
    }

    /// All fields in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.head.headers()
    }

    /// The decoded body (empty if the request had none).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn version(&self) -> u8 {
        self.head.version()
    }

    /// The parsed head, for everything else.
    pub fn head(&self) -> &'a RequestHead {
        self.head
    }
}

/// What is known about the request a response answers, needed to frame it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exchange {
    version: u8,
    keep_alive: bool,
    head_request: bool,
}

impl Exchange {
    /// The same exchange with the connection closing after it (a server
    /// that is draining answers every request with `Connection: close`).
    pub fn closing_after(self) -> Self {
        Exchange {
            keep_alive: false,
            ..self
        }
    }

    /// Whether the connection may stay open after this exchange, as the
    /// request asked (HTTP/1.1 without `Connection: close`, or HTTP/1.0
    /// with `keep-alive`).
    pub fn keeps_alive(&self) -> bool {
        self.keep_alive
    }

    /// The exchange a complete request `head` opens.
    pub fn of(head: &RequestHead) -> Self {
        Exchange {
            version: head.version(),
            keep_alive: head.keep_alive(),
            head_request: head.is_head(),
        }
    }

    /// For an error response after which the connection closes: framed for
    /// `head` if it was parsed, else as for an HTTP/1.1 GET.
    pub fn closing(head: Option<&RequestHead>) -> Self {
        let (version, head_request) = head.map_or((1, false), |h| (h.version(), h.is_head()));
        Exchange {
            version,
            keep_alive: false,
            head_request,
        }
    }

    /// Whether the response carries no body (it answers HEAD).
    pub fn is_head_request(&self) -> bool {
        self.head_request
    }

    /// Appends the error response for `err` (see [`write_error_response`]).
    pub fn write_error(&self, out: &mut Vec<u8>, err: &HttpError, date: &DateCache) -> Framing {
        write_error_response(
            out,
            err,
            date,
            self.keep_alive,
            self.version,
            self.head_request,
        )
    }
}

/// The response being built: one per loop, reset and reused for every
/// request.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    status: u16,
    /// Checked and formatted when added.
    fields: FieldLines,
    body: Vec<u8>,
    file: Option<(Arc<File>, u64, u64)>,
    error: Option<HttpError>,
    close: bool,
    deferred: bool,
}

impl Parts {
    /// `200`, no fields, empty body (buffers keep their capacity).
    pub fn reset(&mut self) {
        self.status = 200;
        self.fields.clear();
        self.body.clear();
        self.file = None;
        self.error = None;
        self.close = false;
        self.deferred = false;
    }

    pub fn set_status(&mut self, code: u16) {
        self.status = code;
    }

    /// Adds a field unless it is invalid or one the writer manages.
    pub fn push_field(&mut self, name: &str, value: &[u8]) {
        self.fields.push(name, value);
    }

    /// Adds a known-good constant field line (`name: value\r\n`).
    pub fn push_line(&mut self, line: &'static [u8]) {
        self.fields.push_line(line);
    }

    /// Adds field lines the server formatted itself, unchecked.
    pub fn push_trusted(&mut self, lines: &[u8]) {
        self.fields.push_trusted(lines);
    }

    /// Replaces the body (and drops a file body).
    pub fn set_body(&mut self, bytes: &[u8]) {
        self.body.clear();
        self.body.extend_from_slice(bytes);
        self.file = None;
    }

    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// A file body: read in after the head when small, else sent after it
    /// (with sendfile); see [`INLINE_FILE_MAX`].
    pub fn set_file(&mut self, file: Arc<File>, offset: u64, len: u64) {
        self.body.clear();
        self.file = Some((file, offset, len));
    }

    pub fn set_error(&mut self, err: HttpError) {
        self.error = Some(err);
    }

    pub fn set_close(&mut self) {
        self.close = true;
    }

    /// The handler will answer later; nothing is encoded for this request.
    pub fn set_deferred(&mut self) {
        self.deferred = true;
    }

    /// The status the response will have (an error's, if one was set).
    pub fn status(&self) -> u16 {
        self.error.map_or(self.status, |e| e.status)
    }

    pub fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// Appends the response to `out`: the head, then the in-memory body
    /// (not for HEAD, nor when the status has none), or a small file body
    /// read from the file. A larger file body is the caller's to send after
    /// the head: see [`Parts::take_file`]. A file that turns out shorter
    /// than its body length (it shrank) is answered with a 500 instead.
    pub fn encode(&mut self, out: &mut Vec<u8>, date: &DateCache, ex: Exchange) -> Framing {
        let start = out.len();
        let framing = self.encode_head(out, date, ex);
        let Some((file, offset, len)) = &self.file else {
            return framing;
        };
        if *len > INLINE_FILE_MAX as u64
            || ex.head_request
            || framing.body == BodyFraming::None
            || self.error.is_some()
        {
            return framing;
        }
        let len = *len as usize;
        let read = crate::sys::fs::pread_append(file, out, len, *offset);
        self.file = None;
        if read.is_ok_and(|n| n == len) {
            return framing;
        }
        out.truncate(start);
        let keep_alive = ex.keep_alive && !self.close;
        write_error_response(
            out,
            &HttpError::new(500, "file changed while being read", false),
            date,
            keep_alive,
            ex.version,
            ex.head_request,
        )
    }

    /// The head, and the in-memory body if there is one to send.
    fn encode_head(&mut self, out: &mut Vec<u8>, date: &DateCache, ex: Exchange) -> Framing {
        let keep_alive = ex.keep_alive && !self.close;
        if let Some(err) = self.error {
            return write_error_response(out, &err, date, keep_alive, ex.version, ex.head_request);
        }
        let body_len = match &self.file {
            Some((_, _, len)) => *len,
            None => self.body.len() as u64,
        };
        let framing = write_head_lines(
            out,
            self.status,
            &self.fields,
            Some(body_len),
            date,
            keep_alive,
            ex.version,
        );
        if self.file.is_none() && !ex.head_request && framing.body != BodyFraming::None {
            out.extend_from_slice(&self.body);
        }
        framing
    }

    /// The file body to send after the encoded head, if there is one to
    /// send (not for HEAD, an error, or an empty range). Always leaves
    /// `Parts` without a file.
    pub fn take_file(&mut self, ex: Exchange) -> Option<(Arc<File>, u64, u64)> {
        let file = self.file.take()?;
        (!ex.head_request && file.2 > 0 && self.error.is_none()).then_some(file)
    }
}

/// An owned response, for [`Deferred::send`](super::Deferred::send).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedResponse {
    /// Status code, e.g. `200`. For 204 and 304 no body is sent.
    pub status: u16,
    /// Extra header fields as `(name, value)`, sent in order. `Server`,
    /// `Date`, `Content-Length`, `Transfer-Encoding` and `Connection` are set
    /// by the server and dropped here, as are fields with an invalid name or
    /// a value containing control characters.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body; `Content-Length` is its length. Not sent for a HEAD
    /// request (the head still announces its length).
    pub body: Vec<u8>,
}

impl OwnedResponse {
    /// A response with this status and body and no extra fields.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        OwnedResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Add a field.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, date: &DateCache, ex: Exchange) -> Framing {
        let fields: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let f = write_head(
            out,
            self.status,
            &fields,
            Some(self.body.len() as u64),
            date,
            ex.keep_alive,
            ex.version,
        );
        if !ex.head_request && f.body != BodyFraming::None {
            out.extend_from_slice(&self.body);
        }
        f
    }
}
