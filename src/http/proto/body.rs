//! Request body framing (RFC 9112 §6) and incremental body decoders.
//!
//! [`BodyKind`] is decided from a validated [`RequestHead`]; a
//! [`BodyDecoder`] (or a bare [`ChunkedDecoder`]) then turns the bytes that
//! follow the head into body data, consuming exactly the body and nothing of
//! any pipelined request behind it.

use super::error::HttpError;
use super::limits::Limits;
use super::parse::{is_tchar, RequestHead};

const E_TOO_LARGE: HttpError = HttpError::fatal(413, "request body too large");
const E_CHUNK_SIZE: HttpError = HttpError::fatal(400, "invalid chunk size");
const E_CHUNK_EXT: HttpError = HttpError::fatal(400, "invalid chunk extension");
const E_CHUNK_EXT_LONG: HttpError = HttpError::fatal(400, "chunk extensions too long");
const E_CHUNK_CRLF: HttpError = HttpError::fatal(400, "missing CRLF in chunked body");
const E_TRAILER: HttpError = HttpError::fatal(400, "invalid trailer field");
const E_TRAILER_LONG: HttpError = HttpError::fatal(431, "trailer section too large");

/// Hex digits accepted in one chunk size (leading zeros included); 16 digits
/// already cover every `u64`.
const MAX_SIZE_DIGITS: u8 = 16;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`, or
    /// `Content-Length: 0`.
    None,
    /// Exactly this many bytes (non-zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl BodyKind {
    /// Framing of the request described by `head` (RFC 9112 §6.3). The parser
    /// has already rejected ambiguous framing; here a `Content-Length` above
    /// `limits.max_body` is answered with `413` right away, before any body
    /// byte is read. (A chunked body is checked while it is decoded.)
    pub fn from_head(head: &RequestHead, limits: &Limits) -> Result<BodyKind, HttpError> {
        if head.is_chunked() {
            return Ok(BodyKind::Chunked);
        }
        match head.content_length() {
            None | Some(0) => Ok(BodyKind::None),
            Some(n) if n > limits.max_body => Err(E_TOO_LARGE),
            Some(n) => Ok(BodyKind::Length(n)),
        }
    }
}

// Framing is the body's business, decided from the head: this method lives
// here so that `parse` need not know about bodies (it keeps `proto` acyclic).
impl RequestHead {
    /// How the body is framed; a `Content-Length` above `limits.max_body`
    /// is `413` (see [`BodyKind::from_head`]).
    pub fn body_kind(&self, limits: &Limits) -> Result<BodyKind, HttpError> {
        BodyKind::from_head(self, limits)
    }
}

/// Decodes one request body of any [`BodyKind`].
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    /// `remaining` bytes still to come (0 = done; also used for no body).
    Length {
        /// Bytes of body not yet consumed.
        remaining: u64,
    },
    /// A chunked body.
    Chunked(ChunkedDecoder),
}

impl BodyDecoder {
    /// A decoder for a body of this kind.
    pub fn new(kind: BodyKind, limits: &Limits) -> Self {
        match kind {
            BodyKind::None => BodyDecoder::Length { remaining: 0 },
            BodyKind::Length(n) => BodyDecoder::Length { remaining: n },
            BodyKind::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new(limits)),
        }
    }

    /// Consumes body bytes from the front of `src`, appending the decoded
    /// data to `out`. Returns `(consumed, done)`: until `done`, all of `src`
    /// is consumed; once `done`, `src[consumed..]` belongs to the next
    /// request.
    pub fn decode(&mut self, src: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        match self {
            BodyDecoder::Length { remaining } => {
                let n = src
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                out.extend_from_slice(&src[..n]);
                *remaining -= n as u64;
                Ok((n, *remaining == 0))
            }
            BodyDecoder::Chunked(c) => c.decode(src, out),
        }
    }

    /// Whether the whole body has been consumed.
    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Length { remaining } => *remaining == 0,
            BodyDecoder::Chunked(c) => c.is_done(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the chunk size.
    Size,
    /// Whitespace after the size or an extension: only `;` may follow.
    ExtWs,
    /// After `;`: optional whitespace, then an extension name.
    ExtStart,
    ExtName,
    /// Whitespace after an extension name: `=` or `;` may follow.
    ExtNameWs,
    /// After `=`: optional whitespace, then a token or quoted string.
    ExtValStart,
    ExtValToken,
    ExtQuoted,
    ExtQuotedEscape,
    /// After a closing quote.
    ExtAfterQuote,
    /// CR of the chunk-size line seen.
    SizeLf,
    /// Chunk data; `size` bytes remain.
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer line or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final empty line seen.
    EndLf,
    Done,
}

/// Incremental decoder for the chunked transfer coding (RFC 9112 §7.1).
///
/// Feed it any split of the body; output and errors do not depend on how the
/// input is split. Chunk extensions are validated against the grammar and
/// discarded (their total size is bounded by [`Limits::max_chunk_ext`]);
/// trailer fields are validated and discarded (bounded by
/// [`Limits::max_trailer_bytes`]). The decoded size is bounded by
/// [`Limits::max_body`] (checked as soon as a chunk size is read). After an
/// error the decoder keeps returning that error.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Current chunk size while reading it; remaining bytes while in `Data`.
    size: u64,
    digits: u8,
    /// Decoded bytes so far.
    total: u64,
    ext_bytes: usize,
    trailer_bytes: usize,
    max_body: u64,
    max_ext: usize,
    max_trailer: usize,
    failed: Option<HttpError>,
}

#[inline]
fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `qdtext` (RFC 9110 §5.6.4).
#[inline]
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF)
}

/// Field-value bytes: HTAB, SP, VCHAR, obs-text.
#[inline]
fn is_field_byte(b: u8) -> bool {
    matches!(b, b'\t' | b' '..=0x7E | 0x80..=0xFF)
}

impl ChunkedDecoder {
    /// A decoder positioned at the first chunk-size line.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            total: 0,
            ext_bytes: 0,
            trailer_bytes: 0,
            max_body: limits.max_body,
            max_ext: limits.max_chunk_ext,
            max_trailer: limits.max_trailer_bytes,
            failed: None,
        }
    }

    /// Whether the last chunk and trailer section have been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Total decoded body bytes so far.
    pub fn decoded_len(&self) -> u64 {
        self.total
    }

    /// Consumes chunked-coded bytes from `src`, appending chunk data to `out`.
    /// Returns `(consumed, done)`; until `done`, all of `src` is consumed.
    pub fn decode(&mut self, src: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.run(src, out) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    fn ext_byte(&mut self) -> Result<(), HttpError> {
        self.ext_bytes += 1;
        if self.ext_bytes > self.max_ext {
            Err(E_CHUNK_EXT_LONG)
        } else {
            Ok(())
        }
    }

    fn run(&mut self, src: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), HttpError> {
        let mut i = 0;
        while i < src.len() {
            let b = src[i];
            match self.state {
                State::Data => {
                    let avail = src.len() - i;
                    let n = usize::try_from(self.size).map_or(avail, |s| s.min(avail));
                    out.extend_from_slice(&src[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Size => {
                    if let Some(d) = hex(b) {
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return Err(E_CHUNK_SIZE);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        if self.size > self.max_body.saturating_sub(self.total) {
                            return Err(E_TOO_LARGE);
                        }
                    } else if self.digits == 0 {
                        return Err(E_CHUNK_SIZE);
                    } else {
                        match b {
                            b'\r' => self.state = State::SizeLf,
                            b';' => {
                                self.ext_byte()?;
                                self.state = State::ExtStart;
                            }
                            b if is_ws(b) => {
                                self.ext_byte()?;
                                self.state = State::ExtWs;
                            }
                            _ => return Err(E_CHUNK_SIZE),
                        }
                    }
                }
                State::ExtWs
                | State::ExtStart
                | State::ExtName
                | State::ExtNameWs
                | State::ExtValStart
                | State::ExtValToken
                | State::ExtQuoted
                | State::ExtQuotedEscape
                | State::ExtAfterQuote => {
                    if b == b'\r' && self.ext_can_end() {
                        self.state = State::SizeLf;
                    } else {
                        self.ext_byte()?;
                        self.state = self.ext_next(b)?;
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(E_CHUNK_CRLF);
                    }
                    self.digits = 0;
                    if self.size == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        self.total += self.size;
                        self.state = State::Data;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(E_CHUNK_CRLF);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(E_CHUNK_CRLF);
                    }
                    self.state = State::Size;
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::EndLf;
                    } else {
                        self.trailer_byte()?;
                        if !is_tchar(b) {
                            return Err(E_TRAILER);
                        }
                        self.state = State::TrailerName;
                    }
                }
                State::TrailerName => {
                    self.trailer_byte()?;
                    if b == b':' {
                        self.state = State::TrailerValue;
                    } else if !is_tchar(b) {
                        return Err(E_TRAILER);
                    }
                }
                State::TrailerValue => {
                    self.trailer_byte()?;
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if !is_field_byte(b) {
                        return Err(E_TRAILER);
                    }
                }
                State::TrailerLf => {
                    self.trailer_byte()?;
                    if b != b'\n' {
                        return Err(E_TRAILER);
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(E_CHUNK_CRLF);
                    }
                    self.state = State::Done;
                    return Ok((i + 1, true));
                }
                State::Done => return Ok((i, true)),
            }
            i += 1;
        }
        Ok((i, self.state == State::Done))
    }

    fn trailer_byte(&mut self) -> Result<(), HttpError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailer {
            Err(E_TRAILER_LONG)
        } else {
            Ok(())
        }
    }

    /// Whether a CR may end the chunk-size line in the current state.
    fn ext_can_end(&self) -> bool {
        matches!(
            self.state,
            State::ExtName | State::ExtValToken | State::ExtAfterQuote
        )
    }

    /// Transition for one extension byte (RFC 9112 §7.1.1:
    /// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`).
    fn ext_next(&self, b: u8) -> Result<State, HttpError> {
        use State::*;
        let next = match (self.state, b) {
            (ExtWs, b) if is_ws(b) => ExtWs,
            (ExtWs, b';') => ExtStart,
            (ExtStart, b) if is_ws(b) => ExtStart,
            (ExtStart, b) if is_tchar(b) => ExtName,
            (ExtName, b) if is_tchar(b) => ExtName,
            (ExtName, b';') => ExtStart,
            (ExtName, b'=') => ExtValStart,
            (ExtName, b) if is_ws(b) => ExtNameWs,
            (ExtNameWs, b) if is_ws(b) => ExtNameWs,
            (ExtNameWs, b'=') => ExtValStart,
            (ExtNameWs, b';') => ExtStart,
            (ExtValStart, b) if is_ws(b) => ExtValStart,
            (ExtValStart, b'"') => ExtQuoted,
            (ExtValStart, b) if is_tchar(b) => ExtValToken,
            (ExtValToken, b) if is_tchar(b) => ExtValToken,
            (ExtValToken, b';') => ExtStart,
            (ExtValToken, b) if is_ws(b) => ExtWs,
            (ExtQuoted, b'"') => ExtAfterQuote,
            (ExtQuoted, b'\\') => ExtQuotedEscape,
            (ExtQuoted, b) if is_qdtext(b) => ExtQuoted,
            (ExtQuotedEscape, b) if is_field_byte(b) => ExtQuoted,
            (ExtAfterQuote, b';') => ExtStart,
            (ExtAfterQuote, b) if is_ws(b) => ExtWs,
            _ => return Err(E_CHUNK_EXT),
        };
        Ok(next)
    }
}

