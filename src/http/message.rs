//! What route handlers see: a borrowed [`Request`] and a [`Response`] to fill
//! (or to [`Response::defer`] and finish later from any thread).
//!
//! Both are views over buffers the connection reuses from one request to the
//! next, so answering a request from memory allocates nothing once the
//! buffers have grown to fit.

use std::fs::File;

use super::proto::encode::{
    write_error_response, write_head, write_head_lines, BodyFraming, DateCache, FieldLines, Framing,
};
use super::proto::parse::{Method, RequestHead};
use super::proto::HttpError;
use crate::net::{Closed, ConnHandle};

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
    pub version: u8,
    pub keep_alive: bool,
    pub head_request: bool,
}

/// The response being built, kept by the handler and reused per request.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    pub status: u16,
    /// Checked and formatted when added.
    fields: FieldLines,
    pub body: Vec<u8>,
    pub file: Option<(File, u64, u64)>,
    pub error: Option<HttpError>,
    pub close: bool,
    pub deferred: bool,
}

impl Parts {
    pub fn reset(&mut self) {
        self.status = 200;
        self.fields.clear();
        self.body.clear();
        self.file = None;
        self.error = None;
        self.close = false;
        self.deferred = false;
    }

    /// Appends the response to `out`: the head, then the in-memory body
    /// (not for HEAD, nor when the status has none, nor for a file body,
    /// which the caller sends after the head).
    pub fn encode(&mut self, out: &mut Vec<u8>, date: &DateCache, ex: Exchange) -> Framing {
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
}

/// Gives a [`Response`] access to its connection's handle, only when the
/// handler defers (creating a handle costs an allocation per connection).
pub(crate) trait HandleSource {
    fn conn_handle(&mut self) -> ConnHandle;
}

/// The response to a [`Request`]: status, fields and a body from memory or
/// from a file. The framing fields (`Content-Length`, `Transfer-Encoding`,
/// `Connection`, `Date`, `Server`) are generated and cannot be set.
///
/// Status defaults to 200 with an empty body.
pub struct Response<'a> {
    pub(crate) parts: &'a mut Parts,
    pub(crate) source: &'a mut (dyn HandleSource + 'a),
    pub(crate) exchange: Exchange,
    pub(crate) seq: u64,
}

impl Response<'_> {
    /// Set the status code.
    pub fn status(&mut self, code: u16) -> &mut Self {
        self.parts.status = code;
        self
    }

    /// Add a field (repeatable). Invalid names, values with control
    /// characters, and the fields the server sets itself (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`, `Date`, `Server`) are dropped.
    pub fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Self {
        self.parts.fields.push(name, value.as_ref());
        self
    }

    /// Replace the body with `bytes`.
    pub fn body(&mut self, bytes: &[u8]) -> &mut Self {
        self.parts.body.clear();
        self.parts.body.extend_from_slice(bytes);
        self.parts.file = None;
        self
    }

    /// The body buffer, to encode into directly (it starts empty).
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.parts.body
    }

    /// A `text/plain` body.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.parts
            .fields
            .push_line(b"Content-Type: text/plain; charset=utf-8\r\n");
        self.body(s.as_bytes())
    }

    /// An `application/json` body (`s` must already be JSON).
    pub fn json(&mut self, s: &str) -> &mut Self {
        self.parts
            .fields
            .push_line(b"Content-Type: application/json\r\n");
        self.body(s.as_bytes())
    }

    /// A `text/html` body.
    pub fn html(&mut self, s: &str) -> &mut Self {
        self.parts
            .fields
            .push_line(b"Content-Type: text/html; charset=utf-8\r\n");
        self.body(s.as_bytes())
    }

    /// Send `len` bytes of `file` from `offset` as the body (with sendfile).
    pub fn file(&mut self, file: File, offset: u64, len: u64) -> &mut Self {
        self.parts.body.clear();
        self.parts.file = Some((file, offset, len));
        self
    }

    /// Answer with a small `text/plain` error page for `err` instead (closes
    /// the connection afterwards if `err.close`).
    pub fn error(&mut self, err: HttpError) -> &mut Self {
        self.parts.error = Some(err);
        self
    }

    /// Close the connection after this response.
    pub fn close(&mut self) -> &mut Self {
        self.parts.close = true;
        self
    }

    /// Whether the response to this request will carry no body (HEAD).
    pub fn is_head_request(&self) -> bool {
        self.exchange.head_request
    }

    /// Answer later: returns a `Send` token to finish the response with, from
    /// any thread. Requests pipelined behind this one wait (their bytes are
    /// kept, unparsed) until it is finished, so responses stay in order.
    /// Whatever was set on this `Response` is discarded. Dropping the token
    /// without answering sends `500`.
    pub fn defer(&mut self) -> Deferred {
        self.parts.deferred = true;
        Deferred {
            handle: Some(self.source.conn_handle()),
            seq: self.seq,
            exchange: self.exchange,
        }
    }
}

/// An owned response, for [`Deferred::send`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
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

/// A response promised by [`Response::defer`]. `Send`: finish it from any
/// thread with [`Deferred::send`]; it is written on the connection's loop,
/// in pipeline order. Dropped unanswered, it sends `500`.
pub struct Deferred {
    handle: Option<ConnHandle>,
    seq: u64,
    exchange: Exchange,
}

impl Deferred {
    /// Finish the response. Fails if the connection is gone.
    pub fn send(mut self, resp: OwnedResponse) -> Result<(), Closed> {
        self.finish(resp)
    }

    fn finish(&mut self, resp: OwnedResponse) -> Result<(), Closed> {
        let Some(handle) = self.handle.take() else {
            return Err(Closed);
        };
        let (seq, ex) = (self.seq, self.exchange);
        handle.run::<super::server::HttpHandler>(move |h, conn| {
            h.complete_deferred(conn, seq, ex, &resp)
        })
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if self.handle.is_some() {
            let _ = self.finish(OwnedResponse::new(500, "deferred response dropped\n"));
        }
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred").field("seq", &self.seq).finish()
    }
}
