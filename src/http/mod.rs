//! Pure HTTP/1.1 protocol layers (RFC 9110 / RFC 9112), independent of sockets.
//!
//! The layers follow the natural seams of an HTTP/1 server connection:
//!
//! * [`limits`]: every resource bound the server enforces ([`Limits`]).
//! * [`parse`]: incremental, validating request-head parsing into a reusable
//!   [`RequestHead`] ([`HeadParser`], [`parse_head`], [`parse_head_into`]).
//! * [`body`]: message-body framing ([`BodyKind`]) and incremental decoders
//!   ([`BodyDecoder`], [`ChunkedDecoder`]).
//! * [`encode`]: response serialisation into a caller-owned `Vec<u8>`
//!   ([`write_head`], [`write_chunk`], [`DateCache`], ...).
//! * [`files`]: the pure parts of static file serving (path resolution,
//!   validators, conditional requests, ranges, content types).
//!
//! None of these modules perform network I/O; the connection glue owns the
//! buffers, timers and sockets and drives these state machines.
//!
//! Every protocol violation detected while reading a request is reported as an
//! [`HttpError`] carrying the status code to answer with. Errors raised by the
//! request parser and the body decoders always have `close == true`: once the
//! framing of a request is in doubt, the only safe continuation is to send the
//! error response and close the connection.

pub mod body;
pub mod encode;
pub mod files;
pub mod limits;
pub mod parse;

pub use body::{BodyDecoder, BodyKind, ChunkedDecoder};
pub use encode::{
    error_response, reason_phrase, write_chunk, write_continue, write_error_response, write_head,
    write_last_chunk, write_response, BodyFraming, DateCache, Framing,
};
pub use files::{
    content_type, etag_for, http_date, not_modified, parse_http_date, parse_range, resolve,
    FileRoot, RangeResult,
};
pub use limits::Limits;
pub use parse::{
    parse_head, parse_head_into, percent_decode, HeadParser, Method, RequestHead, TargetForm,
};

/// A request that cannot be served, with the status code to answer with.
///
/// `reason` is a short, static, human-readable explanation (safe to show to
/// the client; it never contains request data). `close` tells the connection
/// glue that it must close the connection after sending the error response,
/// because the request framing can no longer be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct HttpError {
    /// Status code of the response to send (4xx/5xx).
    pub status: u16,
    /// Short static explanation, used as the error body.
    pub reason: &'static str,
    /// Whether the connection must be closed after responding.
    pub close: bool,
}

impl HttpError {
    /// Builds an error.
    pub const fn new(status: u16, reason: &'static str, close: bool) -> Self {
        HttpError {
            status,
            reason,
            close,
        }
    }

    /// An error that ends the connection (all request-parsing errors are).
    pub const fn fatal(status: u16, reason: &'static str) -> Self {
        HttpError::new(status, reason, true)
    }
}
