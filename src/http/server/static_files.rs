//! Serving a directory tree: GET/HEAD, conditional requests (304), single
//! byte ranges (206/416), `index.html` for directories, bodies sent with
//! sendfile(2). Path policy (traversal, symlinks) is [`FileRoot::resolve`]'s.

use std::fs::File;
use std::path::Path;

use super::files::{
    content_type, etag_for, http_date, not_modified, parse_range, FileRoot, RangeResult,
};
use crate::http::dispatch::Response;
use crate::http::message::Request;
use crate::http::proto::parse::Method;
use crate::http::proto::HttpError;

/// A route handler serving files under a root.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: FileRoot,
}

impl StaticFiles {
    /// Serve `root` (canonicalized now; must be a directory).
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(StaticFiles {
            root: FileRoot::new(root)?,
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Answer `req` from the file tree.
    pub fn serve(&self, req: &Request<'_>, resp: &mut Response<'_>) {
        if !matches!(req.method_kind(), Method::Get | Method::Head) {
            resp.status(405)
                .header("Allow", "GET, HEAD")
                .text("405 Method Not Allowed\n");
            return;
        }
        let path = match self.root.resolve(req.path()) {
            Ok(p) => p,
            Err(403) => {
                resp.error(HttpError::FORBIDDEN);
                return;
            }
            Err(400) => {
                resp.error(HttpError::new(400, "bad path", false));
                return;
            }
            Err(_) => {
                resp.error(HttpError::NOT_FOUND);
                return;
            }
        };
        let (file, meta) = match File::open(&path).and_then(|f| f.metadata().map(|m| (f, m))) {
            Ok(fm) => fm,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                resp.error(HttpError::FORBIDDEN);
                return;
            }
            Err(_) => {
                resp.error(HttpError::NOT_FOUND);
                return;
            }
        };
        let etag = etag_for(&meta);
        let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let last_modified = http_date(mtime);
        if not_modified(req.head(), &etag, mtime) {
            resp.status(304)
                .header("ETag", &etag)
                .header("Last-Modified", &last_modified);
            return;
        }
        let len = meta.len();
        resp.header("Content-Type", content_type(&path).as_ref())
            .header("ETag", &etag)
            .header("Last-Modified", &last_modified)
            .header("Accept-Ranges", "bytes");
        // If-Range: a range only applies to the representation the client has.
        let range_applies = match req.header_str("if-range") {
            None => true,
            Some(v) => v.trim() == etag || v.trim() == last_modified,
        };
        let range = match req.header_str("range") {
            Some(r) if range_applies => parse_range(r, len),
            _ => RangeResult::Full,
        };
        match range {
            RangeResult::Full => {
                resp.file(file, 0, len);
            }
            RangeResult::Partial(start, end) => {
                resp.status(206)
                    .header("Content-Range", format!("bytes {start}-{end}/{len}"))
                    .file(file, start, end - start + 1);
            }
            RangeResult::Unsatisfiable => {
                resp.status(416)
                    .header("Content-Range", format!("bytes */{len}"))
                    .body(b"416 Range Not Satisfiable\n");
            }
        }
    }
}
