//! The parts of static file serving that do not touch a connection:
//! opening what a request path names under a root, validators (`ETag`,
//! `Last-Modified`), conditional requests (RFC 9110 §13), single byte
//! ranges (RFC 9110 §14) and content types.
//!
//! Policy decisions:
//!
//! * Paths are resolved by the kernel where it can: the root is opened once
//!   and [`FileRoot::open`] opens each request path beneath it with
//!   `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so no path and no
//!   symlink can lead out of the root, whatever is renamed meanwhile.
//!   Symlinks are followed while they stay inside the root; an absolute
//!   symlink is refused even when it points inside (the kernel cannot tell
//!   where `/` is for the root). Without `openat2` (Linux before 5.6, or a
//!   seccomp filter refusing it; probed once) paths are canonicalized in
//!   user space and checked against the root instead, which follows
//!   absolute symlinks into the root and cannot see a symlink swapped in
//!   between the check and the open.
//! * Path errors are status codes: malformed percent-encoding, `%00` or a
//!   path that is not UTF-8 after decoding → 400; a `..` segment after
//!   decoding (so `%2e%2e`, `..%2f` and `%2f..` tricks included) → 403; a
//!   symlink leading out of the root → 403; anything that is not a regular
//!   file or a directory (FIFOs, sockets, devices) → 403 (files are opened
//!   non-blocking, so a FIFO never waits for a writer, and nothing is read
//!   before the `fstat` refuses it); missing files or a trailing `/` after a
//!   file name → 404; out of descriptors → 503. A directory is served as
//!   its `index.html` with or without a trailing slash (no redirect); one
//!   without an index is [`Target::Directory`] (403, or a listing, is the
//!   server's choice). Dotfiles are not hidden.
//! * `Range` supports exactly one `bytes=` range; several ranges, other units
//!   or malformed values yield [`RangeResult::Full`] (RFC 9110 §14.2 allows a
//!   server to ignore `Range`). Checking `If-Range` and the method is the
//!   caller's job.

use std::borrow::Cow;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::proto::encode::{
    civil_from_days, days_from_civil, format_imf_fixdate, unix_secs, MONTH_NAMES,
};
use crate::http::proto::parse::{percent_decode, trim_ows, Method, RequestHead};
use crate::sys;

// ---------------------------------------------------------------------------
// Path resolution.

/// A document root: its canonical path and an open descriptor of it, from
/// which every request path is resolved.
#[derive(Debug, Clone)]
pub struct FileRoot {
    root: PathBuf,
    dir: Arc<File>,
    /// Resolve with `openat2(RESOLVE_BENEATH)` (the kernel has it).
    beneath: bool,
}

impl PartialEq for FileRoot {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root && self.beneath == other.beneath
    }
}

impl Eq for FileRoot {}

/// What a request path names under a [`FileRoot`], opened.
#[derive(Debug)]
pub enum Target {
    /// A regular file (a directory's `index.html` included), open for
    /// reading, with the metadata of the open file (one `fstat`).
    File {
        /// The open file.
        file: File,
        /// Its metadata: size, type, modification time.
        meta: Metadata,
        /// Its path relative to the root (for the content type).
        path: PathBuf,
    },
    /// A directory without an `index.html`, open (for a listing).
    Directory {
        /// The open directory.
        dir: File,
        /// Its path relative to the root (empty for the root itself).
        path: PathBuf,
    },
}

fn io_status(e: &io::Error) -> u16 {
    match e.kind() {
        io::ErrorKind::PermissionDenied => 403,
        _ => 404,
    }
}

/// The status for a failed open under the root: a name that is not there
/// is 404; one the server may not follow or open (escaping the root, a
/// symlink loop, a socket, no permission) is 403; running out of
/// descriptors or memory is 503.
fn open_status(e: &io::Error) -> u16 {
    match sys::errno_of(e) {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => 404,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM) => 503,
        _ => 403,
    }
}

/// An opened file with its metadata (one `fstat`), or the status for the
/// failed open or `fstat`.
fn with_metadata(opened: io::Result<File>) -> Result<(File, Metadata), u16> {
    let file = opened.map_err(|e| open_status(&e))?;
    let meta = file.metadata().map_err(|e| open_status(&e))?;
    Ok((file, meta))
}