#[inline]
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proto::parse::parse_head;
    use proptest::prelude::*;

    fn head(extra: &str) -> RequestHead {
        let req = format!("POST / HTTP/1.1\r\nHost: h\r\n{extra}\r\n");
        parse_head(req.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    /// Decodes in one call.
    fn one_shot(src: &[u8], limits: &Limits) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = ChunkedDecoder::new(limits);
        let mut out = Vec::new();
        let (n, done) = d.decode(src, &mut out)?;
        Ok((out, n, done))
    }

    /// Decodes one byte per call, stopping at completion.
    fn byte_at_a_time(src: &[u8], limits: &Limits) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = ChunkedDecoder::new(limits);
        let mut out = Vec::new();
        for (i, b) in src.iter().enumerate() {
            let (n, done) = d.decode(std::slice::from_ref(b), &mut out)?;
            if done {
                return Ok((out, i + n, true));
            }
            assert_eq!(n, 1);
        }
        Ok((out, src.len(), false))
    }

    /// `chunked!{name, bytes, expected}`: one-shot and byte-at-a-time
    /// decoding both give `expected` (`Ok(data)` for a complete body,
    /// `Err(status)` for a rejected one).
    macro_rules! chunked {
        ($name:ident, limits: $limits:expr, $src:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let limits = $limits;
                let src: &[u8] = $src;
                let a = one_shot(src, &limits);
                let b = byte_at_a_time(src, &limits);
                assert_eq!(a, b, "one-shot vs byte-at-a-time");
                let expected: Result<&[u8], u16> = $expected;
                match expected {
                    Ok(data) => {
                        let (out, n, done) = a.unwrap();
                        assert!(done, "body must be complete");
                        assert_eq!(out, data);
                        assert!(n <= src.len());
                    }
                    Err(status) => {
                        let e = a.expect_err("body must be rejected");
                        assert_eq!(e.status, status, "{e:?}");
                        assert!(e.close);
                    }
                }
            }
        };
        ($name:ident, $src:expr, $expected:expr) => {
            chunked!($name, limits: Limits::default(), $src, $expected);
        };
    }

    #[test]
    fn body_kind_from_head() {
        let l = Limits::default();
        assert_eq!(BodyKind::from_head(&head(""), &l), Ok(BodyKind::None));
        assert_eq!(
            BodyKind::from_head(&head("Content-Length: 0\r\n"), &l),
            Ok(BodyKind::None)
        );
        assert_eq!(
            BodyKind::from_head(&head("Content-Length: 42\r\n"), &l),
            Ok(BodyKind::Length(42))
        );
        assert_eq!(
            BodyKind::from_head(&head("Transfer-Encoding: chunked\r\n"), &l),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            BodyKind::from_head(&head("Content-Length: 8388608\r\n"), &l),
            Ok(BodyKind::Length(8 * 1024 * 1024))
        );
    }

    #[test]
    fn content_length_over_max_body_is_413() {
        let e = BodyKind::from_head(&head("Content-Length: 8388609\r\n"), &Limits::default())
            .unwrap_err();
        assert_eq!((e.status, e.close), (413, true));
    }

    #[test]
    fn length_decoder_consumes_exactly_the_body() {
        let mut d = BodyDecoder::new(BodyKind::Length(5), &Limits::default());
        let mut out = Vec::new();
        assert_eq!(d.decode(b"he", &mut out), Ok((2, false)));
        assert_eq!(d.decode(b"", &mut out), Ok((0, false)));
        assert_eq!(d.decode(b"lloGET /", &mut out), Ok((3, true)));
        assert!(d.is_done());
        assert_eq!(out, b"hello");
        let mut none = BodyDecoder::new(BodyKind::None, &Limits::default());
        assert_eq!(none.decode(b"GET", &mut out), Ok((0, true)));
    }

    chunked!(
        decodes_simple_chunks,
        b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
        Ok(b"Wikipedia")
    );
    chunked!(decodes_empty_body, b"0\r\n\r\n", Ok(b""));
    chunked!(
        decodes_hex_sizes_in_any_case,
        b"a\r\n0123456789\r\nA\r\n0123456789\r\n000\r\n\r\n",
        Ok(b"01234567890123456789")
    );
    chunked!(
        accepts_leading_zeros_in_chunk_size,
        b"0000000000000003\r\nabc\r\n0\r\n\r\n",
        Ok(b"abc")
    );
    chunked!(
        accepts_chunk_extensions,
        b"3;name=value;flag\r\nabc\r\n2 ; a = \"q \\\"x\\\" ;\" ;b=t\r\nde\r\n0;last\r\n\r\n",
        Ok(b"abcde")
    );
    chunked!(
        accepts_and_discards_trailers,
        b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other:\tv a l\r\n\r\n",
        Ok(b"abc")
    );
    chunked!(
        accepts_crlf_like_bytes_inside_data,
        b"4\r\n\r\n\r\n\r\n0\r\n\r\n",
        Ok(b"\r\n\r\n")
    );

    chunked!(
        rejects_missing_chunk_size,
        b"\r\nabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(rejects_non_hex_chunk_size, b"g\r\n", Err(400));
    chunked!(rejects_negative_chunk_size, b"-1\r\n", Err(400));
    chunked!(
        rejects_0x_prefixed_chunk_size,
        b"0x5\r\nabcde\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_chunk_size_with_too_many_digits,
        b"00000000000000001\r\na\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(rejects_chunk_size_overflow, limits: Limits { max_body: u64::MAX, ..Limits::default() },
        b"1FFFFFFFFFFFFFFFF\r\n", Err(400));
    chunked!(
        rejects_bare_lf_after_chunk_size,
        b"3\nabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_bare_cr_after_chunk_size,
        b"3\rabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_whitespace_before_crlf_in_chunk_size,
        b"3 \r\nabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_garbage_after_chunk_size,
        b"3x\r\nabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_missing_crlf_after_data,
        b"3\r\nabcd\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(rejects_bare_lf_after_data, b"3\r\nabc\n0\r\n\r\n", Err(400));
    chunked!(rejects_bare_lf_at_end, b"3\r\nabc\r\n0\r\n\n", Err(400));
    chunked!(rejects_empty_extension, b"3;\r\nabc\r\n0\r\n\r\n", Err(400));
    chunked!(
        rejects_extension_without_name,
        b"3;=v\r\nabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_extension_without_value,
        b"3;a=\r\nabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_unterminated_quoted_extension,
        b"3;a=\"x\r\nabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_control_char_in_extension,
        b"3;a\x01=b\r\nabc\r\n0\r\n\r\n",
        Err(400)
    );
    chunked!(
        rejects_obs_fold_in_trailer,
        b"0\r\nX: a\r\n b\r\n\r\n",
        Err(400)
    );
    chunked!(rejects_trailer_without_colon, b"0\r\nX a\r\n\r\n", Err(400));
    chunked!(rejects_nul_in_trailer, b"0\r\nX: a\0\r\n\r\n", Err(400));
    chunked!(rejects_bare_lf_in_trailer, b"0\r\nX: a\n\r\n", Err(400));
    chunked!(chunked_body_over_max_body_is_413, limits: Limits { max_body: 5, ..Limits::default() },
        b"3\r\nabc\r\n3\r\n", Err(413));
    chunked!(
        huge_chunk_size_is_413_before_data,
        b"FFFFFFFFFFFFFFFF\r\n",
        Err(413)
    );
    chunked!(chunk_extensions_over_limit_is_400, limits: Limits { max_chunk_ext: 8, ..Limits::default() },
        b"1;aaaa=bbb\r\na\r\n0\r\n\r\n", Err(400));
    chunked!(chunk_extensions_limit_is_per_body, limits: Limits { max_chunk_ext: 8, ..Limits::default() },
        b"1;aaa\r\na\r\n1;bbbb\r\na\r\n0\r\n\r\n", Err(400));
    chunked!(trailers_over_limit_is_431, limits: Limits { max_trailer_bytes: 8, ..Limits::default() },
        b"0\r\nX: 123456\r\n\r\n", Err(431));

    #[test]
    fn body_exactly_at_max_body_is_accepted() {
        let limits = Limits {
            max_body: 6,
            ..Limits::default()
        };
        let (out, _, done) = one_shot(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", &limits).unwrap();
        assert!(done);
        assert_eq!(out, b"abcdef");
    }

    #[test]
    fn chunked_leaves_pipelined_bytes_unconsumed() {
        let body = b"3\r\nabc\r\n0\r\nT: v\r\n\r\n";
        let mut src = body.to_vec();
        src.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (out, n, done) = one_shot(&src, &Limits::default()).unwrap();
        assert!(done);
        assert_eq!((out.as_slice(), n), (&b"abc"[..], body.len()));
        // Feeding more to a finished decoder consumes nothing.
        let mut d = ChunkedDecoder::new(&Limits::default());
        let mut out = Vec::new();
        d.decode(body, &mut out).unwrap();
        assert_eq!(d.decode(b"more", &mut out), Ok((0, true)));
        assert_eq!(d.decoded_len(), 3);
    }

    #[test]
    fn decoder_stays_failed_after_error() {
        let mut d = ChunkedDecoder::new(&Limits::default());
        let mut out = Vec::new();
        let e = d.decode(b"zz", &mut out).unwrap_err();
        assert_eq!(d.decode(b"0\r\n\r\n", &mut out), Err(e));
    }

    /// Encodes `chunks` (empty ones skipped) with optional extensions and
    /// trailers.
    fn encode(chunks: &[Vec<u8>], ext: bool, trailers: bool) -> Vec<u8> {
        let mut v = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            v.extend_from_slice(format!("{:X}", c.len()).as_bytes());
            if ext {
                v.extend_from_slice(b" ; n=\"v;\\\"\"");
            }
            v.extend_from_slice(b"\r\n");
            v.extend_from_slice(c);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"0\r\n");
        if trailers {
            v.extend_from_slice(b"Trailer-A: x\r\n");
        }
        v.extend_from_slice(b"\r\n");
        v
    }

    proptest! {
        #[test]
        fn chunked_any_split_equals_one_shot(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8),
            ext in any::<bool>(),
            trailers in any::<bool>(),
            cuts in prop::collection::vec(1usize..17, 1..20),
        ) {
            let limits = Limits::default();
            let src = encode(&chunks, ext, trailers);
            let expected: Vec<u8> = chunks.concat();
            let (out, n, done) = one_shot(&src, &limits).unwrap();
            prop_assert!(done);
            prop_assert_eq!(n, src.len());
            prop_assert_eq!(&out, &expected);
            prop_assert_eq!(byte_at_a_time(&src, &limits), Ok((expected.clone(), src.len(), true)));
            // Arbitrary piece sizes.
            let mut d = ChunkedDecoder::new(&limits);
            let mut got = Vec::new();
            let mut pos = 0;
            let mut i = 0;
            let mut finished = false;
            while pos < src.len() {
                let end = (pos + cuts[i % cuts.len()]).min(src.len());
                i += 1;
                let (c, done) = d.decode(&src[pos..end], &mut got).unwrap();
                pos += c;
                if done { finished = true; break; }
                prop_assert_eq!(pos, end);
            }
            prop_assert!(finished);
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn chunked_garbage_byte_at_a_time_equals_one_shot(src in prop::collection::vec(
            prop::sample::select(b"0123456789abcdefABCDEFgxyz;=\" \t\r\n:\\\x00\x7f".to_vec()), 0..64)) {
            let limits = Limits { max_chunk_ext: 16, max_trailer_bytes: 16, max_body: 64, ..Limits::default() };
            prop_assert_eq!(one_shot(&src, &limits), byte_at_a_time(&src, &limits));
        }
    }
}
