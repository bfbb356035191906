//! Response serialisation (RFC 9112 §4, §6, §7; RFC 9110 §6.6, §15).
//!
//! Everything appends to a caller-owned `Vec<u8>` (normally the connection's
//! output buffer), so writing a response allocates nothing once that buffer
//! has grown. The date comes from a [`DateCache`] refreshed by the event
//! loop's once-a-second timer rather than formatted per response.

use std::time::{SystemTime, UNIX_EPOCH};

use super::error::HttpError;
use super::parse::is_token;

/// The server's name, as a literal (so the cached field line below can be
/// built from it at compile time).
macro_rules! server_name {
    () => {
        "evnet"
    };
}

/// Value of the `Server` field on every response.
pub const SERVER: &str = server_name!();

/// The standard reason phrase for a status code (RFC 9110 §15), or `""`
/// for unregistered codes (the reason phrase is optional on the wire).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

// ---------------------------------------------------------------------------
// Dates.

/// Latest instant an IMF-fixdate can express: 9999-12-31T23:59:59Z.
const MAX_DATE_SECS: u64 = 253_402_300_799;

const DAY_NAMES: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
pub(crate) const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Proleptic Gregorian (year, month 1-12, day 1-31) of a day count relative
/// to 1970-01-01, using the era-based civil-from-days method (400-year eras
/// of 146097 days, years starting in March so the leap day comes last).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // shift epoch to 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Inverse of [`civil_from_days`]: days since 1970-01-01 of a valid date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn two_digits(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Formats seconds since the Unix epoch as an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7). Instants past
/// 9999-12-31T23:59:59 are clamped to it.
pub fn format_imf_fixdate(secs: u64, out: &mut [u8; 29]) {
    let secs = secs.min(MAX_DATE_SECS);
    let days = (secs / 86_400) as i64;
    let sod = (secs % 86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
    let wday = (days + 4).rem_euclid(7) as usize;
    out[..3].copy_from_slice(DAY_NAMES[wday]);
    out[3..5].copy_from_slice(b", ");
    two_digits(&mut out[5..7], day);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTH_NAMES[(month - 1) as usize]);
    out[11] = b' ';
    let year = year as u32;
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    out[16] = b' ';
    two_digits(&mut out[17..19], sod / 3600);
    out[19] = b':';
    two_digits(&mut out[20..22], sod / 60 % 60);
    out[22] = b':';
    two_digits(&mut out[23..25], sod % 60);
    out[25..29].copy_from_slice(b" GMT");
}

/// Seconds since the Unix epoch, with times before it clamped to 0.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The current `Date` field value, reformatted at most once per second.
///
/// The event loop owns one per thread and calls [`DateCache::refresh`] from a
/// one-second timer (or before each batch of writes); responses copy the 29
/// cached bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateCache {
    secs: u64,
    /// `Server: evnet\r\nDate: <IMF-fixdate>\r\n`, the two fields every
    /// final response starts with.
    lines: [u8; SERVER_AND_DATE_LEN],
}

const SERVER_AND_DATE_PREFIX: &[u8] = concat!("Server: ", server_name!(), "\r\nDate: ").as_bytes();
const SERVER_AND_DATE_LEN: usize = SERVER_AND_DATE_PREFIX.len() + 29 + 2;

impl DateCache {
    /// A cache holding the current time.
    pub fn new() -> Self {
        Self::at(SystemTime::now())
    }

    /// A cache holding `now`.
    pub fn at(now: SystemTime) -> Self {
        let mut lines = [0u8; SERVER_AND_DATE_LEN];
        lines[..SERVER_AND_DATE_PREFIX.len()].copy_from_slice(SERVER_AND_DATE_PREFIX);
        lines[SERVER_AND_DATE_LEN - 2..].copy_from_slice(b"\r\n");
        let mut cache = DateCache { secs: 0, lines };
        cache.set(unix_secs(now));
        cache
    }