/// A request path decoded to a path relative to the root: `(path, whether
/// the request ended in '/')`. See the module docs for the statuses.
fn decode_relative(raw_path: &str) -> Result<(PathBuf, bool), u16> {
    if !raw_path.starts_with('/') {
        return Err(400);
    }
    let mut decoded = Vec::with_capacity(raw_path.len());
    percent_decode(raw_path.as_bytes(), &mut decoded).map_err(|_| 400u16)?;
    let decoded = std::str::from_utf8(&decoded).map_err(|_| 400u16)?;
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(403),
            s => rel.push(s),
        }
    }
    Ok((rel, decoded.ends_with('/')))
}

/// What [`FileRoot::resolve_target`] found: a canonical path.
enum Resolved {
    File(PathBuf),
    Directory(PathBuf),
}

impl FileRoot {
    /// Canonicalizes and opens `root` (which must exist and be a
    /// directory). Paths are resolved by the kernel, confined to the root,
    /// when it has `openat2` (Linux 5.6); otherwise by canonicalizing them.
    pub fn new(root: &Path) -> io::Result<Self> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "document root is not a directory",
            ));
        }
        let dir = File::open(&root)?;
        Ok(FileRoot {
            root,
            dir: Arc::new(dir),
            beneath: sys::fs::openat2_available(),
        })
    }

    /// Resolve by canonicalizing paths in user space even where the kernel
    /// has `openat2` (the fallback for older kernels, kept testable).
    pub fn checked_in_user_space(mut self) -> Self {
        self.beneath = false;
        self
    }

    /// Whether paths are resolved by the kernel (`openat2` with
    /// `RESOLVE_BENEATH`).
    pub fn resolves_in_kernel(&self) -> bool {
        self.beneath
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Opens what a raw (percent-encoded) request path names: a regular
    /// file, a directory's `index.html`, or a directory without one. The
    /// error is the status to answer with (see the module docs).
    ///
    /// With `openat2` this is one open (two for a directory) and one
    /// `fstat` per open: escaping the root is impossible by construction,
    /// whatever the path or the symlinks in it, and races with renames
    /// cannot defeat it.
    pub fn open(&self, raw_path: &str) -> Result<Target, u16> {
        let (rel, trailing) = decode_relative(raw_path)?;
        if !self.beneath {
            return self.open_checked(rel, trailing);
        }
        let at = |p: &Path| {
            let p = if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            };
            with_metadata(sys::fs::open_beneath(self.dir.as_fd(), p))
        };
        let (file, meta) = at(&rel)?;
        if meta.is_file() {
            return match trailing {
                true => Err(404),
                false => Ok(Target::File {
                    file,
                    meta,
                    path: rel,
                }),
            };
        }
        if !meta.is_dir() {
            return Err(403);
        }
        let index = rel.join("index.html");
        match at(&index) {
            Ok((f, m)) if m.is_file() => Ok(Target::File {
                file: f,
                meta: m,
                path: index,
            }),
            Ok((_, m)) if m.is_dir() => Ok(Target::Directory {
                dir: file,
                path: rel,
            }),
            Ok(_) => Err(403),
            Err(404) => Ok(Target::Directory {
                dir: file,
                path: rel,
            }),
            Err(status) => Err(status),
        }
    }

    /// [`FileRoot::open`] without `openat2`: canonicalize, check the prefix,
    /// then open the canonical path (a symlink swapped in between is not
    /// caught: that race is what `openat2` closes).
    fn open_checked(&self, rel: PathBuf, trailing: bool) -> Result<Target, u16> {
        let open = |p: &Path| with_metadata(sys::fs::open_plain(p));
        let relative = |p: &Path| p.strip_prefix(&self.root).unwrap_or(p).to_path_buf();
        match self.resolve_target(&rel, trailing)? {
            Resolved::File(p) => {
                let (file, meta) = open(&p)?;
                if !meta.is_file() {
                    return Err(403);
                }
                Ok(Target::File {
                    file,
                    meta,
                    path: relative(&p),
                })
            }
            Resolved::Directory(p) => {
                let (dir, meta) = open(&p)?;
                if !meta.is_dir() {
                    return Err(403);
                }
                Ok(Target::Directory {
                    dir,
                    path: relative(&p),
                })
            }
        }
    }

    /// Canonicalize `root/rel` and check it stays under the root; a
    /// directory resolves to its `index.html` if it has one.
    fn resolve_target(&self, rel: &Path, trailing: bool) -> Result<Resolved, u16> {
        let canon = self
            .root
            .join(rel)
            .canonicalize()
            .map_err(|e| io_status(&e))?;
        if !canon.starts_with(&self.root) {
            return Err(403);
        }
        let meta = canon.metadata().map_err(|e| io_status(&e))?;
        if meta.is_file() {
            if trailing {
                return Err(404);
            }
            return Ok(Resolved::File(canon));
        }
        if !meta.is_dir() {
            return Err(403);
        }
        let index = match canon.join("index.html").canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Resolved::Directory(canon)),
            Err(e) => return Err(io_status(&e)),
        };
        if !index.starts_with(&self.root) {
            return Err(403);
        }
        match index.metadata() {
            Ok(m) if m.is_file() => Ok(Resolved::File(index)),
            Ok(m) if m.is_dir() => Ok(Resolved::Directory(canon)),
            Ok(_) => Err(403),
            Err(e) => Err(io_status(&e)),
        }
    }

    /// Maps a raw (percent-encoded) request path to a regular file under the
    /// root, by canonicalizing it (no file is opened); see the module docs
    /// for the status codes. A directory without `index.html` is 403.
    pub fn resolve(&self, raw_path: &str) -> Result<PathBuf, u16> {
        let (rel, trailing) = decode_relative(raw_path)?;
        match self.resolve_target(&rel, trailing)? {
            Resolved::File(p) => Ok(p),
            Resolved::Directory(_) => Err(403),
        }
    }
}

