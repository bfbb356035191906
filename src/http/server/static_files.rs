//! Serving a directory tree: GET/HEAD, conditional requests (304), single
//! byte ranges (206/416), `index.html` for directories, an optional
//! listing of directories without one, and a per-loop open-file cache.
//! Path policy (traversal, symlinks) is [`FileRoot::open`]'s.
//!
//! Per request without the cache: one `openat2` and one `fstat` find and
//! describe the file; a small body is read into the response (one `pread`,
//! and the head and body leave in one `send`), a large one follows the head
//! with sendfile. `HEAD`, `304` and `416` are answered from the `fstat`
//! alone: the file is never read for them.
//!
//! The open-file cache (nginx's `open_file_cache` is the model) keeps, per
//! loop thread, the open descriptor, size, modification time, validators
//! and content type of recently served files, so a cached request costs no
//! open, `fstat` or close. It is bounded in entries (and so in descriptors)
//! and each entry is trusted for a fixed interval after it was opened: a
//! file replaced or deleted is served as it was for at most that long.
//! Entries are evicted oldest first when the cache is full.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::files::{
    content_type, etag_for, http_date, not_modified, parse_range, FileRoot, RangeResult, Target,
};
use crate::http::dispatch::Response;
use crate::http::message::Request;
use crate::http::proto::parse::Method;
use crate::http::proto::HttpError;
use crate::sys;

/// Open-file cache entries per loop by default.
pub const DEFAULT_CACHE_ENTRIES: usize = 256;
/// How long a cached file is trusted by default before it is opened again.
pub const DEFAULT_CACHE_VALID: Duration = Duration::from_secs(1);
/// A directory listing shows at most this many names.
pub const LISTING_MAX: usize = 10_000;

/// A route handler serving files under a root. Clones share the root's
/// descriptor and the cache settings (each loop thread caches its own
/// entries).
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: FileRoot,
    /// `None`: no open-file cache.
    cache: Option<Arc<CacheConfig>>,
    autoindex: bool,
}

/// What an open-file cache keeps and for how long; the identity of a
/// [`StaticFiles`]'s caches on the loop threads.
#[derive(Debug)]
struct CacheConfig {
    entries: usize,
    valid: Duration,
}

/// What answering a file needs, from one `fstat`.
struct Entry {
    file: Arc<File>,
    len: u64,
    mtime: SystemTime,
    etag: String,
    last_modified: String,
    /// The response's field lines, formatted once: `ETag` and
    /// `Last-Modified` (all a 304 carries: `validators` bytes), then
    /// `Content-Type` and `Accept-Ranges`.
    fields: Vec<u8>,
    validators: usize,
    /// When the file was opened (cached entries expire from here).
    opened: Instant,
}

impl Entry {
    fn new(file: File, meta: &std::fs::Metadata, path: &Path, opened: Instant) -> Entry {
        let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let etag = etag_for(meta);
        let last_modified = http_date(mtime);
        let mut fields = Vec::with_capacity(160);
        for (name, value) in [("ETag: ", &etag), ("Last-Modified: ", &last_modified)] {
            fields.extend_from_slice(name.as_bytes());
            fields.extend_from_slice(value.as_bytes());
            fields.extend_from_slice(b"\r\n");
        }
        let validators = fields.len();
        fields.extend_from_slice(b"Content-Type: ");
        fields.extend_from_slice(cached_content_type(path).as_bytes());
        fields.extend_from_slice(b"\r\nAccept-Ranges: bytes\r\n");
        Entry {
            file: Arc::new(file),
            len: meta.len(),
            mtime,
            etag,
            last_modified,
            fields,
            validators,
            opened,
        }
    }
}

thread_local! {
    /// Content types by file extension, as [`content_type`] gave them (the
    /// lookup in its table costs more than the rest of building an entry).
    static TYPES: RefCell<HashMap<Box<[u8]>, Cow<'static, str>>> = RefCell::new(HashMap::new());
}

