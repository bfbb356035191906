//! Real clients against the server: curl, Python's http.client, wrk and a
//! headless Chromium. A missing tool fails the test with a message (these
//! are the clients the server exists for; skipping would hide breakage).

#[path = "util/http.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use evnet::http::{Limits, Router, StaticFiles};
use util::*;

/// Run `prog args` under `timeout(1)` (so a hung client cannot hang the
/// suite); panics with a clear message if the tool is missing.
fn run(secs: u32, prog: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new("timeout");
    cmd.arg(secs.to_string()).arg(prog).args(args);
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(127),
        "{prog} is not installed (install it: this test needs it)"
    );
    assert_ne!(out.status.code(), Some(124), "{prog} timed out");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("evnet-clients-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn curl_reuses_the_keep_alive_connection() {
    let s = start();
    let a = addr(&s);
    let out = run(
        20,
        "curl",
        &[
            "-sv",
            &format!("http://{a}/plaintext"),
            &format!("http://{a}/json"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Hello, World!{\"message\":\"Hello, World!\"}"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "{err}"
    );
}

#[test]
fn curl_head_range_upload_and_expect_continue() {
    let dir = tmp_dir("curl");
    std::fs::write(dir.join("f.txt"), "0123456789abcdef").unwrap();
    let s = start_with(Limits::default(), Router::new(), Some(&dir));
    let a = addr(&s);

    let head = run(20, "curl", &["-sI", &format!("http://{a}/f.txt")], None);
    let h = text(&head.stdout);
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert!(h.contains("Content-Length: 16\r\n"), "{h}");

    let range = run(
        20,
        "curl",
        &["-s", "-r", "0-9", "-D", "-", &format!("http://{a}/f.txt")],
        None,
    );
    let r = text(&range.stdout);
    assert!(r.starts_with("HTTP/1.1 206 Partial Content"), "{r}");
    assert!(r.ends_with("\r\n\r\n0123456789"), "{r}");

    // `-T -` streams stdin with Transfer-Encoding: chunked.
    let body = "line one\nline two\n".repeat(500);
    let up = run(
        20,
        "curl",
        &["-sv", "-T", "-", &format!("http://{a}/echo")],
        Some(body.as_bytes()),
    );
    assert!(
        text(&up.stderr).contains("Transfer-Encoding: chunked"),
        "{}",
        text(&up.stderr)
    );
    assert_eq!(text(&up.stdout), body);

    let cont = run(
        20,
        "curl",
        &[
            "-sv",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            "@-",
            &format!("http://{a}/echo"),
        ],
        Some(b"continued body"),
    );
    assert!(
        text(&cont.stderr).contains("HTTP/1.1 100 Continue"),
        "{}",
        text(&cont.stderr)
    );
    assert_eq!(text(&cont.stdout), "continued body");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_http_client_keep_alive_and_post() {
    let s = start();
    let a = addr(&s);
    let script = format!(
        r#"
import http.client
c = http.client.HTTPConnection("127.0.0.1", {port}, timeout=10)
out = []
for i in range(3):
    c.request("GET", "/plaintext")
    r = c.getresponse()
    out.append("%d %s" % (r.status, r.read().decode()))
c.request("POST", "/echo", body=b"py-body", headers={{"Content-Type": "text/plain"}})
r = c.getresponse()
out.append("%d %s %s" % (r.status, r.getheader("Content-Type"), r.read().decode()))
c.request("HEAD", "/json")
r = c.getresponse()
out.append("%d %s %r" % (r.status, r.getheader("Content-Length"), r.read()))
print("|".join(out))
"#,
        port = a.port()
    );
    let out = run(30, "python3", &["-c", &script], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "200 Hello, World!|200 Hello, World!|200 Hello, World!|200 text/plain py-body|200 27 b''"
    );
}

#[test]
fn wrk_plaintext_has_no_socket_errors_or_non_2xx() {
    let s = start_on(
        server_builder().loops(2),
        Limits::default(),
        Router::new(),
        None,
    );
    let a = addr(&s);
    let out = run(
        60,
        "wrk",
        &["-t1", "-c200", "-d3s", &format!("http://{a}/plaintext")],
        None,
    );
    let o = text(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {o} {}",
        text(&out.stderr)
    );
    assert!(o.contains("Requests/sec"), "{o}");
    assert!(!o.contains("Socket errors"), "{o}");
    assert!(!o.contains("Non-2xx"), "{o}");
    let reqs: u64 = o
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(reqs > 1000, "too few requests completed: {o}");
}

/// Screenshot `url` with headless Chromium into `png`.
fn screenshot(url: &str, png: &Path, profile: &Path) -> Output {
    run(
        90,
        "chromium",
        &[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", png.display()),
            "--window-size=800,600",
            url,
        ],
        None,
    )
}

#[test]
fn headless_chromium_renders_a_page_with_an_image() {
    let dir = tmp_dir("chromium");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("page.html"),
        "<!doctype html><html><body style=\"margin:0\"><h1>evnet static page</h1>\
         <img src=\"pic.svg\" width=\"600\" height=\"400\"></body></html>",
    )
    .unwrap();
    std::fs::write(
        root.join("pic.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"400\">\
         <defs><linearGradient id=\"g\" x1=\"0\" y1=\"0\" x2=\"1\" y2=\"1\">\
         <stop offset=\"0\" stop-color=\"#e01010\"/><stop offset=\"0.5\" stop-color=\"#10e060\"/>\
         <stop offset=\"1\" stop-color=\"#1020e0\"/></linearGradient></defs>\
         <rect width=\"600\" height=\"400\" fill=\"url(#g)\"/><circle cx=\"300\" cy=\"200\" r=\"120\" fill=\"#ffd000\"/></svg>",
    )
    .unwrap();
    // Log every path the file fallback serves.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let files = StaticFiles::new(&root).unwrap();
    let log = seen.clone();
    let router = Router::new().fallback(move |req, resp| {
        log.lock().unwrap().push(req.path().to_string());
        files.serve(req, resp);
    });
    let s = start_with(Limits::default(), router, None);
    let a = addr(&s);

    let page_png = dir.join("page.png");
    let out = screenshot(
        &format!("http://{a}/page.html"),
        &page_png,
        &dir.join("profile1"),
    );
    assert!(page_png.exists(), "no screenshot: {}", text(&out.stderr));
    let blank_png = dir.join("blank.png");
    let out = screenshot("about:blank", &blank_png, &dir.join("profile2"));
    assert!(
        blank_png.exists(),
        "no blank screenshot: {}",
        text(&out.stderr)
    );

    let page = std::fs::read(&page_png).unwrap();
    let blank = std::fs::read(&blank_png).unwrap();
    assert_eq!(&page[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // A single-colour 800x600 PNG compresses to a few KB; a gradient image
    // and text cannot.
    assert!(
        page.len() > blank.len() * 3 && page.len() > 20_000,
        "screenshot looks blank: {} bytes vs about:blank {} bytes",
        page.len(),
        blank.len()
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|p| p == "/page.html"), "{seen:?}");
    assert!(
        seen.iter().any(|p| p == "/pic.svg"),
        "the browser never asked for the image: {seen:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
