//! Static files from a document root: bytes, types, validators, ranges,
//! index.html, traversal.

#[path = "util/http.rs"]
mod util;

use std::path::PathBuf;

use evnet::http::{Limits, Router};
use util::*;

/// A temporary tree: root/{hello.txt, data.bin, sub/index.html, empty/} and
/// a secret file outside the root, linked from inside.
struct Tree {
    base: PathBuf,
    root: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        let base = std::env::temp_dir().join(format!("evnet-static-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("hello.txt"), "hello, static world\n").unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(root.join("data.bin"), &data).unwrap();
        std::fs::write(root.join("sub/index.html"), "<p>sub index</p>\n").unwrap();
        std::fs::write(base.join("secret.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
        Tree { base, root }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn get(addr: std::net::SocketAddr, path: &str, extra: &str) -> Resp {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    let mut r = exchange(addr, req.as_bytes());
    assert_eq!(r.len(), 1, "one response for {path}");
    r.remove(0)
}

#[test]
fn file_is_served_with_correct_bytes_and_type() {
    let t = Tree::new("bytes");
    let s = start_with(Limits::default(), Router::new(), Some(&t.root));
    let r = get(addr(&s), "/hello.txt", "");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, b"hello, static world\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("etag").unwrap().starts_with('"'));
    assert!(r.header("last-modified").unwrap().ends_with("GMT"));
    let big = get(addr(&s), "/data.bin", "");
    assert_eq!(big.body, std::fs::read(t.root.join("data.bin")).unwrap());
    assert_eq!(big.header("content-type"), Some("application/octet-stream"));
}

#[test]
fn pipelined_files_and_head_keep_order() {
    let t = Tree::new("pipe");
    let s = start_with(Limits::default(), Router::new(), Some(&t.root));
    let mut c = Client::connect(addr(&s));
    c.send(b"GET /data.bin HTTP/1.1\r\nHost: x\r\n\r\nHEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().unwrap().body.len(), 100_000);
    let h = c.read_response_for(true).unwrap();
    assert_eq!(h.header("content-length"), Some("20"));
    assert_eq!(c.read_response().unwrap().body, b"hello, static world\n");
}

#[test]
fn if_none_match_and_if_modified_since_give_304() {
    let t = Tree::new("cond");
    let s = start_with(Limits::default(), Router::new(), Some(&t.root));
    let r = get(addr(&s), "/hello.txt", "");
    let etag = r.header("etag").unwrap().to_string();
    let lm = r.header("last-modified").unwrap().to_string();
    let n = get(
        addr(&s),
        "/hello.txt",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(n.status_line, "HTTP/1.1 304 Not Modified");
    assert!(n.body.is_empty());
    assert_eq!(n.header("etag"), Some(etag.as_str()));
    let m = get(
        addr(&s),
        "/hello.txt",
        &format!("If-Modified-Since: {lm}\r\n"),
    );
    assert_eq!(m.status(), 304);
    let changed = get(addr(&s), "/hello.txt", "If-None-Match: \"other\"\r\n");
    assert_eq!(changed.status(), 200);
}

#[test]
fn range_gives_206_and_unsatisfiable_range_416() {
    let t = Tree::new("range");
    let s = start_with(Limits::default(), Router::new(), Some(&t.root));
    let r = get(addr(&s), "/hello.txt", "Range: bytes=0-4\r\n");
    assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("content-range"), Some("bytes 0-4/20"));
    let tail = get(addr(&s), "/hello.txt", "Range: bytes=-6\r\n");
    assert_eq!(tail.body, b"world\n");
    let bad = get(addr(&s), "/hello.txt", "Range: bytes=50-60\r\n");
    assert_eq!(bad.status_line, "HTTP/1.1 416 Range Not Satisfiable");
    assert_eq!(bad.header("content-range"), Some("bytes */20"));
}

#[test]
fn directory_serves_index_html() {
    let t = Tree::new("index");
    let s = start_with(Limits::default(), Router::new(), Some(&t.root));
    for p in ["/sub/", "/sub"] {
        let r = get(addr(&s), p, "");
        assert_eq!(r.status(), 200, "{p}");
        assert_eq!(r.body, b"<p>sub index</p>\n");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
    assert_eq!(get(addr(&s), "/empty/", "").status(), 404);
    assert_eq!(get(addr(&s), "/missing.txt", "").status(), 404);
}

#[test]
fn traversal_attempts_are_refused() {
    let t = Tree::new("trav");
    let s = start_with(Limits::default(), Router::new(), Some(&t.root));
    for p in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/%2E%2E/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/link.txt",
    ] {
        let r = get(addr(&s), p, "");
        assert!(matches!(r.status(), 403 | 404), "{p}: {}", r.status_line);
        assert!(!r.body_str().contains("secret\n"), "{p} leaked the file");
    }
}

#[test]
fn post_to_a_file_is_405() {
    let t = Tree::new("post");
    let s = start_with(Limits::default(), Router::new(), Some(&t.root));
    let r = exchange(
        addr(&s),
        b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r[0].status(), 405);
    assert_eq!(r[0].header("allow"), Some("GET, HEAD"));
}
