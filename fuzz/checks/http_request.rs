//! Feeds arbitrary bytes through the HTTP/1 request parser and body decoders
//! the way a connection does: bytes arrive in two reads split at a
//! fuzz-chosen point, consumed bytes are drained, unconsumed tails are kept
//! for the next request. Checks that nothing panics, that no step consumes
//! more than it was given, and that the split does not change the outcome.
//!
//! Shared, not copied: the `http_request` fuzz target and the main crate's
//! `tests/fuzz_replay.rs` both include this file with `#[path]`, so it uses
//! only evnet's public API and the standard library (no `libfuzzer_sys`).

use evnet::http::{BodyDecoder, HeadParser, HttpError, Limits, RequestHead};

/// (method, target, body) of each request completed, then the error that
/// stopped the stream (if any) and the bytes left over (0 after an error,
/// since later reads are never looked at).
type Outcome = (Vec<(String, String, Vec<u8>)>, Option<HttpError>, usize);

/// Everything a handler may ask of a parsed head: the spans the parser
/// stored must slice its buffers without panicking.
fn accessors(head: &RequestHead) {
    let _ = (head.method_kind(), head.is_head(), head.target_form());
    let (path, target) = (head.path(), head.target());
    assert!(path.len() <= target.len().max(1));
    if let Some(q) = head.query() {
        assert!(q.len() < target.len());
    }
    let mut decoded = Vec::new();
    if head.decoded_path(&mut decoded).is_ok() {
        assert!(decoded.len() <= path.len());
    }
    let _ = (head.version(), head.host(), head.content_length());
    let _ = (
        head.is_chunked(),
        head.keep_alive(),
        head.expects_continue(),
    );
    assert_eq!(head.headers().count(), head.header_count());
    for (name, value) in head.headers() {
        assert!(head.header(name).is_some());
        assert!(value.len() < head.head_len());
    }
    let _ = head.header_str("host");
}

fn run(reads: &[&[u8]], limits: &Limits) -> Outcome {
    let mut buf: Vec<u8> = Vec::new();
    let mut parser = HeadParser::new();
    let mut head = RequestHead::new();
    let mut decoder: Option<BodyDecoder> = None;
    let mut body = Vec::new();
    let mut done = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match decoder.as_mut() {
                None => match parser.parse(&buf, &mut head, limits) {
                    Ok(Some(n)) => {
                        assert!(n <= buf.len(), "head longer than the buffer");
                        assert_eq!(n, head.head_len());
                        buf.drain(..n);
                        accessors(&head);
                        match head.body_kind(limits) {
                            Ok(kind) => decoder = Some(BodyDecoder::new(kind, limits)),
                            Err(e) => return (done, Some(e), 0),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return (done, Some(e), 0),
                },
                Some(d) => match d.decode(&buf, &mut body) {
                    Ok((n, finished)) => {
                        assert!(n <= buf.len(), "decoder consumed more than given");
                        buf.drain(..n);
                        if !finished {
                            assert!(buf.is_empty(), "unfinished decoder left input");
                            break;
                        }
                        assert!(body.len() as u64 <= limits.max_body);
                        done.push((
                            head.method().to_string(),
                            head.target().to_string(),
                            std::mem::take(&mut body),
                        ));
                        decoder = None;
                    }
                    Err(e) => return (done, Some(e), 0),
                },
            }
        }
    }
    (done, None, buf.len())
}

/// One fuzz input: byte 0 picks the split point (0..=255 scaled to the rest
/// of the input), the rest is the byte stream. Panics if a check fails.
pub fn check(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) * data.len() / 255;
    // Small limits so that every limit is reachable by the fuzzer.
    let limits = Limits {
        max_request_line: 256,
        max_headers: 16,
        max_head_bytes: 1024,
        max_body: 4096,
        max_chunk_ext: 64,
        max_trailer_bytes: 128,
        ..Limits::default()
    };
    let whole = run(&[data], &limits);
    let split = run(&[&data[..at], &data[at..]], &limits);
    assert_eq!(whole, split, "outcome depends on where the input was split");
}
