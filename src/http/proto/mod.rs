//! HTTP/1.1 as bytes (RFC 9110 / RFC 9112): no sockets, no loop, no server
//! types. Nothing here imports from the rest of `http/` or from
//! `crate::net`; everything is a pure function of its input, so it is unit-,
//! property- and fuzz-tested on its own (`fuzz/fuzz_targets/http_request.rs`).
//!
//! * [`error`]: [`HttpError`], a request that cannot be served, with the
//!   status to answer with.
//! * [`limits`]: every resource bound the server enforces ([`Limits`]).
//! * [`parse`]: incremental, validating request-head parsing into a reusable
//!   [`RequestHead`] ([`HeadParser`], [`parse_head`], [`parse_head_into`]).
//! * [`body`]: message-body framing ([`BodyKind`], decided from the head) and
//!   incremental decoders ([`BodyDecoder`], [`ChunkedDecoder`]).
//! * [`encode`]: response serialisation into a caller-owned `Vec<u8>`
//!   ([`write_head`], [`write_chunk`], [`DateCache`], ...).
//!
//! Inside `proto`, a module uses only those above it in this table
//! (`#[cfg(test)]` modules may use any of them):
//!
//! | module   | uses                  |
//! |----------|-----------------------|
//! | `error`  | -                     |
//! | `limits` | -                     |
//! | `parse`  | error, limits         |
//! | `body`   | error, limits, parse  |
//! | `encode` | error, parse          |
//!
//! Every protocol violation detected while reading a request is an
//! [`HttpError`]. Errors raised by the request parser and the body decoders
//! always have `close == true`: once the framing of a request is in doubt,
//! the only safe continuation is to send the error response and close the
//! connection. (Handler-level errors, such as a malformed percent-escape found
//! by [`percent_decode`], keep the connection.)

pub mod body;
pub mod encode;
pub mod error;
pub mod limits;
pub mod parse;

pub use body::{BodyDecoder, BodyKind, ChunkedDecoder};
pub use encode::{
    error_response, reason_phrase, write_chunk, write_continue, write_error_response, write_head,
    write_last_chunk, write_response, BodyFraming, DateCache, Framing,
};
pub use error::HttpError;
pub use limits::Limits;
pub use parse::{
    parse_head, parse_head_into, percent_decode, HeadParser, Method, RequestHead, TargetForm,
};

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