    fn set(&mut self, secs: u64) {
        self.secs = secs;
        let start = SERVER_AND_DATE_PREFIX.len();
        let text: &mut [u8; 29] = (&mut self.lines[start..start + 29])
            .try_into()
            .expect("29-byte date slot");
        format_imf_fixdate(secs, text);
    }

    /// Updates the cached date to `now`; returns whether the text changed.
    /// Cheap when called again within the same second.
    pub fn refresh(&mut self, now: SystemTime) -> bool {
        let secs = unix_secs(now);
        if secs == self.secs {
            return false;
        }
        self.set(secs);
        true
    }

    /// The IMF-fixdate bytes.
    pub fn as_bytes(&self) -> &[u8] {
        let start = SERVER_AND_DATE_PREFIX.len();
        &self.lines[start..start + 29]
    }

    /// The `Server` and `Date` field lines, CRLF-terminated.
    pub(crate) fn server_and_date(&self) -> &[u8] {
        &self.lines
    }

    /// The IMF-fixdate text.
    pub fn as_str(&self) -> &str {
        // Always ASCII by construction.
        std::str::from_utf8(self.as_bytes()).unwrap_or("Thu, 01 Jan 1970 00:00:00 GMT")
    }
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------
// Heads.

/// How the caller must send the body of a response whose head was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// The response has no body (1xx, 204, 304); send nothing.
    None,
    /// Send exactly this many bytes (unless answering HEAD).
    Length(u64),
    /// Send chunks with [`write_chunk`] and finish with [`write_last_chunk`]
    /// (unless answering HEAD).
    Chunked,
    /// HTTP/1.0 response of unknown length: send the bytes, then close.
    UntilClose,
}

/// What [`write_head`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// How to send the body.
    pub body: BodyFraming,
    /// Whether the connection stays open after this response. May be `false`
    /// even if keep-alive was requested (close-delimited HTTP/1.0 body).
    pub keep_alive: bool,
}

/// Appends the decimal form of `v`.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_hex(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_status_line(out: &mut Vec<u8>, status: u16) {
    if status == 200 {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    let status = status.clamp(100, 999);
    let phrase = reason_phrase(status).as_bytes();
    let digits = [
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&digits);
    out.extend_from_slice(phrase);
    out.extend_from_slice(b"\r\n");
}

/// Fields the writer generates itself; caller-supplied copies are dropped so
/// that framing can never be contradicted.
fn is_managed(name: &str) -> bool {
    let n = name.as_bytes();
    match n.len() {
        4 => n.eq_ignore_ascii_case(b"date"),
        6 => n.eq_ignore_ascii_case(b"server"),
        10 => n.eq_ignore_ascii_case(b"connection"),
        14 => n.eq_ignore_ascii_case(b"content-length"),
        17 => n.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    }
}

/// Bytes allowed in a field value we emit: HTAB, SP and visible characters
/// (obs-text included); no CR, LF, NUL or other controls.
const FIELD_VALUE_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b == b'\t' as usize || (b >= 0x20 && b != 0x7f);
        b += 1;
    }
    t
};