/// One-shot form of [`FileRoot::resolve`] (canonicalizes `root` on every
/// call; servers should keep a [`FileRoot`]). An unusable root is 500.
pub fn resolve(root: &Path, raw_path: &str) -> Result<PathBuf, u16> {
    FileRoot::new(root).map_err(|_| 500u16)?.resolve(raw_path)
}

// ---------------------------------------------------------------------------
// Validators and dates.

/// A strong entity tag from size and modification time:
/// `"<hex len>-<hex mtime nanoseconds since the epoch>"`.
pub fn etag_for(meta: &Metadata) -> String {
    let nanos = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{:x}\"", meta.len(), nanos)
}

/// `t` as an IMF-fixdate (e.g. for `Last-Modified`).
pub fn http_date(t: SystemTime) -> String {
    let mut buf = [0u8; 29];
    format_imf_fixdate(unix_secs(t), &mut buf);
    // The date is ASCII.
    buf.iter().map(|&b| char::from(b)).collect()
}

/// Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, the obsolete RFC 850
/// form (two-digit year: taken from the 100-year window ending 50 years
/// after the current year, so nothing is more than 50 years in the future)
/// and asctime. Returns `None` for anything else.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let now_year = civil_year(unix_secs(SystemTime::now()));
    parse_http_date_at(s, now_year)
}

fn civil_year(secs: u64) -> i64 {
    civil_from_days((secs / 86_400) as i64).0
}

const DAYS_SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAYS_LONG: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |acc, &b| acc * 10 + u32::from(b - b'0')))
}

fn month(s: &[u8]) -> Option<u32> {
    MONTH_NAMES
        .iter()
        .position(|m| &m[..] == s)
        .map(|i| i as u32 + 1)
}

/// `HH:MM:SS` → seconds of day.
fn time_of_day(s: &[u8]) -> Option<u32> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?);
    (h < 24 && m < 60 && sec <= 60).then_some(h * 3600 + m * 60 + sec)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

