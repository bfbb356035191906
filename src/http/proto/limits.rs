//! Resource limits enforced while reading requests.

use std::time::Duration;

/// Number of header slots the parser keeps on the stack. [`Limits::max_headers`]
/// values above this are clamped to it.
pub const HEADER_SLOTS: usize = 256;

/// Bounds on what a client may make the server buffer, parse or wait for.
///
/// Every limit is checked as early as possible: the parser reports a breach as
/// soon as the buffered bytes prove it (for example a request target that is
/// already too long before its line is complete), so a connection never has
/// to buffer more than these numbers to reach a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target and version, without CRLF), in
    /// bytes. Exceeding it answers `414 URI Too Long` (or `400` if the line has
    /// no space at all, i.e. the "method" is what is too long).
    /// Default: 8 KiB.
    pub max_request_line: usize,
    /// Most header field lines in a request head. Exceeding it answers
    /// `431 Request Header Fields Too Large`. Clamped to [`HEADER_SLOTS`].
    /// Default: 100.
    pub max_headers: usize,
    /// Largest whole request head (request line, fields and the terminating
    /// empty line, including any empty lines before the request line), in
    /// bytes. Exceeding it answers `431`. Default: 16 KiB, which holds the
    /// default 8 KiB request line plus 8 KiB of fields (cookies included).
    pub max_head_bytes: usize,
    /// Largest request body in bytes (decoded size for chunked bodies). A
    /// larger `Content-Length`, or a chunked body growing past it, answers
    /// `413 Content Too Large`. Default: 8 MiB.
    pub max_body: u64,
    /// Total bytes of chunk extensions (`;name=value` after a chunk size)
    /// accepted over one chunked body; exceeding it answers `400`.
    /// Default: 4 KiB.
    pub max_chunk_ext: usize,
    /// Total bytes of the trailer section of one chunked body (trailer fields
    /// are validated and discarded). Exceeding it answers `431`.
    /// Default: 8 KiB.
    pub max_trailer_bytes: usize,
    /// Deadline for receiving a complete request head, measured from the
    /// first byte of the request (not an idle timeout: a client trickling one
    /// byte at a time is cut off too). On expiry the server closes, after a
    /// best-effort `408`. Default: 10 s.
    pub header_timeout: Duration,
    /// Longest time without progress while receiving a request body (idle
    /// timeout between reads of body bytes). On expiry the server closes.
    /// Default: 30 s.
    pub body_timeout: Duration,
    /// Longest idle time on a persistent connection between the end of a
    /// response and the first byte of the next request. On expiry the server
    /// closes silently. Default: 60 s.
    pub keepalive_timeout: Duration,
}

impl Limits {
    /// The limits a server operator tunes, as the CLI takes them, e.g.
    /// `header-timeout=10s keepalive-timeout=60s max-body=8MiB`.
    pub fn describe(&self) -> String {
        use crate::net::limit::{show_bytes, show_timeout};
        format!(
            "header-timeout={} body-timeout={} keepalive-timeout={} max-body={} max-head={}",
            show_timeout(Some(self.header_timeout)),
            show_timeout(Some(self.body_timeout)),
            show_timeout(Some(self.keepalive_timeout)),
            show_bytes(self.max_body),
            show_bytes(self.max_head_bytes as u64),
        )
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_head_bytes: 16 * 1024,
            max_body: 8 * 1024 * 1024,
            max_chunk_ext: 4 * 1024,
            max_trailer_bytes: 8 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// The effective header-count limit (`max_headers` clamped to
    /// [`HEADER_SLOTS`]).
    pub fn header_slots(&self) -> usize {
        self.max_headers.min(HEADER_SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_consistent() {
        let l = Limits::default();
        assert!(l.max_request_line < l.max_head_bytes);
        assert_eq!(l.header_slots(), 100);
        let big = Limits {
            max_headers: 10_000,
            ..Limits::default()
        };
        assert_eq!(big.header_slots(), HEADER_SLOTS);
    }
}
