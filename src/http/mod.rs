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
//! None of these modules perform network I/O. The server on top of them:
//!
//! * [`conn`]: the per-connection state machine (keep-alive, pipelining,
//!   100-continue, timeouts, deferred responses in order).
//! * [`request`]: what route handlers see ([`Request`], [`Response`],
//!   [`Deferred`]).
//! * [`router`]: dispatch by method and path ([`Router`]).
//! * [`static_files`]: serving a directory ([`StaticFiles`]).
//! * [`server`]: [`HttpBuilder`] / [`HttpServer`] and the built-in routes.
//!
//! Every protocol violation detected while reading a request is reported as an
//! [`HttpError`] carrying the status code to answer with. Errors raised by the
//! request parser and the body decoders always have `close == true`: once the
//! framing of a request is in doubt, the only safe continuation is to send the
//! error response and close the connection. (Handler-level errors, such as a
//! malformed percent-escape found by [`percent_decode`], keep the connection.)

pub mod conn;
pub mod message;
pub mod proto;
pub mod server;

pub use message::{Deferred, OwnedResponse, Request, Response};
pub use proto::body::{BodyDecoder, BodyKind, ChunkedDecoder};
pub use proto::encode::{
    error_response, reason_phrase, write_chunk, write_continue, write_error_response, write_head,
    write_last_chunk, write_response, BodyFraming, DateCache, Framing,
};
pub use proto::limits::Limits;
pub use proto::parse::{
    parse_head, parse_head_into, percent_decode, HeadParser, Method, RequestHead, TargetForm,
};
pub use server::files::{
    content_type, etag_for, http_date, not_modified, parse_http_date, parse_range, resolve,
    FileRoot, RangeResult,
};
pub use server::router::{Handler, Router};
pub use server::static_files::StaticFiles;
pub use server::{HttpBuilder, HttpHandler, HttpServer};

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

    /// `408`, for the glue to send (best effort) when
    /// [`Limits::header_timeout`] expires on a partially received head.
    pub const REQUEST_TIMEOUT: HttpError = HttpError::fatal(408, "request head timeout");

    /// `404` for handlers (connection kept).
    pub const NOT_FOUND: HttpError = HttpError::new(404, "not found", false);

    /// `403` for handlers (connection kept).
    pub const FORBIDDEN: HttpError = HttpError::new(403, "forbidden", false);

    /// `405` for handlers (connection kept; add an `Allow` field yourself if
    /// building the response by hand).
    pub const METHOD_NOT_ALLOWED: HttpError = HttpError::new(405, "method not allowed", false);

    /// `500` for handlers (connection kept).
    pub const INTERNAL: HttpError = HttpError::new(500, "internal server error", false);
}

#[cfg(test)]
mod tests {
    //! End-to-end: heads and bodies of pipelined requests, fed the way a
    //! connection would (arbitrary read sizes, unconsumed tails kept).
    use super::*;
    use proptest::prelude::*;

    /// (method, target, fields, body) of one decoded request.
    type Decoded = (String, String, Vec<(String, Vec<u8>)>, Vec<u8>);

    #[derive(Debug, Clone)]
    enum BodySpec {
        None,
        Length(Vec<u8>),
        Chunked(Vec<Vec<u8>>, bool, bool),
    }

    #[derive(Debug, Clone)]
    struct ReqSpec {
        method: &'static str,
        target: String,
        fields: Vec<(String, String)>,
        body: BodySpec,
    }