fn to_system_time(year: i64, month: u32, day: u32, sod: u32) -> Option<SystemTime> {
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + i64::from(sod);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

/// [`parse_http_date`] with the current year given (for RFC 850 years).
pub(crate) fn parse_http_date_at(s: &str, now_year: i64) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() == 29 && b[3] == b',' {
        // Sun, 06 Nov 1994 08:49:37 GMT
        if !DAYS_SHORT.contains(&&s[..3])
            || &b[4..5] != b" "
            || b[7] != b' '
            || b[11] != b' '
            || b[16] != b' '
            || &b[25..] != b" GMT"
        {
            return None;
        }
        let day = digits(&b[5..7])?;
        let mon = month(&b[8..11])?;
        let year = digits(&b[12..16])?;
        let sod = time_of_day(&b[17..25])?;
        return to_system_time(i64::from(year), mon, day, sod);
    }
    if let Some(comma) = s.find(',') {
        // Sunday, 06-Nov-94 08:49:37 GMT
        let rest = &b[comma..];
        if !DAYS_LONG.contains(&&s[..comma])
            || rest.len() != 24
            || &rest[..2] != b", "
            || rest[4] != b'-'
            || rest[8] != b'-'
            || rest[11] != b' '
            || &rest[20..] != b" GMT"
        {
            return None;
        }
        let day = digits(&rest[2..4])?;
        let mon = month(&rest[5..8])?;
        let yy = i64::from(digits(&rest[9..11])?);
        let sod = time_of_day(&rest[12..20])?;
        let mut year = now_year - now_year.rem_euclid(100) + yy;
        // Sliding window: the year with these digits in (now-50, now+50].
        if year > now_year + 50 {
            year -= 100;
        } else if year <= now_year - 50 {
            year += 100;
        }
        return to_system_time(year, mon, day, sod);
    }
    // Sun Nov  6 08:49:37 1994
    if b.len() != 24 || b[3] != b' ' || b[7] != b' ' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    if !DAYS_SHORT.contains(&&s[..3]) {
        return None;
    }
    let mon = month(&b[4..7])?;
    let day = match &b[8..10] {
        [b' ', d] => digits(&[*d])?,
        dd => digits(dd)?,
    };
    let sod = time_of_day(&b[11..19])?;
    let year = digits(&b[20..24])?;
    to_system_time(i64::from(year), mon, day, sod)
}

// ---------------------------------------------------------------------------
// Conditional requests.

/// The opaque part of an entity tag (quotes included), without `W/`.
fn opaque(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// Whether an `If-None-Match` field value matches `etag` under the weak
/// comparison (RFC 9110 §8.8.3.2, §13.1.2). `*` matches any current
/// representation. A malformed list stops matching at the malformed element.
fn if_none_match(value: &[u8], etag: &[u8]) -> bool {
    let value = trim_ows(value);
    if value == b"*" {
        return true;
    }
    let ours = opaque(etag);
    let mut rest = value;
    loop {
        // Skip OWS and empty list elements.
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return false;
        }
        let tag_start = rest;
        if let Some(t) = rest.strip_prefix(b"W/") {
            rest = t;
        }
        let Some(t) = rest.strip_prefix(b"\"") else {
            return false;
        };
        let Some(close) = t.iter().position(|&b| b == b'"') else {
            return false;
        };
        let tag_len = tag_start.len() - t.len() + close + 1;
        if opaque(&tag_start[..tag_len]) == ours {
            return true;
        }
        rest = &t[close + 1..];
        match trim_ows(rest).first() {
            None | Some(b',') => {}
            Some(_) => return false,
        }
    }
}

/// Whether a GET or HEAD request for a representation with this `etag` and
/// modification time can be answered with 304 Not Modified (RFC 9110 §13.2.2):
/// `If-None-Match` (all its fields, weak comparison, `*`) decides when
/// present; otherwise `If-Modified-Since` (ignored unless it is exactly one
/// valid date) compares at one-second resolution. Other methods get `false`.
pub fn not_modified(head: &RequestHead, etag: &str, mtime: SystemTime) -> bool {
    if !matches!(head.method_kind(), Method::Get | Method::Head) {
        return false;
    }
    let mut inm = false;
    for v in head.header_all("if-none-match") {
        inm = true;
        if if_none_match(v, etag.as_bytes()) {
            return true;
        }
    }
    if inm {
        return false;
    }
    let mut ims = head.header_all("if-modified-since");
    let (Some(v), None) = (ims.next(), ims.next()) else {
        return false;
    };
    let Some(since) = std::str::from_utf8(v).ok().and_then(parse_http_date) else {
        return false;
    };
    match (
        mtime.duration_since(UNIX_EPOCH),
        since.duration_since(UNIX_EPOCH),
    ) {
        (Ok(m), Ok(s)) => m.as_secs() <= s.as_secs(),
        (Err(_), Ok(_)) => true,
        (_, Err(_)) => false,
    }
}

// ---------------------------------------------------------------------------
// Ranges.

/// Outcome of evaluating a `Range` field against a representation length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeResult {
    /// Ignore the range: send the whole representation (200).
    Full,
    /// Send bytes `start..=end` (206 with `Content-Range`).
    Partial(u64, u64),
    /// 416 with `Content-Range: bytes */<len>`.
    Unsatisfiable,
}

