//! Request body framing (RFC 9112 §6) and incremental body decoders.
//!
//! [`BodyKind`] is decided from a validated [`RequestHead`]; a
//! [`BodyDecoder`] (or a bare [`ChunkedDecoder`]) then turns the bytes that
//! follow the head into body data, consuming exactly the body and nothing of
//! any pipelined request behind it.

use super::limits::Limits;
use super::parse::{is_tchar, RequestHead};
use super::HttpError;

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
