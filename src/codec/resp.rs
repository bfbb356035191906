//! RESP2, the Redis serialization protocol.
//!
//! Server side:
//! * [`CommandDecoder`]: client commands, either multibulk
//!   (`*N\r\n$len\r\narg\r\n...`) or inline (`SET k v\r\n`, with Redis's
//!   quoting rules), enforcing Redis's limits with Redis's exact error texts
//!   (returned as [`CodecError::Protocol`]; the server replies
//!   `-ERR <text>\r\n`, see [`write_protocol_error`], and closes).
//! * Reply writers for the hot path that never allocate beyond growing the
//!   output buffer: [`write_simple`], [`write_error`], [`write_int`],
//!   [`write_bulk`], [`write_null`], [`write_array_header`],
//!   [`write_null_array`]; and [`RespValue`] / [`ReplyEncoder`] for
//!   composite replies.
//!
//! Client side (load generators, tests): [`CommandEncoder`] /
//! [`write_command`] and [`ReplyDecoder`] yielding owned [`Reply`] values.

use super::{CodecError, DecodeResult, Decoder, Encoder};

/// Longest inline command line, and longest `*`/`$` count line (Redis's
/// `PROTO_INLINE_MAX_SIZE`).
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
/// Most arguments in one multibulk command.
pub const PROTO_MAX_MULTIBULK_LEN: usize = 1024 * 1024;
/// Default largest bulk argument (Redis's `proto-max-bulk-len`, 512 MiB).
pub const PROTO_MAX_BULK_LEN: usize = 512 * 1024 * 1024;

const ERR_TOO_BIG_INLINE: &str = "Protocol error: too big inline request";
const ERR_TOO_BIG_MBULK: &str = "Protocol error: too big mbulk count string";
const ERR_TOO_BIG_BULK: &str = "Protocol error: too big bulk count string";
const ERR_INVALID_MBULK: &str = "Protocol error: invalid multibulk length";
const ERR_INVALID_BULK: &str = "Protocol error: invalid bulk length";
const ERR_UNBALANCED: &str = "Protocol error: unbalanced quotes in request";

fn protocol(msg: &str) -> CodecError {
    CodecError::Protocol(msg.to_string())
}

// ---------------------------------------------------------------------------
// Numbers