/// A field line that is safe to emit: token name, value without CR, LF, NUL
/// or other controls (except HTAB). Guards against response splitting.
fn is_valid_field(name: &str, value: &[u8]) -> bool {
    is_token(name.as_bytes()) && value.iter().all(|&b| FIELD_VALUE_BYTE[b as usize])
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Caller-supplied field lines, checked and formatted once when added, so a
/// response head built from them is a few copies.
///
/// Invalid fields (see [`write_head`]) and the fields the writer manages
/// itself (`Content-Length`, `Transfer-Encoding`, `Connection`, `Date`,
/// `Server`) are dropped on [`FieldLines::push`].
#[derive(Debug, Clone, Default)]
pub struct FieldLines {
    lines: Vec<u8>,
}

impl FieldLines {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name: value` if it is valid and not managed by the writer;
    /// returns whether it was added.
    pub fn push(&mut self, name: &str, value: &[u8]) -> bool {
        let keep = is_valid_field(name, value) && !is_managed(name);
        if keep {
            push_field(&mut self.lines, name, value);
        }
        keep
    }

    /// Adds a complete, known-good field line (`name: value\r\n`) without
    /// checking it: for the constant fields the server itself sets.
    pub(crate) fn push_line(&mut self, line: &'static [u8]) {
        debug_assert!(line.ends_with(b"\r\n"));
        self.lines.extend_from_slice(line);
    }

    /// Adds complete field lines (each `name: value\r\n`) without checking
    /// them: for fields the server itself formatted from values it made
    /// (a cached file's validators and type).
    pub(crate) fn push_trusted(&mut self, lines: &[u8]) {
        debug_assert!(lines.is_empty() || lines.ends_with(b"\r\n"));
        self.lines.extend_from_slice(lines);
    }

    /// Removes every field (keeping the allocation).
    pub fn clear(&mut self) {
        self.lines.clear();
    }

    /// Whether no field was added.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The formatted lines, each ending in CRLF.
    pub fn as_bytes(&self) -> &[u8] {
        &self.lines
    }
}

/// Appends a response head to `out` and says how to send the body.
///
/// * The status line is always `HTTP/1.1` (RFC 9110 §6.2: a server sends its
///   highest conformant version), also to HTTP/1.0 clients (`version == 0`).
/// * 1xx heads contain the status line and `headers` only.
/// * Otherwise `Server: evnet` and `Date` are added, then `headers` (any
///   `Content-Length`, `Transfer-Encoding`, `Connection`, `Date` or `Server`
///   among them is dropped, as is any field with an invalid name or a value
///   containing control characters), then the framing:
///   - 204 and 304: no `Content-Length`, no `Transfer-Encoding`, no body;
///   - `body_len == Some(n)`: `Content-Length: n`;
///   - `body_len == None`: `Transfer-Encoding: chunked` for HTTP/1.1 clients;
///     for HTTP/1.0 clients the body is delimited by closing the connection.
/// * `Connection: close` if the connection will close; `Connection:
///   keep-alive` for a persistent HTTP/1.0 connection.
///
/// For a HEAD request pass the length the GET response would have (or
/// `None`) and send no body: the head is identical to GET's (RFC 9110 §9.3.2).
pub fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &[u8])],
    body_len: Option<u64>,
    date: &DateCache,
    keep_alive: bool,
    version: u8,
) -> Framing {
    if (100..200).contains(&status) {
        push_status_line(out, status);
        for (name, value) in headers {
            if is_valid_field(name, value) {
                push_field(out, name, value);
            }
        }
        out.extend_from_slice(b"\r\n");
        return Framing {
            body: BodyFraming::None,
            keep_alive,
        };
    }
    write_final_head(out, status, body_len, date, keep_alive, version, |out| {
        for (name, value) in headers {
            if is_valid_field(name, value) && !is_managed(name) {
                push_field(out, name, value);
            }
        }
    })
}

/// [`write_head`] for a final (non-1xx) status whose fields were checked
/// when they were collected.
pub fn write_head_lines(
    out: &mut Vec<u8>,
    status: u16,
    fields: &FieldLines,
    body_len: Option<u64>,
    date: &DateCache,
    keep_alive: bool,
    version: u8,
) -> Framing {
    write_final_head(out, status, body_len, date, keep_alive, version, |out| {
        out.extend_from_slice(fields.as_bytes())
    })
}

/// The head of a final response; `fields` appends the caller's field lines.
fn write_final_head(
    out: &mut Vec<u8>,
    status: u16,
    body_len: Option<u64>,
    date: &DateCache,
    keep_alive: bool,
    version: u8,
    fields: impl FnOnce(&mut Vec<u8>),
) -> Framing {
    push_status_line(out, status);
    out.extend_from_slice(date.server_and_date());
    fields(out);
    let mut keep_alive = keep_alive;
    let body = if status == 204 || status == 304 || status < 200 {
        BodyFraming::None
    } else {
        match body_len {
            Some(n) => {
                out.extend_from_slice(b"Content-Length: ");
                push_u64(out, n);
                out.extend_from_slice(b"\r\n");
                BodyFraming::Length(n)
            }
            None if version >= 1 => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                BodyFraming::Chunked
            }
            None => {
                keep_alive = false;
                BodyFraming::UntilClose
            }
        }
    };
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if version == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Framing { body, keep_alive }
}