    fn body_spec() -> impl Strategy<Value = BodySpec> {
        let data = prop::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            Just(BodySpec::None),
            data.clone().prop_map(BodySpec::Length),
            (
                prop::collection::vec(data, 0..5),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(c, e, t)| BodySpec::Chunked(c, e, t)),
        ]
    }

    fn req_spec() -> impl Strategy<Value = ReqSpec> {
        (
            prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
            "/[a-z0-9._~%-]{0,12}(\\?[a-z0-9=&]{0,8})?",
            prop::collection::vec(("x-[a-z]{1,8}", "[!-~]([ -~]{0,14}[!-~])?"), 0..4),
            body_spec(),
        )
            .prop_map(|(method, target, fields, body)| ReqSpec {
                method,
                // Keep generated '%' escapes well-formed.
                target: target.replace('%', "%25"),
                fields,
                body,
            })
    }

    /// Serialises a request; returns its bytes and what decoding must yield.
    fn serialise(r: &ReqSpec) -> (Vec<u8>, Decoded) {
        let mut fields: Vec<(String, String)> = vec![("Host".into(), "example.com".into())];
        fields.extend(r.fields.iter().cloned());
        let mut body_bytes = Vec::new();
        let body = match &r.body {
            BodySpec::None => Vec::new(),
            BodySpec::Length(b) => {
                fields.push(("Content-Length".into(), b.len().to_string()));
                body_bytes.extend_from_slice(b);
                b.clone()
            }
            BodySpec::Chunked(chunks, ext, trailers) => {
                fields.push(("Transfer-Encoding".into(), "chunked".into()));
                for c in chunks.iter().filter(|c| !c.is_empty()) {
                    body_bytes.extend_from_slice(format!("{:x}", c.len()).as_bytes());
                    if *ext {
                        body_bytes.extend_from_slice(b";ext=\"1\"");
                    }
                    body_bytes.extend_from_slice(b"\r\n");
                    body_bytes.extend_from_slice(c);
                    body_bytes.extend_from_slice(b"\r\n");
                }
                body_bytes.extend_from_slice(b"0\r\n");
                if *trailers {
                    body_bytes.extend_from_slice(b"X-Trailer: t\r\n");
                }
                body_bytes.extend_from_slice(b"\r\n");
                chunks.concat()
            }
        };
        let mut bytes = format!("{} {} HTTP/1.1\r\n", r.method, r.target).into_bytes();
        for (n, v) in &fields {
            bytes.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&body_bytes);
        let fields = fields
            .into_iter()
            .map(|(n, v)| (n, v.into_bytes()))
            .collect();
        (
            bytes,
            (r.method.to_string(), r.target.clone(), fields, body),
        )
    }

    /// Drives parser and decoders like a connection: bytes arrive in
    /// `pieces`, unconsumed bytes stay at the front of the buffer.
    fn drive<'a>(
        pieces: impl Iterator<Item = &'a [u8]>,
        limits: &Limits,
    ) -> Result<(Vec<Decoded>, usize), HttpError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut parser = HeadParser::new();
        let mut head = RequestHead::new();
        let mut decoder: Option<BodyDecoder> = None;
        let mut body = Vec::new();
        let mut done = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match decoder.as_mut() {
                    None => match parser.parse(&buf, &mut head, limits)? {
                        Some(n) => {
                            assert_eq!(n, head.head_len());
                            buf.drain(..n);
                            decoder = Some(BodyDecoder::new(head.body_kind(limits)?, limits));
                        }
                        None => break,
                    },
                    Some(d) => {
                        let (n, finished) = d.decode(&buf, &mut body)?;
                        assert!(n <= buf.len());
                        buf.drain(..n);
                        if !finished {
                            assert!(buf.is_empty());
                            break;
                        }
                        let fields = head
                            .headers()
                            .map(|(n, v)| (n.to_string(), v.to_vec()))
                            .collect();
                        done.push((
                            head.method().to_string(),
                            head.target().to_string(),
                            fields,
                            std::mem::take(&mut body),
                        ));
                        decoder = None;
                    }
                }
            }
        }
        Ok((done, buf.len()))
    }

    proptest! {
        #[test]
        fn pipelined_stream_split_anywhere_decodes_identically(
            reqs in prop::collection::vec(req_spec(), 1..5),
            cuts in prop::collection::vec(1usize..48, 1..40),
        ) {
            let limits = Limits::default();
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for r in &reqs {
                let (bytes, dec) = serialise(r);
                stream.extend_from_slice(&bytes);
                expected.push(dec);
            }
            let whole = drive(std::iter::once(&stream[..]), &limits).unwrap();
            prop_assert_eq!(&whole, &(expected.clone(), 0));

            let mut pieces = Vec::new();
            let mut pos = 0;
            for c in cuts.iter().cycle() {
                if pos >= stream.len() { break; }
                let end = (pos + c).min(stream.len());
                pieces.push(&stream[pos..end]);
                pos = end;
            }
            let split = drive(pieces.into_iter(), &limits).unwrap();
            prop_assert_eq!(&split, &whole);

            let bytewise = drive(stream.chunks(1), &limits).unwrap();
            prop_assert_eq!(&bytewise, &whole);
        }

        #[test]
        fn mutated_stream_outcome_does_not_depend_on_splits(
            reqs in prop::collection::vec(req_spec(), 1..4),
            edits in prop::collection::vec(
                (any::<prop::sample::Index>(), 0u8..3, prop::sample::select(
                    b"\r\n \t:;,\"0aF\x00\x7f\xff-".to_vec())),
                1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let limits = Limits { max_body: 100, max_chunk_ext: 32, max_trailer_bytes: 32, ..Limits::default() };
            let mut stream = Vec::new();
            for r in &reqs {
                stream.extend_from_slice(&serialise(r).0);
            }
            for (at, op, byte) in edits {
                let i = at.index(stream.len());
                match op {
                    0 => stream[i] = byte,
                    1 => stream.insert(i, byte),
                    _ => { stream.remove(i); }
                }
            }
            let whole = drive(std::iter::once(&stream[..]), &limits);
            let at = cut.index(stream.len() + 1);
            let split = drive([&stream[..at], &stream[at..]].into_iter(), &limits);
            prop_assert_eq!(&split, &whole);
            let bytewise = drive(stream.chunks(1), &limits);
            prop_assert_eq!(&bytewise, &whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            data in prop::collection::vec(any::<u8>(), 0..256),
            cut in any::<prop::sample::Index>(),
        ) {
            let limits = Limits { max_head_bytes: 200, max_request_line: 64, max_headers: 8, ..Limits::default() };
            let at = cut.index(data.len() + 1);
            let whole = drive(std::iter::once(&data[..]), &limits);
            let split = drive([&data[..at], &data[at..]].into_iter(), &limits);
            prop_assert_eq!(whole, split);
        }
    }
}