/// Parses a decimal position, saturating on overflow.
fn position(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Evaluates a `Range` field value (RFC 9110 §14.1.2) against `file_len`.
/// Handles a single `bytes=first-last`, `bytes=first-` and `bytes=-suffix`;
/// see the module docs for what is treated as [`RangeResult::Full`].
pub fn parse_range(header: &str, file_len: u64) -> RangeResult {
    let Some((unit, set)) = header.trim().split_once('=') else {
        return RangeResult::Full;
    };
    if !unit.eq_ignore_ascii_case("bytes") {
        return RangeResult::Full;
    }
    let mut specs = set
        .split(',')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeResult::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeResult::Full;
    };
    if first.is_empty() {
        let Some(suffix) = position(last) else {
            return RangeResult::Full;
        };
        if suffix == 0 || file_len == 0 {
            return RangeResult::Unsatisfiable;
        }
        return RangeResult::Partial(file_len.saturating_sub(suffix), file_len - 1);
    }
    let Some(first) = position(first) else {
        return RangeResult::Full;
    };
    let last = if last.is_empty() {
        None
    } else {
        match position(last) {
            Some(l) if l >= first => Some(l),
            _ => return RangeResult::Full,
        }
    };
    if first >= file_len {
        return RangeResult::Unsatisfiable;
    }
    let end = last.map_or(file_len - 1, |l| l.min(file_len - 1));
    RangeResult::Partial(first, end)
}

// ---------------------------------------------------------------------------
// Content types.