/// Parse a signed decimal exactly as Redis's `string2ll` does: optional `-`,
/// no `+`, no leading zeros (except `0` itself), no spaces, no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let (&first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut v = u64::from(first - b'0');
    for &c in rest {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v > 1u64 << 63 {
            None
        } else {
            // v == 2^63 wraps to i64::MIN, which is the right answer.
            Some(0i64.wrapping_sub(v as i64))
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Format `v` in decimal into the end of `buf`, returning the digits.
pub fn format_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Append `v` in decimal to `dst` (no allocation besides `dst` growing).
pub fn write_decimal(dst: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    if v < 0 {
        dst.push(b'-');
    }
    dst.extend_from_slice(format_u64(v.unsigned_abs(), &mut buf));
}

fn write_usize(dst: &mut Vec<u8>, v: usize) {
    let mut buf = [0u8; 20];
    dst.extend_from_slice(format_u64(v as u64, &mut buf));
}

// ---------------------------------------------------------------------------
// Reply writers

/// `+OK\r\n`
pub const OK: &[u8] = b"+OK\r\n";
/// `$-1\r\n`, the RESP2 null bulk string.
pub const NULL_BULK: &[u8] = b"$-1\r\n";
/// `*-1\r\n`, the RESP2 null array.
pub const NULL_ARRAY: &[u8] = b"*-1\r\n";
/// `*0\r\n`
pub const EMPTY_ARRAY: &[u8] = b"*0\r\n";

/// Copy a status/error text, turning `\r` and `\n` into spaces so the
/// reply stays one line (as Redis does for error replies).
fn write_line_text(dst: &mut Vec<u8>, text: &[u8]) {
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        dst.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        dst.extend_from_slice(text);
    }
}

/// `+<s>\r\n`
pub fn write_simple(dst: &mut Vec<u8>, s: &str) {
    write_simple_bytes(dst, s.as_bytes());
}

/// `+<s>\r\n` for a byte string.
pub fn write_simple_bytes(dst: &mut Vec<u8>, s: &[u8]) {
    dst.reserve(s.len() + 3);
    dst.push(b'+');
    write_line_text(dst, s);
    dst.extend_from_slice(b"\r\n");
}

/// `-<msg>\r\n`. `msg` carries its own error code: `"ERR syntax error"`,
/// `"WRONGTYPE ..."`.
pub fn write_error(dst: &mut Vec<u8>, msg: &str) {
    write_error_bytes(dst, msg.as_bytes());
}

/// `-<msg>\r\n` for a byte string.
pub fn write_error_bytes(dst: &mut Vec<u8>, msg: &[u8]) {
    dst.reserve(msg.len() + 3);
    dst.push(b'-');
    write_line_text(dst, msg);
    dst.extend_from_slice(b"\r\n");
}

/// `-ERR <err>\r\n`: what a server sends before closing a connection whose
/// input failed to decode.
pub fn write_protocol_error(dst: &mut Vec<u8>, err: &CodecError) {
    let text = err.to_string();
    dst.extend_from_slice(b"-ERR ");
    write_line_text(dst, text.as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// `:<n>\r\n`
pub fn write_int(dst: &mut Vec<u8>, n: i64) {
    dst.push(b':');
    write_decimal(dst, n);
    dst.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n<bytes>\r\n`
pub fn write_bulk(dst: &mut Vec<u8>, bytes: &[u8]) {
    dst.reserve(bytes.len() + 16);
    write_bulk_header(dst, bytes.len());
    dst.extend_from_slice(bytes);
    dst.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n`: the header of a bulk string whose `len` bytes (and the
/// closing `\r\n`) are sent separately.
pub fn write_bulk_header(dst: &mut Vec<u8>, len: usize) {
    dst.push(b'$');
    write_usize(dst, len);
    dst.extend_from_slice(b"\r\n");
}

/// A bulk string holding `n` in decimal (e.g. CONFIG values).
pub fn write_bulk_int(dst: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let digits = format_u64(n.unsigned_abs(), &mut buf);
    dst.push(b'$');
    write_usize(dst, digits.len() + usize::from(n < 0));
    dst.extend_from_slice(b"\r\n");
    if n < 0 {
        dst.push(b'-');
    }
    dst.extend_from_slice(digits);
    dst.extend_from_slice(b"\r\n");
}

/// `$-1\r\n`
pub fn write_null(dst: &mut Vec<u8>) {
    dst.extend_from_slice(NULL_BULK);
}

/// `*<n>\r\n`; the caller then writes `n` elements.
pub fn write_array_header(dst: &mut Vec<u8>, n: usize) {
    dst.push(b'*');
    write_usize(dst, n);
    dst.extend_from_slice(b"\r\n");
}

/// `*-1\r\n`
pub fn write_null_array(dst: &mut Vec<u8>) {
    dst.extend_from_slice(NULL_ARRAY);
}

/// A command as a multibulk array of bulk strings (what clients send).
pub fn write_command<A: AsRef<[u8]>>(dst: &mut Vec<u8>, args: &[A]) {
    write_array_header(dst, args.len());
    for a in args {
        write_bulk(dst, a.as_ref());
    }
}

/// A RESP2 value to send, borrowing its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue<'a> {
    /// `+text` (must not contain CR/LF; they are replaced by spaces).
    Simple(&'a str),
    /// `-text` including the code, e.g. `ERR syntax error`.
    Error(&'a str),
    /// `:n`, a signed 64-bit integer.
    Integer(i64),
    /// `$len` followed by the bytes: binary-safe, any content.
    Bulk(&'a [u8]),
    /// `$-1`
    Null,
    /// `*n` followed by the `n` elements, which may themselves be arrays.
    Array(Vec<RespValue<'a>>),
    /// `*-1`
    NullArray,
}

impl RespValue<'_> {
    /// Append the encoding of `self` to `dst`.
    pub fn write_to(&self, dst: &mut Vec<u8>) {
        match self {
            RespValue::Simple(s) => write_simple(dst, s),
            RespValue::Error(s) => write_error(dst, s),
            RespValue::Integer(n) => write_int(dst, *n),
            RespValue::Bulk(b) => write_bulk(dst, b),
            RespValue::Null => write_null(dst),
            RespValue::Array(items) => {
                write_array_header(dst, items.len());
                for v in items {
                    v.write_to(dst);
                }
            }
            RespValue::NullArray => write_null_array(dst),
        }
    }
}

/// Encodes [`RespValue`]s (server replies).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyEncoder;

impl<'a> Encoder<RespValue<'a>> for ReplyEncoder {
    fn encode(&mut self, item: &RespValue<'a>, dst: &mut Vec<u8>) -> Result<(), CodecError> {
        item.write_to(dst);
        Ok(())
    }
}

/// Encodes commands as multibulk arrays (client side).
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandEncoder;

impl<A: AsRef<[u8]>> Encoder<[A]> for CommandEncoder {
    fn encode(&mut self, item: &[A], dst: &mut Vec<u8>) -> Result<(), CodecError> {
        write_command(dst, item);
        Ok(())
    }
}

impl<A: AsRef<[u8]>> Encoder<Vec<A>> for CommandEncoder {
    fn encode(&mut self, item: &Vec<A>, dst: &mut Vec<u8>) -> Result<(), CodecError> {
        write_command(dst, item);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Inline commands

/// C's `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Split an inline command line into arguments with Redis's rules
/// (`sdssplitargs`): arguments are separated by whitespace; `"..."` supports
/// `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>`; `'...'` supports `\'`;
/// a closing quote must be followed by whitespace or the end. `None` for
/// unbalanced quotes. A NUL byte ends the line (as in C).
pub fn split_inline_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(z) => &line[..z],
        None => line,
    };
    let n = line.len();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = line.get(i).copied();
            let mut done = false;
            if in_dq {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'x') => {
                        match (hex_val(line.get(i + 2)), hex_val(line.get(i + 3))) {
                            (Some(h), Some(l)) => {
                                cur.push(h * 16 + l);
                                i += 3;
                            }
                            _ => {
                                // Not a hex escape: `\x` is just `x`.
                                i += 1;
                                cur.push(b'x');
                            }
                        }
                    }
                    Some(b'\\') if i + 1 < n => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if i + 1 < n && !is_space(line[i + 1]) {
                            return None;
                        }
                        done = true;
                    }
                    Some(other) => cur.push(other),
                }
            } else if in_sq {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if i + 1 < n && !is_space(line[i + 1]) {
                            return None;
                        }
                        done = true;
                    }
                    Some(other) => cur.push(other),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => done = true,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(other) => cur.push(other),
                }
            }
            if i < n {
                i += 1;
            }
            if done {
                break;
            }
        }
        args.push(cur);
    }
}

// ---------------------------------------------------------------------------
// Command decoder (server side)

/// A multibulk command whose header has been read but not all arguments.
#[derive(Debug)]
struct Partial {
    /// Arguments still expected.
    remaining: usize,
    args: Vec<Vec<u8>>,
    /// Offset in the input of the next unread byte of this command.
    pos: usize,
    /// Length of the bulk whose `$len` line was read (its data starts at
    /// `pos`).
    bulk_len: Option<usize>,
}

/// Decodes client commands into argument vectors. See the module docs.
///
/// Progress on a partly received multibulk command is kept between calls
/// (arguments received so far are parsed once), so a command arriving in
/// many pieces costs time linear in its size, and a large bulk costs O(1)
/// per call until all of it is there.
///
/// Empty commands (a blank inline line, `*0`, `*-1`) are skipped: their
/// bytes are counted in the `consumed` of the next command. If only skipped
/// bytes are complete, the decoder returns them as an empty argument vector
/// (`Some((vec![], n))`) so the caller can drop them; treat it as a no-op
/// ([`crate::resp::execute`] does).
#[derive(Debug)]
pub struct CommandDecoder {
    max_bulk_len: usize,
    max_inline_len: usize,
    max_multibulk_len: usize,
    partial: Option<Partial>,
}