/// Appends a complete response with a body held in memory. The body is
/// omitted for HEAD (`head_request`) and for statuses that have none.
#[allow(clippy::too_many_arguments)]
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &[u8])],
    body: &[u8],
    date: &DateCache,
    keep_alive: bool,
    version: u8,
    head_request: bool,
) -> Framing {
    let f = write_head(
        out,
        status,
        headers,
        Some(body.len() as u64),
        date,
        keep_alive,
        version,
    );
    if !head_request && f.body != BodyFraming::None {
        out.extend_from_slice(body);
    }
    f
}

/// Appends `HTTP/1.1 100 Continue` (RFC 9110 §15.2.1).
pub fn write_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// Appends one chunk (RFC 9112 §7.1). Empty data writes nothing, since an
/// empty chunk would end the body.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    push_hex(out, data.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and an empty trailer section.
pub fn write_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// Appends a small `text/plain` error response for `err`: the status line
/// uses the standard reason phrase, the body says `err.reason`. Adds
/// `Connection: close` when `err.close` or `!keep_alive`. The body is left
/// out (headers unchanged) when answering a HEAD request.
pub fn write_error_response(
    out: &mut Vec<u8>,
    err: &HttpError,
    date: &DateCache,
    keep_alive: bool,
    version: u8,
    head_request: bool,
) -> Framing {
    let phrase = reason_phrase(err.status);
    let len = phrase.len() + err.reason.len() + 7; // "NNN " + phrase + ": " + reason + "\n"
    let f = write_head(
        out,
        err.status,
        &[("Content-Type", b"text/plain; charset=utf-8")],
        Some(len as u64),
        date,
        keep_alive && !err.close,
        version,
    );
    if f.body != BodyFraming::None && !head_request {
        push_u64(out, u64::from(err.status.clamp(100, 999)));
        out.push(b' ');
        out.extend_from_slice(phrase.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(err.reason.as_bytes());
        out.push(b'\n');
    }
    f
}

/// A complete error response for `err` as a fresh buffer (see
/// [`write_error_response`]), for an HTTP/1.1 non-HEAD request; the
/// connection is kept only if `!err.close`. Meant for the rare error path
/// (e.g. a request the parser rejected); the hot path should use
/// [`write_error_response`] into the connection's output buffer.
pub fn error_response(err: &HttpError, date: &DateCache) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    write_error_response(&mut out, err, date, !err.close, 1, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proto::body::ChunkedDecoder;
    use crate::http::proto::limits::Limits;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn date_str(secs: u64) -> String {
        let mut b = [0u8; 29];
        format_imf_fixdate(secs, &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn text(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn formats_known_dates() {
        let table = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_234_567_890, "Fri, 13 Feb 2009 23:31:30 GMT"),
            (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 GMT"),
            (1_709_251_199, "Thu, 29 Feb 2024 23:59:59 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, expected) in table {
            assert_eq!(date_str(secs), expected, "{secs}");
        }
    }

    #[test]
    fn civil_conversions_match_naive_day_counting() {
        let mut days = 0i64;
        for year in 1970..2500i64 {
            for month in 1..=12u32 {
                let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
                let len = match month {
                    4 | 6 | 9 | 11 => 30,
                    2 if leap => 29,
                    2 => 28,
                    _ => 31,
                };
                for day in 1..=len {
                    assert_eq!(civil_from_days(days), (year, month, day));
                    assert_eq!(days_from_civil(year, month, day), days);
                    days += 1;
                }
            }
        }
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn date_cache_refreshes_once_per_second() {
        let mut d = DateCache::at(at(784_111_777));
        assert_eq!(d.as_str(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(!d.refresh(at(784_111_777) + Duration::from_millis(999)));
        assert!(d.refresh(at(784_111_778)));
        assert_eq!(d.as_bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
        // Clocks before the epoch clamp instead of panicking.
        assert!(d.refresh(UNIX_EPOCH - Duration::from_secs(5)));
        assert_eq!(d.as_str(), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    fn date() -> DateCache {
        DateCache::at(at(784_111_777))
    }

    fn head(
        status: u16,
        headers: &[(&str, &[u8])],
        len: Option<u64>,
        keep_alive: bool,
        version: u8,
    ) -> (String, Framing) {
        let mut out = Vec::new();
        let f = write_head(&mut out, status, headers, len, &date(), keep_alive, version);
        (String::from_utf8_lossy(&out).into_owned(), f)
    }

    const D: &str = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

    #[test]
    fn writes_head_with_content_length() {
        let (h, f) = head(200, &[("Content-Type", b"text/plain")], Some(5), true, 1);
        assert_eq!(
            h,
            format!("HTTP/1.1 200 OK\r\nServer: evnet\r\n{D}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n")
        );
        assert_eq!(
            f,
            Framing {
                body: BodyFraming::Length(5),
                keep_alive: true
            }
        );
    }

    #[test]
    fn writes_connection_close_when_closing() {
        let (h, f) = head(404, &[], Some(0), false, 1);
        assert_eq!(
            h,
            format!("HTTP/1.1 404 Not Found\r\nServer: evnet\r\n{D}Content-Length: 0\r\nConnection: close\r\n\r\n")
        );
        assert!(!f.keep_alive);
    }

    #[test]
    fn http10_keep_alive_gets_connection_keep_alive() {
        let (h, f) = head(200, &[], Some(2), true, 0);
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(h.ends_with("Content-Length: 2\r\nConnection: keep-alive\r\n\r\n"));
        assert!(f.keep_alive);
    }

    #[test]
    fn unknown_length_is_chunked_for_http11() {
        let (h, f) = head(200, &[], None, true, 1);
        assert!(h.ends_with("Transfer-Encoding: chunked\r\n\r\n"));
        assert!(!h.contains("Content-Length"));
        assert_eq!(
            f,
            Framing {
                body: BodyFraming::Chunked,
                keep_alive: true
            }
        );
    }

    #[test]
    fn unknown_length_closes_for_http10() {
        let (h, f) = head(200, &[], None, true, 0);
        assert!(!h.contains("Transfer-Encoding") && !h.contains("Content-Length"));
        assert!(h.ends_with("Connection: close\r\n\r\n"));
        assert_eq!(
            f,
            Framing {
                body: BodyFraming::UntilClose,
                keep_alive: false
            }
        );
    }

    #[test]
    fn no_body_statuses_have_no_framing_fields() {
        for status in [204, 304] {
            for len in [Some(10), None] {
                let (h, f) = head(status, &[], len, true, 1);
                assert!(!h.contains("Content-Length"), "{status} {h}");
                assert!(!h.contains("Transfer-Encoding"), "{status} {h}");
                assert_eq!(f.body, BodyFraming::None);
                assert!(f.keep_alive);
            }
        }
    }

    #[test]
    fn informational_head_is_minimal() {
        let (h, f) = head(
            101,
            &[("Upgrade", b"websocket"), ("Connection", b"Upgrade")],
            Some(3),
            true,
            1,
        );
        assert_eq!(
            h,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        );
        assert_eq!(f.body, BodyFraming::None);
        let mut out = Vec::new();
        write_continue(&mut out);
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn drops_managed_and_unsafe_fields() {
        let (h, _) = head(
            200,
            &[
                ("content-length", b"999"),
                ("Transfer-Encoding", b"chunked"),
                ("Connection", b"keep-alive"),
                ("Date", b"yesterday"),
                ("Server", b"other"),
                ("X-Split", b"a\r\nSet-Cookie: evil=1"),
                ("X-Nul", b"a\0b"),
                ("Bad Name", b"v"),
                ("", b"v"),
                ("X-Ok", b"tab\tand obs-text \xff"),
            ],
            Some(1),
            true,
            1,
        );
        assert_eq!(h.matches("Content-Length").count(), 1);
        assert!(h.contains("Content-Length: 1\r\n"));
        for bad in [
            "chunked",
            "keep-alive",
            "yesterday",
            "other",
            "evil",
            "X-Nul",
            "Bad Name",
        ] {
            assert!(!h.contains(bad), "{bad} leaked into {h:?}");
        }
        assert_eq!(h.matches("\r\n").count(), 6);
    }

    #[test]
    fn head_request_response_has_headers_but_no_body() {
        let mut get = Vec::new();
        let mut head_resp = Vec::new();
        write_response(&mut get, 200, &[], b"hello", &date(), true, 1, false);
        let f = write_response(&mut head_resp, 200, &[], b"hello", &date(), true, 1, true);
        assert!(get.ends_with(b"\r\n\r\nhello"));
        assert_eq!(&get[..get.len() - 5], &head_resp[..]);
        assert_eq!(f.body, BodyFraming::Length(5));
        let mut nc = Vec::new();
        write_response(
            &mut nc,
            304,
            &[("ETag", b"\"x\"")],
            b"ignored",
            &date(),
            true,
            1,
            false,
        );
        assert!(nc.ends_with(b"ETag: \"x\"\r\n\r\n"));
    }

    #[test]
    fn chunk_encoding_round_trips() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, b"");
        write_chunk(&mut out, &[b'x'; 300]);
        write_last_chunk(&mut out);
        assert!(out.starts_with(b"5\r\nhello\r\n12c\r\nxxx"));
        assert!(out.ends_with(b"\r\n0\r\n\r\n"));
        let mut d = ChunkedDecoder::new(&Limits::default());
        let mut body = Vec::new();
        assert_eq!(d.decode(&out, &mut body), Ok((out.len(), true)));
        assert_eq!(body.len(), 305);
    }

    #[test]
    fn error_response_closes_and_is_well_framed() {
        let err = HttpError::fatal(431, "too many header fields");
        let out = error_response(&err, &date());
        let s = text(&out);
        let (head, body) = s.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("\r\nConnection: close"));
        assert!(head.contains("Content-Type: text/plain; charset=utf-8"));
        assert_eq!(
            body,
            "431 Request Header Fields Too Large: too many header fields\n"
        );
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));

        let mut head_resp = Vec::new();
        write_error_response(&mut head_resp, &err, &date(), true, 1, true);
        assert_eq!(
            head_resp,
            head.as_bytes()
                .iter()
                .chain(b"\r\n\r\n")
                .copied()
                .collect::<Vec<u8>>()
        );

        let soft = HttpError::new(404, "no such file", false);
        let s = String::from_utf8(error_response(&soft, &date())).unwrap();
        assert!(!s.contains("Connection"));
        let (_, body) = s.split_once("\r\n\r\n").unwrap();
        assert!(s.contains(&format!("Content-Length: {}\r\n", body.len())));
    }

    #[test]
    fn reason_phrases() {
        for (code, phrase) in [
            (200, "OK"),
            (206, "Partial Content"),
            (304, "Not Modified"),
            (400, "Bad Request"),
            (413, "Content Too Large"),
            (414, "URI Too Long"),
            (416, "Range Not Satisfiable"),
            (501, "Not Implemented"),
            (505, "HTTP Version Not Supported"),
            (599, ""),
        ] {
            assert_eq!(reason_phrase(code), phrase);
        }
        let (h, _) = head(599, &[], Some(0), true, 1);
        assert!(h.starts_with("HTTP/1.1 599 \r\n"));
    }

    #[test]
    fn push_u64_formats_extremes() {
        for v in [0u64, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(text(&out), v.to_string());
        }
    }
}