/// Extensions remembered per thread at most.
const TYPES_MAX: usize = 256;

/// [`content_type`], remembered per extension on this thread.
fn cached_content_type(path: &Path) -> Cow<'static, str> {
    let Some(ext) = path.extension().map(|e| e.as_bytes()) else {
        return content_type(path);
    };
    if let Some(t) = TYPES.with_borrow(|m| m.get(ext).cloned()) {
        return t;
    }
    let t = content_type(path);
    TYPES.with_borrow_mut(|m| {
        if m.len() < TYPES_MAX {
            m.insert(ext.into(), t.clone());
        }
    });
    t
}

/// One [`StaticFiles`]'s cached entries on one loop thread.
struct LoopCache {
    config: Weak<CacheConfig>,
    /// Request path (as sent) → (insertion number, entry).
    map: HashMap<Box<str>, (u64, Rc<Entry>)>,
    /// Insertion order, for eviction; items whose number no longer matches
    /// the map's were replaced or removed and are skipped.
    order: VecDeque<(u64, Box<str>)>,
    next: u64,
}

thread_local! {
    /// The open-file caches of the [`StaticFiles`] served on this thread.
    static CACHES: RefCell<Vec<LoopCache>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` on this thread's cache for `cfg` (made on first use), after
/// dropping the caches of servers that are gone (their files close).
fn with_loop_cache<R>(cfg: &Arc<CacheConfig>, f: impl FnOnce(&mut LoopCache) -> R) -> R {
    CACHES.with_borrow_mut(|caches| {
        caches.retain(|c| c.config.strong_count() > 0);
        let i = match caches
            .iter()
            .position(|c| std::ptr::eq(c.config.as_ptr(), Arc::as_ptr(cfg)))
        {
            Some(i) => i,
            None => {
                caches.push(LoopCache::new(cfg));
                caches.len() - 1
            }
        };
        f(&mut caches[i])
    })
}

impl LoopCache {
    fn new(cfg: &Arc<CacheConfig>) -> LoopCache {
        LoopCache {
            config: Arc::downgrade(cfg),
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    fn get(&mut self, key: &str, now: Instant, valid: Duration) -> Option<Rc<Entry>> {
        let (_, entry) = self.map.get(key)?;
        if now.saturating_duration_since(entry.opened) < valid {
            return Some(entry.clone());
        }
        self.map.remove(key);
        None
    }

    fn insert(&mut self, key: &str, entry: Rc<Entry>, max: usize) {
        // A new entry for a key replaces the old one (its order item goes
        // stale) rather than evicting another key.
        self.map.remove(key);
        while self.map.len() >= max {
            let Some((n, k)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|(m, _)| *m == n) {
                self.map.remove(&k);
            }
        }
        let n = self.next;
        self.next += 1;
        let key: Box<str> = key.into();
        self.map.insert(key.clone(), (n, entry));
        self.order.push_back((n, key));
        if self.order.len() > 2 * max + 16 {
            let map = &self.map;
            self.order
                .retain(|(n, k)| map.get(k).is_some_and(|(m, _)| m == n));
        }
    }
}

/// Why a path has no file entry to answer from.
enum Miss {
    Status(u16),
    Directory(File),
}

impl StaticFiles {
    /// Serve `root` (canonicalized and opened now; must be a directory),
    /// with the default open-file cache ([`DEFAULT_CACHE_ENTRIES`] per loop,
    /// each trusted for [`DEFAULT_CACHE_VALID`]) and no directory listings.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(StaticFiles {
            root: FileRoot::new(root)?,
            cache: None,
            autoindex: false,
        }
        .open_file_cache(DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_VALID))
    }

    /// Keep up to `entries` open files per loop thread (0: no cache), each
    /// trusted for `valid` after it was opened: a file changed, replaced or
    /// deleted on disk is served as it was for at most that long.
    pub fn open_file_cache(mut self, entries: usize, valid: Duration) -> Self {
        self.cache =
            (entries > 0 && !valid.is_zero()).then(|| Arc::new(CacheConfig { entries, valid }));
        self
    }

    /// List directories that have no `index.html` (HTML, names escaped);
    /// off by default, when such a directory is 403.
    pub fn autoindex(mut self, on: bool) -> Self {
        self.autoindex = on;
        self
    }

    /// Resolve paths in user space (canonicalizing) instead of with the
    /// kernel's `openat2`; see [`FileRoot::checked_in_user_space`].
    pub fn checked_in_user_space(mut self) -> Self {
        self.root = self.root.checked_in_user_space();
        self
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The open-file cache settings: `(entries per loop, validity)`, or
    /// `None` when there is no cache.
    pub fn cache_settings(&self) -> Option<(usize, Duration)> {
        self.cache.as_ref().map(|c| (c.entries, c.valid))
    }

    /// Answer `req` from the file tree.
    pub fn serve(&self, req: &Request<'_>, resp: &mut Response<'_>) {
        if !matches!(req.method_kind(), Method::Get | Method::Head) {
            resp.status(405)
                .header("Allow", "GET, HEAD")
                .text("405 Method Not Allowed\n");
            return;
        }
        match self.lookup(req.path()) {
            Ok(entry) => Self::respond(&entry, req, resp),
            Err(Miss::Directory(dir)) if self.autoindex => Self::listing(&dir, req, resp),
            Err(Miss::Directory(_)) | Err(Miss::Status(403)) => {
                resp.error(HttpError::FORBIDDEN);
            }
            Err(Miss::Status(400)) => {
                resp.error(HttpError::new(400, "bad path", false));
            }
            Err(Miss::Status(503)) => {
                resp.error(HttpError::new(503, "out of file descriptors", false));
            }
            Err(Miss::Status(_)) => {
                resp.error(HttpError::NOT_FOUND);
            }
        }
    }

    /// The entry for a request path: from this thread's cache, or opened
    /// (and cached).
    fn lookup(&self, path: &str) -> Result<Rc<Entry>, Miss> {
        let Some(cfg) = &self.cache else {
            return self.open(path, Instant::now()).map(Rc::new);
        };
        let now = Instant::now();
        if let Some(entry) = with_loop_cache(cfg, |c| c.get(path, now, cfg.valid)) {
            return Ok(entry);
        }
        let entry = Rc::new(self.open(path, now)?);
        with_loop_cache(cfg, |c| c.insert(path, entry.clone(), cfg.entries));
        Ok(entry)
    }

    fn open(&self, path: &str, now: Instant) -> Result<Entry, Miss> {
        match self.root.open(path) {
            Ok(Target::File { file, meta, path }) => Ok(Entry::new(file, &meta, &path, now)),
            Ok(Target::Directory { dir, .. }) => Err(Miss::Directory(dir)),
            Err(status) => Err(Miss::Status(status)),
        }
    }

    /// Answer from what the `fstat` said (and the file, for a body).
    fn respond(entry: &Entry, req: &Request<'_>, resp: &mut Response<'_>) {
        if not_modified(req.head(), &entry.etag, entry.mtime) {
            resp.status(304)
                .trusted_fields(&entry.fields[..entry.validators]);
            return;
        }
        let len = entry.len;
        resp.trusted_fields(&entry.fields);
        // If-Range: a range only applies to the representation the client has.
        let range_applies = match req.header_str("if-range") {
            None => true,
            Some(v) => v.trim() == entry.etag || v.trim() == entry.last_modified,
        };
        let range = match req.header_str("range") {
            Some(r) if range_applies => parse_range(r, len),
            _ => RangeResult::Full,
        };
        match range {
            RangeResult::Full => {
                resp.file(entry.file.clone(), 0, len);
            }
            RangeResult::Partial(start, end) => {
                resp.status(206)
                    .header("Content-Range", format!("bytes {start}-{end}/{len}"))
                    .file(entry.file.clone(), start, end - start + 1);
            }
            RangeResult::Unsatisfiable => {
                resp.status(416)
                    .header("Content-Range", format!("bytes */{len}"))
                    .body(b"416 Range Not Satisfiable\n");
            }
        }
    }

    /// An HTML listing of `dir` (names sorted, directories marked with `/`,
    /// links absolute so they work with or without a trailing slash).
    fn listing(dir: &File, req: &Request<'_>, resp: &mut Response<'_>) {
        let mut entries = match sys::fs::read_dir(dir.as_fd()) {
            Ok(e) => e,
            Err(_) => {
                resp.error(HttpError::FORBIDDEN);
                return;
            }
        };
        let truncated = entries.len() > LISTING_MAX;
        entries.truncate(LISTING_MAX);
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        // The path as the client sent it (percent-encoded), escaped for HTML.
        let base = html_escape(req.path().trim_end_matches('/'));
        let title = format!("{base}/");
        let mut page = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
             <body>\n<h1>Index of {title}</h1>\n<ul>\n"
        );
        if !base.is_empty() {
            let _ = writeln!(page, "<li><a href=\"{base}/../\">../</a></li>");
        }
        for e in &entries {
            let slash = if e.is_dir { "/" } else { "" };
            let name = e.name.as_bytes();
            let _ = writeln!(
                page,
                "<li><a href=\"{base}/{}{slash}\">{}{slash}</a></li>",
                percent_encode(name),
                html_escape(&String::from_utf8_lossy(name)),
            );
        }
        page.push_str("</ul>\n");
        if truncated {
            let _ = writeln!(
                page,
                "<p>(only the first {LISTING_MAX} names are shown)</p>"
            );
        }
        page.push_str("</body></html>\n");
        resp.header("Cache-Control", "no-cache").html(&page);
    }
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attributes.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A file name as a URL path segment: everything but unreserved characters
/// (RFC 3986 §2.3) percent-encoded.
fn percent_encode(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_names_are_escaped_and_encoded() {
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(
            percent_encode(b"a b/c?d#e%f\"<>.txt"),
            "a%20b%2Fc%3Fd%23e%25f%22%3C%3E.txt"
        );
        assert_eq!(percent_encode("café".as_bytes()), "caf%C3%A9");
        assert_eq!(percent_encode(b"A-z_0.9~"), "A-z_0.9~");
    }

    /// The cache evicts oldest first, never holds more than its bound, and
    /// forgets an entry once it has expired.
    #[test]
    fn loop_cache_is_bounded_and_expires() {
        let dir = std::env::temp_dir().join(format!("evnet-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f.txt");
        std::fs::write(&f, "x").unwrap();
        let t0 = Instant::now();
        let entry = |at: Instant| {
            let file = File::open(&f).unwrap();
            let meta = file.metadata().unwrap();
            Rc::new(Entry::new(file, &meta, &f, at))
        };
        let cfg = Arc::new(CacheConfig {
            entries: 3,
            valid: Duration::from_secs(1),
        });
        let mut c = LoopCache::new(&cfg);
        for k in ["/a", "/b", "/c", "/d"] {
            c.insert(k, entry(t0), cfg.entries);
        }
        assert_eq!(c.map.len(), 3);
        assert!(
            c.get("/a", t0, cfg.valid).is_none(),
            "the oldest went first"
        );
        assert!(c.get("/d", t0, cfg.valid).is_some());
        // Re-inserting the same key many times keeps the order list bounded.
        for _ in 0..1000 {
            c.insert("/d", entry(t0), cfg.entries);
        }
        assert!(c.order.len() <= 2 * cfg.entries + 16);
        assert_eq!(c.map.len(), 3);
        let later = t0 + Duration::from_secs(1);
        assert!(
            c.get("/b", later, cfg.valid).is_none(),
            "expired at the interval"
        );
        assert!(!c.map.contains_key("/b"));
        assert!(c
            .get("/c", t0 + Duration::from_millis(999), cfg.valid)
            .is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