impl Default for CommandDecoder {
    fn default() -> Self {
        CommandDecoder::new()
    }
}

enum Line<'a> {
    Complete(&'a [u8], usize),
    Incomplete,
}

impl CommandDecoder {
    /// Redis's default limits.
    pub fn new() -> CommandDecoder {
        CommandDecoder {
            max_bulk_len: PROTO_MAX_BULK_LEN,
            max_inline_len: PROTO_INLINE_MAX_SIZE,
            max_multibulk_len: PROTO_MAX_MULTIBULK_LEN,
            partial: None,
        }
    }

    /// Largest accepted bulk argument (`proto-max-bulk-len`).
    pub fn with_max_bulk_len(mut self, max: usize) -> CommandDecoder {
        self.max_bulk_len = max;
        self
    }

    /// Longest inline line and `*`/`$` count line.
    pub fn with_max_inline_len(mut self, max: usize) -> CommandDecoder {
        self.max_inline_len = max;
        self
    }

    /// Most arguments per multibulk command.
    pub fn with_max_multibulk_len(mut self, max: usize) -> CommandDecoder {
        self.max_multibulk_len = max;
        self
    }

    /// Forget a partly received command (call when the input buffer is
    /// discarded).
    pub fn reset(&mut self) {
        self.partial = None;
    }

    /// A `*`/`$` count line at the start of `s`: the bytes before `\r`, and
    /// the line length including `\r\n`. Like Redis, the byte after `\r` is
    /// not checked.
    fn count_line<'s>(s: &'s [u8], max: usize, too_big: &str) -> Result<Line<'s>, CodecError> {
        let window = &s[..s.len().min(max.saturating_add(1))];
        match window.iter().position(|&b| b == b'\r') {
            Some(p) if p + 1 < s.len() => Ok(Line::Complete(&s[..p], p + 2)),
            Some(_) => Ok(Line::Incomplete),
            None if s.len() > max => Err(protocol(too_big)),
            None => Ok(Line::Incomplete),
        }
    }

    /// An inline command at the start of `s`.
    fn inline(&self, s: &[u8]) -> DecodeResult<Vec<Vec<u8>>> {
        let window = &s[..s.len().min(self.max_inline_len.saturating_add(1))];
        match window.iter().position(|&b| b == b'\n') {
            Some(p) => {
                let line = &s[..p];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match split_inline_args(line) {
                    Some(args) => Ok(Some((args, p + 1))),
                    None => Err(protocol(ERR_UNBALANCED)),
                }
            }
            None if s.len() > self.max_inline_len => Err(protocol(ERR_TOO_BIG_INLINE)),
            None => Ok(None),
        }
    }

    fn decode_inner(&mut self, src: &[u8]) -> DecodeResult<Vec<Vec<u8>>> {
        // Bytes of empty commands skipped in this call.
        let mut skipped = 0;
        let skip = |n: usize| if n > 0 { Some((Vec::new(), n)) } else { None };
        loop {
            if self.partial.is_none() {
                let s = &src[skipped..];
                let Some(&first) = s.first() else {
                    return Ok(skip(skipped));
                };
                if first != b'*' {
                    match self.inline(s)? {
                        None => return Ok(skip(skipped)),
                        Some((args, n)) if args.is_empty() => skipped += n,
                        Some((args, n)) => return Ok(Some((args, skipped + n))),
                    }
                    continue;
                }
                let (digits, line_len) =
                    match Self::count_line(s, self.max_inline_len, ERR_TOO_BIG_MBULK)? {
                        Line::Complete(l, n) => (&l[1..], n),
                        Line::Incomplete => return Ok(skip(skipped)),
                    };
                let count = match parse_i64(digits) {
                    Some(c) if c <= self.max_multibulk_len as i64 => c,
                    _ => return Err(protocol(ERR_INVALID_MBULK)),
                };
                if count <= 0 {
                    skipped += line_len;
                    continue;
                }
                let count = count as usize;
                self.partial = Some(Partial {
                    remaining: count,
                    // Never trust the claimed count for the allocation.
                    args: Vec::with_capacity(count.min(1024)),
                    pos: skipped + line_len,
                    bulk_len: None,
                });
            }
            let (max_inline, max_bulk) = (self.max_inline_len, self.max_bulk_len);
            let Some(p) = self.partial.as_mut() else {
                continue;
            };
            loop {
                if p.remaining == 0 {
                    let done = self.partial.take().expect("partial command");
                    return Ok(Some((done.args, done.pos)));
                }
                match p.bulk_len {
                    None => {
                        let s = &src[p.pos..];
                        let (line, line_len) =
                            match Self::count_line(s, max_inline, ERR_TOO_BIG_BULK)? {
                                Line::Complete(l, n) => (l, n),
                                Line::Incomplete => break,
                            };
                        match line.first() {
                            Some(b'$') => {}
                            Some(&c) => {
                                return Err(CodecError::Protocol(format!(
                                    "Protocol error: expected '$', got '{}'",
                                    char::from(c)
                                )))
                            }
                            // Line empty: the `\r` itself is where `$` should be.
                            None => return Err(protocol("Protocol error: expected '$', got '\r'")),
                        }
                        let len = match parse_i64(&line[1..]) {
                            Some(l) if l >= 0 && l as u64 <= max_bulk as u64 => l,
                            _ => return Err(protocol(ERR_INVALID_BULK)),
                        };
                        p.pos += line_len;
                        p.bulk_len = Some(len as usize);
                    }
                    Some(len) => {
                        let end = p.pos.saturating_add(len);
                        // Like Redis, the two bytes after the data (`\r\n`)
                        // are skipped unchecked.
                        if src.len() < end.saturating_add(2) {
                            break;
                        }
                        p.args.push(src[p.pos..end].to_vec());
                        p.pos = end + 2;
                        p.bulk_len = None;
                        p.remaining -= 1;
                    }
                }
            }
            // Incomplete. If empty commands were skipped first, hand their
            // bytes back now and rebase the partial command onto what the
            // caller's buffer will look like after dropping them.
            p.pos -= skipped;
            return Ok(skip(skipped));
        }
    }
}