/// The `Content-Type` for a file, guessed from its extension
/// (`application/octet-stream` if unknown). Textual types get
/// `; charset=utf-8`.
pub fn content_type(path: &Path) -> Cow<'static, str> {
    let mime = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let textual = mime.starts_with("text/")
        || mime == "application/javascript"
        || mime == "application/xml"
        || mime.ends_with("+xml");
    if !textual {
        return Cow::Borrowed(mime);
    }
    match mime {
        "text/html" => Cow::Borrowed("text/html; charset=utf-8"),
        "text/plain" => Cow::Borrowed("text/plain; charset=utf-8"),
        "text/css" => Cow::Borrowed("text/css; charset=utf-8"),
        "text/javascript" => Cow::Borrowed("text/javascript; charset=utf-8"),
        "application/javascript" => Cow::Borrowed("application/javascript; charset=utf-8"),
        _ => Cow::Owned(format!("{mime}; charset=utf-8")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proto::limits::Limits;
    use crate::http::proto::parse::parse_head;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let p = std::env::temp_dir().join(format!(
                "evnet-files-{}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                nanos
            ));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn tree() -> (TempDir, PathBuf) {
        let t = TempDir::new();
        let root = t.0.join("root");
        let outside = t.0.join("outside");
        for d in [&root, &outside, &root.join("sub"), &root.join("noindex")] {
            fs::create_dir_all(d).unwrap();
        }
        fs::create_dir_all(root.join("dirindex/index.html")).unwrap();
        fs::write(root.join("index.html"), "<h1>root</h1>").unwrap();
        fs::write(root.join("a.txt"), "aaa").unwrap();
        fs::write(root.join("sp ace.txt"), "s").unwrap();
        fs::write(root.join("café.txt"), "c").unwrap();
        fs::write(root.join("sub/index.html"), "sub").unwrap();
        fs::write(root.join("noindex/x.txt"), "x").unwrap();
        fs::write(outside.join("secret.txt"), "secret").unwrap();
        symlink("../outside/secret.txt", root.join("link_out")).unwrap();
        symlink("../outside", root.join("linkdir_out")).unwrap();
        symlink("a.txt", root.join("link_in")).unwrap();
        symlink("../../outside/secret.txt", root.join("noindex/index.html")).unwrap_or(());
        let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        (t, root)
    }

    #[test]
    fn resolve_traversal_cases() {
        let (_t, root) = tree();
        let fr = FileRoot::new(&root).unwrap();
        let r = fr.path().to_path_buf();
        let table: &[(&str, Result<PathBuf, u16>)] = &[
            ("/", Ok(r.join("index.html"))),
            ("/index.html", Ok(r.join("index.html"))),
            ("/a.txt", Ok(r.join("a.txt"))),
            ("/./a.txt", Ok(r.join("a.txt"))),
            ("//a.txt", Ok(r.join("a.txt"))),
            ("/sp%20ace.txt", Ok(r.join("sp ace.txt"))),
            ("/caf%C3%A9.txt", Ok(r.join("café.txt"))),
            ("/sub", Ok(r.join("sub/index.html"))),
            ("/sub/", Ok(r.join("sub/index.html"))),
            ("/link_in", Ok(r.join("a.txt"))),
            ("/a.txt/", Err(404)),
            ("/missing", Err(404)),
            ("/sub/missing.txt", Err(404)),
            ("/dirindex/", Err(403)),
            ("/...", Err(404)),
            // Traversal, literal and encoded.
            ("/../outside/secret.txt", Err(403)),
            ("/sub/../a.txt", Err(403)),
            ("/..", Err(403)),
            ("/%2e%2e/outside/secret.txt", Err(403)),
            ("/%2E%2E%2Foutside%2Fsecret.txt", Err(403)),
            ("/sub/..%2f..%2foutside/secret.txt", Err(403)),
            ("/sub%2f..%2f..%2foutside%2fsecret.txt", Err(403)),
            ("/.%2e/outside/secret.txt", Err(403)),
            // Symlinks leading out of the root.
            ("/link_out", Err(403)),
            ("/linkdir_out/secret.txt", Err(403)),
            ("/noindex/", Err(403)),
            // Not a regular file.
            ("/sock", Err(403)),
            // Malformed.
            ("/a%00.txt", Err(400)),
            ("/a\0.txt", Err(400)),
            ("/%zz", Err(400)),
            ("/%2", Err(400)),
            ("/%ff", Err(400)),
            ("a.txt", Err(400)),
            ("", Err(400)),
        ];
        for (path, expected) in table {
            assert_eq!(&fr.resolve(path), expected, "{path:?}");
            assert_eq!(&resolve(&root, path), expected, "{path:?} (free fn)");
        }
        assert_eq!(resolve(&root.join("nope"), "/"), Err(500));
        assert!(FileRoot::new(&root.join("a.txt")).is_err());
    }

    /// What `open` gives, as a comparable value: the relative path of the
    /// file (`F`) or directory (`D`), or the status.
    type Opened = Result<(char, PathBuf), u16>;

    fn opened(fr: &FileRoot, path: &str) -> Opened {
        fr.open(path).map(|t| match t {
            Target::File { meta, path, .. } => {
                assert!(meta.is_file());
                ('F', path)
            }
            Target::Directory { path, .. } => ('D', path),
        })
    }

    /// `open` agrees with `resolve` on every case, in the kernel and in
    /// user space; and the cases only `open` has: directories without an
    /// index, devices and FIFOs (refused without blocking), and the one
    /// place the two resolvers differ (an absolute symlink into the root).
    #[test]
    fn open_traversal_cases_in_kernel_and_in_user_space() {
        let (_t, root) = tree();
        let kernel = FileRoot::new(&root).unwrap();
        let user = kernel.clone().checked_in_user_space();
        assert!(!user.resolves_in_kernel());
        if !kernel.resolves_in_kernel() {
            eprintln!("note: no openat2 on this kernel: both runs check in user space");
        }
        let r = kernel.path().to_path_buf();
        std::os::unix::fs::symlink(r.join("a.txt"), r.join("abs_in")).unwrap();
        sys::fs::make_fifo(&r.join("fifo")).unwrap();
        let rel = |p: &str| PathBuf::from(p);
        let table: &[(&str, Opened)] = &[
            ("/", Ok(('F', rel("index.html")))),
            ("/a.txt", Ok(('F', rel("a.txt")))),
            ("//a.txt", Ok(('F', rel("a.txt")))),
            ("/sp%20ace.txt", Ok(('F', rel("sp ace.txt")))),
            ("/sub", Ok(('F', rel("sub/index.html")))),
            ("/sub/", Ok(('F', rel("sub/index.html")))),
            ("/link_in", Ok(('F', rel("link_in")))),
            ("/noindex", Err(403)),
            ("/dirindex/", Ok(('D', rel("dirindex")))),
            (
                "/dirindex/index.html",
                Ok(('D', rel("dirindex/index.html"))),
            ),
            ("/a.txt/", Err(404)),
            ("/a.txt/x", Err(404)),
            ("/missing", Err(404)),
            ("/../outside/secret.txt", Err(403)),
            ("/%2e%2e/outside/secret.txt", Err(403)),
            ("/sub%2f..%2f..%2foutside%2fsecret.txt", Err(403)),
            ("/link_out", Err(403)),
            ("/linkdir_out/secret.txt", Err(403)),
            ("/sock", Err(403)),
            ("/fifo", Err(403)),
            ("/a%00.txt", Err(400)),
            ("a.txt", Err(400)),
        ];
        for fr in [&kernel, &user] {
            for (path, expected) in table {
                let got = opened(fr, path).map(|(k, p)| {
                    // The user-space resolver reports canonical paths: a
                    // symlink inside the root shows its target.
                    (k, if p == rel("a.txt") { rel("link_in") } else { p })
                });
                let expected = expected
                    .clone()
                    .map(|(k, p)| (k, if p == rel("a.txt") { rel("link_in") } else { p }));
                assert_eq!(
                    got,
                    expected,
                    "{path:?} (kernel: {})",
                    fr.resolves_in_kernel()
                );
            }
        }
        // A directory without an index has no file to resolve to.
        assert_eq!(kernel.resolve("/dirindex/"), Err(403));
        // An absolute symlink is refused by the kernel's resolution even
        // when it points inside the root; user space follows it.
        if kernel.resolves_in_kernel() {
            assert_eq!(opened(&kernel, "/abs_in"), Err(403));
        }
        assert_eq!(opened(&user, "/abs_in"), Ok(('F', rel("a.txt"))));
    }

    #[test]
    fn etag_is_length_and_mtime() {
        let t = TempDir::new();
        let f = t.0.join("e.bin");
        fs::write(&f, [0u8; 300]).unwrap();
        let meta = fs::metadata(&f).unwrap();
        let nanos = meta
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let tag = etag_for(&meta);
        assert_eq!(tag, format!("\"12c-{nanos:x}\""));
        assert!(tag.starts_with('"') && tag.ends_with('"'));
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn http_date_formats_imf_fixdate() {
        assert_eq!(http_date(t(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(t(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn parses_all_three_date_forms() {
        let expected = Some(t(784_111_777));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(
            parse_http_date("Sun Nov 16 08:49:37 1994"),
            Some(t(784_111_777 + 10 * 86_400))
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(t(951_782_400))
        );
        assert_eq!(
            parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT"),
            UNIX_EPOCH.checked_sub(Duration::from_secs(1))
        );
        for secs in [0, 1, 86_399, 951_782_400, 1_709_251_199, 4_107_542_400] {
            assert_eq!(parse_http_date(&http_date(t(secs))), Some(t(secs)));
        }
    }

    #[test]
    fn rejects_invalid_dates() {
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 30 Feb 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            "Sun, 06 Nov 1994 8:49:37  GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov 0 8 08:49:37 1994",
            "1994-11-06T08:49:37Z",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc850_two_digit_years_are_at_most_50_years_ahead() {
        let year = |s: &str, now: i64| {
            let st = parse_http_date_at(s, now).unwrap();
            civil_year(unix_secs(st))
        };
        assert_eq!(year("Sunday, 06-Nov-94 08:49:37 GMT", 2025), 1994);
        assert_eq!(year("Monday, 06-Nov-30 08:49:37 GMT", 2025), 2030);
        assert_eq!(year("Monday, 06-Nov-75 08:49:37 GMT", 2025), 2075);
        assert_eq!(year("Monday, 06-Nov-76 08:49:37 GMT", 2025), 1976);
        assert_eq!(year("Monday, 06-Nov-10 08:49:37 GMT", 2099), 2110);
    }

    fn req(method: &str, fields: &[(&str, &str)]) -> RequestHead {
        let mut s = format!("{method} /f HTTP/1.1\r\nHost: h\r\n");
        for (n, v) in fields {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("\r\n");
        parse_head(s.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn conditional_request_table() {
        let etag = "\"abc-123\"";
        let mtime = t(784_111_777) + Duration::from_millis(500);
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        let later = "Sun, 06 Nov 1994 08:49:38 GMT";
        let earlier = "Sun, 06 Nov 1994 08:49:36 GMT";
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let table: &[Case] = &[
            ("GET", &[], false),
            ("GET", &[("If-None-Match", "\"abc-123\"")], true),
            ("HEAD", &[("If-None-Match", "\"abc-123\"")], true),
            ("GET", &[("If-None-Match", "W/\"abc-123\"")], true),
            ("GET", &[("If-None-Match", "\"x\", \"abc-123\"")], true),
            (
                "GET",
                &[
                    ("If-None-Match", "\"x\""),
                    ("If-None-Match", "W/\"abc-123\""),
                ],
                true,
            ),
            ("GET", &[("If-None-Match", "\"a,b\" ,, \"abc-123\"")], true),
            ("GET", &[("If-None-Match", "*")], true),
            ("GET", &[("If-None-Match", "\"abc-1234\"")], false),
            ("GET", &[("If-None-Match", "abc-123")], false),
            (
                "GET",
                &[("If-None-Match", "\"x\" junk, \"abc-123\"")],
                false,
            ),
            // If-None-Match takes precedence over If-Modified-Since.
            (
                "GET",
                &[("If-None-Match", "\"other\""), ("If-Modified-Since", later)],
                false,
            ),
            ("GET", &[("If-Modified-Since", same)], true),
            ("GET", &[("If-Modified-Since", later)], true),
            ("GET", &[("If-Modified-Since", earlier)], false),
            (
                "GET",
                &[("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")],
                true,
            ),
            ("GET", &[("If-Modified-Since", "garbage")], false),
            (
                "GET",
                &[("If-Modified-Since", same), ("If-Modified-Since", same)],
                false,
            ),
            ("POST", &[("If-None-Match", "*")], false),
            ("PUT", &[("If-Modified-Since", later)], false),
        ];
        for (method, fields, expected) in table {
            let h = req(method, fields);
            assert_eq!(
                not_modified(&h, etag, mtime),
                *expected,
                "{method} {fields:?}"
            );
        }
        // A weak validator of ours matches a strong one in the request.
        assert!(not_modified(
            &req("GET", &[("If-None-Match", "\"v\"")]),
            "W/\"v\"",
            mtime
        ));
    }

    #[test]
    fn range_table() {
        use RangeResult::*;
        let table: &[(&str, u64, RangeResult)] = &[
            ("bytes=0-499", 1000, Partial(0, 499)),
            ("bytes=500-999", 1000, Partial(500, 999)),
            ("bytes=500-", 1000, Partial(500, 999)),
            ("bytes=-500", 1000, Partial(500, 999)),
            ("bytes=-5000", 1000, Partial(0, 999)),
            ("bytes=0-0", 1000, Partial(0, 0)),
            ("bytes=999-", 1000, Partial(999, 999)),
            ("bytes=900-5000", 1000, Partial(900, 999)),
            ("bytes=0-99999999999999999999999", 1000, Partial(0, 999)),
            ("Bytes=1-2", 1000, Partial(1, 2)),
            ("bytes= 1-2 ", 1000, Partial(1, 2)),
            ("bytes=1-2,", 1000, Partial(1, 2)),
            ("bytes=1000-", 1000, Unsatisfiable),
            ("bytes=1000-2000", 1000, Unsatisfiable),
            ("bytes=99999999999999999999999-", 1000, Unsatisfiable),
            ("bytes=-0", 1000, Unsatisfiable),
            ("bytes=-1", 0, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            // Ignored (whole representation).
            ("bytes=0-1,5-6", 1000, Full),
            ("bytes=500-100", 1000, Full),
            ("bytes=a-b", 1000, Full),
            ("bytes=-", 1000, Full),
            ("bytes=1", 1000, Full),
            ("bytes=", 1000, Full),
            ("bytes=+1-2", 1000, Full),
            ("items=0-1", 1000, Full),
            ("0-1", 1000, Full),
            ("", 1000, Full),
        ];
        for (header, len, expected) in table {
            assert_eq!(parse_range(header, *len), *expected, "{header:?} / {len}");
        }
    }

    #[test]
    fn content_types() {
        let table = [
            ("index.html", "text/html; charset=utf-8"),
            ("a/b/readme.txt", "text/plain; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("data.csv", "text/csv; charset=utf-8"),
            ("image.png", "image/png"),
            ("photo.JPG", "image/jpeg"),
            ("archive.unknownext", "application/octet-stream"),
            ("noext", "application/octet-stream"),
        ];
        for (path, expected) in table {
            assert_eq!(content_type(Path::new(path)), expected, "{path}");
        }
        assert!(content_type(Path::new("app.js")).ends_with("javascript; charset=utf-8"));
    }
}