impl Decoder for CommandDecoder {
    type Item = Vec<Vec<u8>>;

    fn decode(&mut self, src: &[u8]) -> DecodeResult<Vec<Vec<u8>>> {
        if let Some(p) = &self.partial {
            if p.pos > src.len() {
                // The caller did not keep its buffer; start over.
                self.partial = None;
            }
        }
        let r = self.decode_inner(src);
        if r.is_err() {
            self.partial = None;
        }
        r
    }
}

// ---------------------------------------------------------------------------
// Reply decoder (client side)

/// A decoded RESP2 value (owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`, a status reply such as `OK` (invalid UTF-8 is replaced
    /// lossily).
    Simple(String),
    /// `-text`, an error reply including its code, e.g. `ERR syntax error`
    /// (invalid UTF-8 is replaced lossily).
    Error(String),
    /// `:n`, a signed 64-bit integer.
    Integer(i64),
    /// `$len` and its bytes, exactly as sent.
    Bulk(Vec<u8>),
    /// `$-1`, the null bulk string (e.g. `GET` of a missing key).
    Null,
    /// `*n` and its `n` elements, in order.
    Array(Vec<Reply>),
    /// `*-1`, the null array.
    NullArray,
}

impl Reply {
    /// Encode back to bytes (for tests and proxies).
    pub fn write_to(&self, dst: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => write_simple(dst, s),
            Reply::Error(s) => write_error(dst, s),
            Reply::Integer(n) => write_int(dst, *n),
            Reply::Bulk(b) => write_bulk(dst, b),
            Reply::Null => write_null(dst),
            Reply::Array(items) => {
                write_array_header(dst, items.len());
                for r in items {
                    r.write_to(dst);
                }
            }
            Reply::NullArray => write_null_array(dst),
        }
    }
}

/// Decodes server replies. Finding where a reply ends is a resumable scan
/// that allocates nothing, so a large reply arriving in pieces is scanned
/// once; the value is built in one pass when it is complete.
#[derive(Debug)]
pub struct ReplyDecoder {
    max_bulk_len: usize,
    max_array_len: usize,
    max_line_len: usize,
    max_depth: usize,
    /// Resumable scan: offset of the next unscanned element, and the
    /// elements still expected at each open array level.
    scan_pos: usize,
    stack: Vec<usize>,
}

impl Default for ReplyDecoder {
    fn default() -> Self {
        ReplyDecoder::new()
    }
}

enum Elem {
    /// A complete leaf element ending at the offset.
    Leaf(usize),
    /// An array of this many (> 0) elements whose header ends at the offset.
    Array(usize, usize),
}

impl ReplyDecoder {
    /// A decoder with Redis's limits: bulk strings up to
    /// [`PROTO_MAX_BULK_LEN`] (512 MiB), arrays up to `i32::MAX` elements,
    /// type/length lines up to [`PROTO_INLINE_MAX_SIZE`] (64 KiB), arrays
    /// nested up to 128 deep.
    pub fn new() -> ReplyDecoder {
        ReplyDecoder {
            max_bulk_len: PROTO_MAX_BULK_LEN,
            max_array_len: i32::MAX as usize,
            max_line_len: PROTO_INLINE_MAX_SIZE,
            max_depth: 128,
            scan_pos: 0,
            stack: Vec::new(),
        }
    }

    /// Largest accepted bulk string, in bytes (default 512 MiB). A longer
    /// `$len` header fails with [`CodecError::FrameTooLarge`] before any of
    /// its bytes are buffered.
    pub fn with_max_bulk_len(mut self, max: usize) -> ReplyDecoder {
        self.max_bulk_len = max;
        self
    }

    /// Most elements accepted in one array (default `i32::MAX`). A larger
    /// `*n` header fails with [`CodecError::FrameTooLarge`].
    pub fn with_max_array_len(mut self, max: usize) -> ReplyDecoder {
        self.max_array_len = max;
        self
    }

    /// Deepest accepted nesting of arrays.
    pub fn with_max_depth(mut self, max: usize) -> ReplyDecoder {
        self.max_depth = max;
        self
    }

    /// Forget progress on a partly received reply. Call it when the input
    /// buffer is discarded (e.g. after reconnecting); not needed after a
    /// decode error, which resets the decoder itself.
    pub fn reset(&mut self) {
        self.scan_pos = 0;
        self.stack.clear();
    }

    /// The line starting at `pos` (without its type byte and `\r\n`) and the
    /// offset just past it.
    fn line<'s>(&self, src: &'s [u8], pos: usize) -> Result<Option<(&'s [u8], usize)>, CodecError> {
        let s = &src[pos..];
        let window = &s[..s.len().min(self.max_line_len + 2)];
        match super::line::find(window, b"\r\n", 0) {
            Some(p) => Ok(Some((&s[1..p], pos + p + 2))),
            None if s.len() >= self.max_line_len + 2 => Err(CodecError::FrameTooLarge {
                len: s.len() as u64,
                max: self.max_line_len,
            }),
            None => Ok(None),
        }
    }

    fn int(line: &[u8]) -> Result<i64, CodecError> {
        parse_i64(line).ok_or_else(|| {
            CodecError::Malformed(format!(
                "invalid integer {:?}",
                String::from_utf8_lossy(line)
            ))
        })
    }

    /// Parse the element header at `pos`.
    fn elem(&self, src: &[u8], pos: usize) -> Result<Option<Elem>, CodecError> {
        let Some(&ty) = src.get(pos) else {
            return Ok(None);
        };
        if !matches!(ty, b'+' | b'-' | b':' | b'$' | b'*') {
            return Err(CodecError::Malformed(format!(
                "unexpected RESP type byte {:?}",
                char::from(ty)
            )));
        }
        let Some((line, next)) = self.line(src, pos)? else {
            return Ok(None);
        };
        match ty {
            b'+' | b'-' => Ok(Some(Elem::Leaf(next))),
            b':' => Self::int(line).map(|_| Some(Elem::Leaf(next))),
            b'$' => {
                let n = Self::int(line)?;
                if n == -1 {
                    return Ok(Some(Elem::Leaf(next)));
                }
                if n < -1 {
                    return Err(CodecError::Malformed(format!("invalid bulk length {n}")));
                }
                if n as u64 > self.max_bulk_len as u64 {
                    return Err(CodecError::FrameTooLarge {
                        len: n as u64,
                        max: self.max_bulk_len,
                    });
                }
                let end = next + n as usize;
                if src.len() < end + 2 {
                    return Ok(None);
                }
                if &src[end..end + 2] != b"\r\n" {
                    return Err(CodecError::Malformed(
                        "bulk string not followed by CRLF".to_string(),
                    ));
                }
                Ok(Some(Elem::Leaf(end + 2)))
            }
            _ => {
                let n = Self::int(line)?;
                if n == -1 || n == 0 {
                    return Ok(Some(Elem::Leaf(next)));
                }
                if n < -1 {
                    return Err(CodecError::Malformed(format!("invalid array length {n}")));
                }
                if n as u64 > self.max_array_len as u64 {
                    return Err(CodecError::FrameTooLarge {
                        len: n as u64,
                        max: self.max_array_len,
                    });
                }
                Ok(Some(Elem::Array(n as usize, next)))
            }
        }
    }

    /// Resumable scan for the end of the first reply.
    fn scan(&mut self, src: &[u8]) -> Result<Option<usize>, CodecError> {
        if self.scan_pos > src.len() {
            self.reset();
        }
        loop {
            match self.elem(src, self.scan_pos)? {
                None => return Ok(None),
                Some(Elem::Array(n, next)) => {
                    if self.stack.len() >= self.max_depth {
                        return Err(CodecError::Malformed(format!(
                            "arrays nested deeper than {}",
                            self.max_depth
                        )));
                    }
                    self.stack.push(n);
                    self.scan_pos = next;
                }
                Some(Elem::Leaf(next)) => {
                    self.scan_pos = next;
                    loop {
                        match self.stack.last_mut() {
                            None => {
                                let end = self.scan_pos;
                                self.reset();
                                return Ok(Some(end));
                            }
                            Some(top) => {
                                *top -= 1;
                                if *top > 0 {
                                    break;
                                }
                                self.stack.pop();
                            }
                        }
                    }
                }
            }
        }
    }

    /// Build the value at `pos` of a reply known to be complete.
    fn build(&self, src: &[u8], pos: usize) -> Result<(Reply, usize), CodecError> {
        let incomplete = || CodecError::Malformed("reply changed while decoding".to_string());
        let (line, next) = self.line(src, pos)?.ok_or_else(incomplete)?;
        let text = || String::from_utf8_lossy(line).into_owned();
        match src[pos] {
            b'+' => Ok((Reply::Simple(text()), next)),
            b'-' => Ok((Reply::Error(text()), next)),
            b':' => Ok((Reply::Integer(Self::int(line)?), next)),
            b'$' => match Self::int(line)? {
                -1 => Ok((Reply::Null, next)),
                n => {
                    let end = next + n as usize;
                    Ok((Reply::Bulk(src[next..end].to_vec()), end + 2))
                }
            },
            _ => match Self::int(line)? {
                -1 => Ok((Reply::NullArray, next)),
                n => {
                    let mut items = Vec::with_capacity((n as usize).min(1024));
                    let mut at = next;
                    for _ in 0..n {
                        let (item, after) = self.build(src, at)?;
                        items.push(item);
                        at = after;
                    }
                    Ok((Reply::Array(items), at))
                }
            },
        }
    }
}

impl Decoder for ReplyDecoder {
    type Item = Reply;

    fn decode(&mut self, src: &[u8]) -> Result<Option<(Reply, usize)>, CodecError> {
        let end = match self.scan(src) {
            Ok(Some(end)) => end,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.reset();
                return Err(e);
            }
        };
        let (reply, n) = self.build(&src[..end], 0)?;
        debug_assert_eq!(n, end);
        Ok(Some((reply, end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::decode_chunked;
    use proptest::prelude::*;

    fn v(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn dec(src: &[u8]) -> DecodeResult<Vec<Vec<u8>>> {
        CommandDecoder::new().decode(src)
    }

    fn perr(msg: &str) -> CodecError {
        CodecError::Protocol(msg.to_string())
    }

    #[test]
    fn parse_i64_is_strict() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("1", 1),
            ("-1", -1),
            ("123456", 123456),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for (s, want) in ok {
            assert_eq!(parse_i64(s.as_bytes()), Some(*want), "{s}");
        }
        for s in [
            "",
            "-",
            "+1",
            "01",
            "-0",
            "00",
            " 1",
            "1 ",
            "1a",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
            "1.5",
            "0x10",
        ] {
            assert_eq!(parse_i64(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn writers() {
        let mut o = Vec::new();
        write_simple(&mut o, "OK");
        write_error(&mut o, "ERR bad\r\nthing");
        write_int(&mut o, -42);
        write_int(&mut o, i64::MIN);
        write_bulk(&mut o, b"hi");
        write_bulk(&mut o, b"");
        write_null(&mut o);
        write_array_header(&mut o, 3);
        write_null_array(&mut o);
        write_bulk_int(&mut o, -15);
        write_bulk_int(&mut o, 0);
        assert_eq!(
            String::from_utf8(o).unwrap(),
            "+OK\r\n-ERR bad  thing\r\n:-42\r\n:-9223372036854775808\r\n$2\r\nhi\r\n$0\r\n\r\n\
             $-1\r\n*3\r\n*-1\r\n$3\r\n-15\r\n$1\r\n0\r\n"
        );
        let mut buf = [0u8; 20];
        assert_eq!(format_u64(u64::MAX, &mut buf), b"18446744073709551615");
        assert_eq!(format_u64(0, &mut buf), b"0");
    }

    #[test]
    fn resp_value_encoding() {
        let val = RespValue::Array(vec![
            RespValue::Simple("OK"),
            RespValue::Error("ERR x"),
            RespValue::Integer(7),
            RespValue::Bulk(b"a\r\nb"),
            RespValue::Null,
            RespValue::Array(vec![]),
            RespValue::NullArray,
        ]);
        let mut o = Vec::new();
        ReplyEncoder.encode(&val, &mut o).unwrap();
        assert_eq!(
            o,
            b"*7\r\n+OK\r\n-ERR x\r\n:7\r\n$4\r\na\r\nb\r\n$-1\r\n*0\r\n*-1\r\n"
        );
    }

    #[test]
    fn write_protocol_error_format() {
        let mut o = Vec::new();
        write_protocol_error(&mut o, &perr(ERR_INVALID_BULK));
        assert_eq!(o, b"-ERR Protocol error: invalid bulk length\r\n");
    }

    #[test]
    fn multibulk_basic() {
        let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        assert_eq!(
            dec(wire).unwrap(),
            Some((v(&["SET", "k", "value"]), wire.len()))
        );
        // Binary-safe: CR/LF inside a bulk.
        let wire = b"*1\r\n$4\r\na\r\nb\r\n";
        assert_eq!(
            dec(wire).unwrap(),
            Some((vec![b"a\r\nb".to_vec()], wire.len()))
        );
        // Empty bulk.
        assert_eq!(dec(b"*1\r\n$0\r\n\r\n").unwrap(), Some((vec![vec![]], 10)));
    }

    #[test]
    fn multibulk_incomplete_at_every_prefix() {
        let wire = b"*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\n";
        for i in 0..wire.len() {
            assert_eq!(dec(&wire[..i]).unwrap(), None, "prefix {i}");
        }
        assert_eq!(
            dec(wire).unwrap(),
            Some((v(&["ECHO", "hello world"]), wire.len()))
        );
    }

    #[test]
    fn pipelined_commands_come_one_at_a_time() {
        let wire = b"*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        let mut d = CommandDecoder::new();
        let (a, n) = d.decode(wire).unwrap().unwrap();
        assert_eq!((a, n), (v(&["PING"]), 14));
        let (a, n2) = d.decode(&wire[n..]).unwrap().unwrap();
        assert_eq!((a, n2), (v(&["PING"]), 6));
        let (a, n3) = d.decode(&wire[n + n2..]).unwrap().unwrap();
        assert_eq!((a, n3), (v(&["PING"]), 14));
    }

    #[test]
    fn inline_commands() {
        assert_eq!(dec(b"PING\r\n").unwrap(), Some((v(&["PING"]), 6)));
        assert_eq!(dec(b"PING\n").unwrap(), Some((v(&["PING"]), 5)));
        assert_eq!(
            dec(b"  set  a   b \r\n").unwrap(),
            Some((v(&["set", "a", "b"]), 15))
        );
        assert_eq!(
            dec(b"set \"a b\" 'c d'\r\n").unwrap(),
            Some((v(&["set", "a b", "c d"]), 17))
        );
        assert_eq!(dec(b"PING").unwrap(), None);
        assert_eq!(dec(b"PING\r").unwrap(), None);
    }

    #[test]
    fn inline_quoting_rules() {
        type Case<'a> = (&'a [u8], Option<Vec<Vec<u8>>>);
        let cases: &[Case] = &[
            (b"a b", Some(vec![b"a".to_vec(), b"b".to_vec()])),
            (b"\"\\x41\\x4a\\x4A\"", Some(vec![b"AJJ".to_vec()])),
            (b"\"\\xZZ\"", Some(vec![b"xZZ".to_vec()])),
            (
                b"\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"",
                Some(vec![b"\n\r\t\x08\x07\\\"q".to_vec()]),
            ),
            (b"'it\\'s'", Some(vec![b"it's".to_vec()])),
            (b"'a\\nb'", Some(vec![b"a\\nb".to_vec()])),
            (b"\"\"", Some(vec![vec![]])),
            (b"''", Some(vec![vec![]])),
            (b"foo\"bar baz\"", Some(vec![b"foobar baz".to_vec()])),
            (b"\"a\"\t\"b\"", Some(vec![b"a".to_vec(), b"b".to_vec()])),
            (b"\"abc", None),
            (b"'abc", None),
            (b"\"abc\"x", None),
            (b"'abc'x", None),
            (b"\"abc\\\"", None),
            (b"a\x00b c", Some(vec![b"a".to_vec()])),
            (b"a\x0bb", Some(vec![b"a\x0bb".to_vec()])),
            (b"\x0b\x0ca", Some(vec![b"a".to_vec()])),
            (b"   ", Some(vec![])),
            (b"", Some(vec![])),
        ];
        for (line, want) in cases {
            assert_eq!(
                &split_inline_args(line),
                want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn unbalanced_quotes_error() {
        assert_eq!(dec(b"set \"a b\r\n").unwrap_err(), perr(ERR_UNBALANCED));
        assert_eq!(
            dec(b"set \"a b\r\n").unwrap_err().to_string(),
            "Protocol error: unbalanced quotes in request"
        );
    }

    #[test]
    fn empty_commands_are_skipped() {
        assert_eq!(dec(b"\r\n").unwrap(), Some((vec![], 2)));
        assert_eq!(dec(b"\r\n\n   \r\n").unwrap(), Some((vec![], 8)));
        assert_eq!(dec(b"*0\r\n").unwrap(), Some((vec![], 4)));
        assert_eq!(dec(b"*-1\r\n").unwrap(), Some((vec![], 5)));
        assert_eq!(dec(b"*-7\r\n").unwrap(), Some((vec![], 5)));
        // Skipped bytes are folded into the next command.
        assert_eq!(
            dec(b"\r\n*0\r\nPING\r\n").unwrap(),
            Some((v(&["PING"]), 12))
        );
        assert_eq!(
            dec(b"*0\r\n*1\r\n$4\r\nPING\r\n").unwrap(),
            Some((v(&["PING"]), 18))
        );
        assert_eq!(dec(b"").unwrap(), None);
    }

    #[test]
    fn skipped_bytes_then_partial_command_rebases() {
        let mut d = CommandDecoder::new();
        let wire = b"\r\n*0\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n";
        // Empty commands, then a partial one.
        let (args, n) = d.decode(&wire[..20]).unwrap().unwrap();
        assert!(args.is_empty());
        assert_eq!(n, 6);
        let rest = &wire[n..];
        assert_eq!(d.decode(&rest[..16]).unwrap(), None);
        assert_eq!(
            d.decode(rest).unwrap(),
            Some((v(&["ECHO", "hi"]), rest.len()))
        );
    }

    #[test]
    fn protocol_errors_have_redis_text() {
        let big_line = vec![b'a'; PROTO_INLINE_MAX_SIZE + 1];
        let mut star = b"*".to_vec();
        star.extend_from_slice(&[b'1'; PROTO_INLINE_MAX_SIZE]);
        let mut dollar = b"*1\r\n$".to_vec();
        dollar.extend_from_slice(&[b'1'; PROTO_INLINE_MAX_SIZE]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (big_line, "Protocol error: too big inline request"),
            (star, "Protocol error: too big mbulk count string"),
            (dollar, "Protocol error: too big bulk count string"),
            (
                b"*1048577\r\n".to_vec(),
                "Protocol error: invalid multibulk length",
            ),
            (
                b"*abc\r\n".to_vec(),
                "Protocol error: invalid multibulk length",
            ),
            (
                b"*\r\n".to_vec(),
                "Protocol error: invalid multibulk length",
            ),
            (
                b"*+1\r\n".to_vec(),
                "Protocol error: invalid multibulk length",
            ),
            (
                b"*99999999999999999999999\r\n".to_vec(),
                "Protocol error: invalid multibulk length",
            ),
            (
                b"*1\r\n$-1\r\n".to_vec(),
                "Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$x\r\n".to_vec(),
                "Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$\r\n".to_vec(),
                "Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$536870913\r\n".to_vec(),
                "Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$9223372036854775808\r\n".to_vec(),
                "Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n:1\r\n".to_vec(),
                "Protocol error: expected '$', got ':'",
            ),
            (
                b"*2\r\n$1\r\na\r\nPING\r\n".to_vec(),
                "Protocol error: expected '$', got 'P'",
            ),
            (
                b"*1\r\n\r\n".to_vec(),
                "Protocol error: expected '$', got '\r'",
            ),
            (
                b"PING \"x\r\n".to_vec(),
                "Protocol error: unbalanced quotes in request",
            ),
        ];
        for (wire, msg) in cases {
            let err = dec(&wire).unwrap_err();
            assert_eq!(
                err,
                perr(msg),
                "{:?}",
                String::from_utf8_lossy(&wire[..wire.len().min(40)])
            );
            assert_eq!(err.to_string(), msg);
        }
        // The exact limits themselves are accepted.
        assert_eq!(dec(&vec![b'a'; PROTO_INLINE_MAX_SIZE]).unwrap(), None);
        assert_eq!(dec(b"*1048576\r\n").unwrap(), None);
        assert_eq!(dec(b"*1\r\n$536870912\r\n").unwrap(), None);
    }

    #[test]
    fn configurable_bulk_limit() {
        let mut d = CommandDecoder::new().with_max_bulk_len(4);
        assert_eq!(
            d.decode(b"*1\r\n$4\r\nabcd\r\n").unwrap(),
            Some((v(&["abcd"]), 14))
        );
        assert_eq!(
            d.decode(b"*1\r\n$5\r\n").unwrap_err(),
            perr(ERR_INVALID_BULK)
        );
        let mut d = CommandDecoder::new()
            .with_max_multibulk_len(2)
            .with_max_inline_len(8);
        assert_eq!(d.decode(b"*3\r\n").unwrap_err(), perr(ERR_INVALID_MBULK));
        assert_eq!(
            d.decode(b"123456789").unwrap_err(),
            perr(ERR_TOO_BIG_INLINE)
        );
        assert_eq!(d.decode(b"12345678").unwrap(), None);
    }

    #[test]
    fn huge_claims_do_not_allocate() {
        let mut d = CommandDecoder::new();
        assert_eq!(d.decode(b"*1048576\r\n$3\r\nfoo\r\n").unwrap(), None);
        let p = d.partial.as_ref().unwrap();
        assert!(p.args.capacity() <= 1024);
        assert_eq!(p.args.len(), 1);
        let mut d = CommandDecoder::new();
        assert_eq!(d.decode(b"*1\r\n$536870912\r\nabc").unwrap(), None);
        assert_eq!(d.partial.as_ref().unwrap().bulk_len, Some(536870912));
        // $ length 2^63 and beyond are errors right away.
        for wire in [
            &b"*1\r\n$9223372036854775807\r\n"[..],
            b"*1\r\n$18446744073709551616\r\n",
            b"*9223372036854775807\r\n",
            b"*2147483648\r\n",
        ] {
            assert!(CommandDecoder::new().decode(wire).is_err());
        }
        // With an unbounded bulk limit, a claimed 2^63-1 still allocates
        // nothing and just waits.
        let mut d = CommandDecoder::new().with_max_bulk_len(usize::MAX);
        assert_eq!(
            d.decode(b"*1\r\n$9223372036854775807\r\nabc").unwrap(),
            None
        );
    }

    #[test]
    fn large_bulk_in_small_chunks_is_linear() {
        // 8 MiB argument fed 1 KiB at a time: each call is O(1) once the
        // header is parsed (this would take minutes if it rescanned).
        let payload = vec![b'x'; 8 << 20];
        let mut wire = Vec::new();
        write_command(&mut wire, &[&b"SET"[..], b"k", &payload]);
        let mut d = CommandDecoder::new();
        let mut got = None;
        for end in (1024..wire.len()).step_by(1024).chain([wire.len()]) {
            if let Some(r) = d.decode(&wire[..end]).unwrap() {
                got = Some(r);
                break;
            }
        }
        let (args, n) = got.unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(args[2].len(), payload.len());
    }

    #[test]
    fn many_args_in_small_chunks() {
        let args: Vec<Vec<u8>> = (0..50_000).map(|i| format!("k{i}").into_bytes()).collect();
        let mut wire = Vec::new();
        write_command(&mut wire, &args);
        let mut d = CommandDecoder::new();
        let mut got = None;
        for end in (100..wire.len()).step_by(100).chain([wire.len()]) {
            if let Some(r) = d.decode(&wire[..end]).unwrap() {
                got = Some(r);
                break;
            }
        }
        assert_eq!(got.unwrap(), (args, wire.len()));
    }

    #[test]
    fn reset_and_shrunk_buffer() {
        let mut d = CommandDecoder::new();
        assert_eq!(d.decode(b"*2\r\n$1\r\na\r\n").unwrap(), None);
        d.reset();
        assert_eq!(d.decode(b"PING\r\n").unwrap(), Some((v(&["PING"]), 6)));
        assert_eq!(d.decode(b"*2\r\n$1\r\na\r\n$1\r").unwrap(), None);
        // Misuse: a shorter buffer than before restarts instead of panicking.
        assert_eq!(d.decode(b"*1\r\n").unwrap(), None);
        assert_eq!(
            d.decode(b"*1\r\n$1\r\nb\r\n").unwrap(),
            Some((v(&["b"]), 11))
        );
    }

    #[test]
    fn reply_decoder_basics() {
        let mut d = ReplyDecoder::new();
        let wire = b"*3\r\n+OK\r\n*2\r\n:1\r\n$-1\r\n$3\r\nabc\r\n";
        for i in 0..wire.len() {
            assert_eq!(d.decode(&wire[..i]).unwrap(), None, "prefix {i}");
        }
        assert_eq!(
            d.decode(wire).unwrap(),
            Some((
                Reply::Array(vec![
                    Reply::Simple("OK".into()),
                    Reply::Array(vec![Reply::Integer(1), Reply::Null]),
                    Reply::Bulk(b"abc".to_vec()),
                ]),
                wire.len()
            ))
        );
        assert_eq!(
            d.decode(b"-ERR x\r\n*-1\r\n").unwrap(),
            Some((Reply::Error("ERR x".into()), 8))
        );
        assert_eq!(d.decode(b"*-1\r\n").unwrap(), Some((Reply::NullArray, 5)));
        assert_eq!(
            d.decode(b"*0\r\n").unwrap(),
            Some((Reply::Array(vec![]), 4))
        );
        assert!(d.decode(b"?\r\n").is_err());
        assert!(d.decode(b":x\r\n").is_err());
        assert!(d.decode(b"$3\r\nabcde").is_err());
        assert!(d.decode(b"$-2\r\n").is_err());
        assert!(ReplyDecoder::new()
            .with_max_bulk_len(2)
            .decode(b"$3\r\n")
            .is_err());
        let deep = "*1\r\n".repeat(200);
        assert!(ReplyDecoder::new().decode(deep.as_bytes()).is_err());
    }

    /// Inline encoding of arbitrary bytes: every argument double-quoted.
    fn write_inline(dst: &mut Vec<u8>, args: &[Vec<u8>]) {
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                dst.push(b' ');
            }
            dst.push(b'"');
            for &b in a {
                match b {
                    b'"' | b'\\' => dst.extend_from_slice(&[b'\\', b]),
                    0x21..=0x7e | b' ' => dst.push(b),
                    _ => dst.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                }
            }
            dst.push(b'"');
        }
        dst.extend_from_slice(b"\r\n");
    }

    fn arb_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..20),
                prop::collection::vec(
                    prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), Just(b'*')],
                    0..5
                ),
                prop::collection::vec(any::<u8>(), 100..400),
            ],
            1..6,
        )
    }

    /// A client's command stream: commands, some inline, with blank lines
    /// and empty multibulks sprinkled in.
    #[derive(Debug, Clone)]
    enum Piece {
        Multi(Vec<Vec<u8>>),
        Inline(Vec<Vec<u8>>),
        Blank,
        EmptyMulti,
    }

    fn arb_piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            6 => arb_args().prop_map(Piece::Multi),
            3 => arb_args().prop_map(Piece::Inline),
            1 => Just(Piece::Blank),
            1 => Just(Piece::EmptyMulti),
        ]
    }

    proptest! {
        #[test]
        fn prop_command_roundtrip(pieces in prop::collection::vec(arb_piece(), 0..12),
                                  cuts in prop::collection::vec(0usize..4000, 0..40)) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for p in &pieces {
                match p {
                    Piece::Multi(a) => { write_command(&mut wire, a); want.push(a.clone()); }
                    Piece::Inline(a) => { write_inline(&mut wire, a); want.push(a.clone()); }
                    Piece::Blank => wire.extend_from_slice(b"\r\n"),
                    Piece::EmptyMulti => wire.extend_from_slice(b"*0\r\n"),
                }
            }
            let mut d = CommandDecoder::new();
            let (got, rest) = decode_chunked(&mut d, &wire, &cuts).unwrap();
            let got: Vec<_> = got.into_iter().filter(|a| !a.is_empty()).collect();
            prop_assert_eq!(got, want);
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn prop_reply_roundtrip(vals in prop::collection::vec(arb_reply(), 0..8),
                                cuts in prop::collection::vec(0usize..3000, 0..30)) {
            let mut wire = Vec::new();
            for r in &vals {
                r.write_to(&mut wire);
            }
            let mut d = ReplyDecoder::new();
            let (got, rest) = decode_chunked(&mut d, &wire, &cuts).unwrap();
            prop_assert_eq!(got, vals);
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn prop_garbage_never_panics(bytes in prop::collection::vec(
                                         prop_oneof![Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'),
                                                     Just(b'1'), Just(b'-'), Just(b'"'), any::<u8>()], 0..200),
                                     cuts in prop::collection::vec(0usize..200, 0..10)) {
            let _ = decode_chunked(&mut CommandDecoder::new(), &bytes, &cuts);
            let _ = decode_chunked(&mut ReplyDecoder::new(), &bytes, &cuts);
        }
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        let text = "[a-zA-Z0-9 _.:-]{0,20}";
        let leaf = prop_oneof![
            text.prop_map(Reply::Simple),
            text.prop_map(Reply::Error),
            any::<i64>().prop_map(Reply::Integer),
            prop::collection::vec(any::<u8>(), 0..50).prop_map(Reply::Bulk),
            Just(Reply::Null),
            Just(Reply::NullArray),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop::collection::vec(inner, 0..6).prop_map(Reply::Array)
        })
    }
}
