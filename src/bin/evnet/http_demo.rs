//! The demo routes `evnet http` serves next to the program's own: `/` (a
//! page about the server, or the document root's `index.html`), `/_evnet`
//! (the page, always), `/plaintext`, `/json`, `/stats` (live counters),
//! `/whoami` (the client's address) and `/echo` (answers with the request
//! body); and the operations routes
//! ([`status_routes`]): `/metrics` (Prometheus), `/stub_status` (nginx's
//! format) and the live status page with its JSON (`/status`,
//! `/status.json` by default), which `--metrics-addr` also serves for
//! `evnet echo` and `evnet resp`.
//!
//! The library's `HttpBuilder` serves only what it is given; these routes
//! are the CLI's. The HTTP integration tests include this file
//! (`tests/util/http.rs`), so they exercise exactly what the CLI serves;
//! it therefore uses nothing but evnet's public API.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use evnet::http::{Router, StaticFiles};
use evnet::net::metrics::{ListenQueue, Snapshot};
use evnet::net::Server;
use evnet::reactor::LoopHandle;

/// The live status page: HTML with inline script and SVG charts, no
/// external assets. It polls the JSON beside it (its own path + `.json`),
/// first with `?history` for the last minutes.
const STATUS_PAGE: &str = include_str!("status.html");

/// What the operations routes read: the loops of the server they report
/// on (set once it runs), and whether it speaks HTTP (for the response
/// counters and the latency histogram).
pub struct Status {
    loops: OnceLock<Vec<LoopHandle>>,
    http: bool,
    started: Instant,
    /// The counters once a second for the last [`HISTORY`] seconds (each
    /// sample as the JSON the page polls), so a page opened now draws the
    /// recent past at once.
    history: Mutex<VecDeque<String>>,
}

/// Seconds of samples kept for the status page.
const HISTORY: usize = 300;

impl Status {
    /// Status of a server not started yet; `http`: it answers HTTP.
    pub fn new(http: bool) -> Arc<Status> {
        Arc::new(Status {
            loops: OnceLock::new(),
            http,
            started: Instant::now(),
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        })
    }

    /// The server is up: report on these loops, and sample them once a
    /// second, from a timer on the first of them (no thread of its own: a
    /// single-reactor server stays single-threaded).
    pub fn serving(self: &Arc<Self>, loops: &[LoopHandle]) {
        if self.loops.set(loops.to_vec()).is_err() {
            return;
        }
        let Some(first) = loops.first() else {
            return;
        };
        let status = Arc::downgrade(self);
        let _ = first.post(move |el| {
            el.run_every(std::time::Duration::from_secs(1), move |_| {
                let Some(status) = status.upgrade() else {
                    return;
                };
                let sample = status.sample_json();
                let mut h = status.history.lock().unwrap_or_else(|e| e.into_inner());
                if h.len() == HISTORY {
                    h.pop_front();
                }
                h.push_back(sample);
            });
        });
    }

    /// The counters now, as the page polls them.
    fn sample_json(&self) -> String {
        let mut out = String::with_capacity(1024);
        let _ = write!(
            out,
            "{{\"uptime_secs\":{:.3},\"http\":{},\"counters\":",
            self.started.elapsed().as_secs_f64(),
            self.http
        );
        self.snapshot().write_json(&mut out);
        out.push('}');
        out
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::of(self.loops.get().map_or(&[], |l| l.as_slice()))
    }
}

/// `router` with `/metrics`, `/stub_status`, and the status page at
/// `page` with its JSON at `page` + `.json`, reporting on `status`.
pub fn status_routes(router: Router, status: &Arc<Status>, page: &str) -> Router {
    let (s1, s2, s3) = (status.clone(), status.clone(), status.clone());
    let json = format!("{page}.json");
    router
        .get("/metrics", move |_req, resp| {
            let mut out = String::with_capacity(8 * 1024);
            // The kernel's counters are optional: a kernel without
            // /proc/net/netstat still gets the server's own.
            s1.snapshot()
                .write_prometheus(&mut out, "evnet", ListenQueue::read().ok(), s1.http);
            resp.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                .header("Cache-Control", "no-store")
                .body(out.as_bytes());
        })
        .get("/stub_status", move |_req, resp| {
            let mut out = String::new();
            s2.snapshot().write_stub_status(&mut out);
            resp.header("Cache-Control", "no-store").text(&out);
        })
        .get(page, |_req, resp| {
            resp.header("Cache-Control", "no-store").html(STATUS_PAGE);
        })
        .get(&json, move |req, resp| {
            let mut out = s3.sample_json();
            // `?history`: with the samples of the last minutes, oldest first.
            if req
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "history"))
            {
                out.pop();
                out.push_str(",\"history\":[");
                let h = s3.history.lock().unwrap_or_else(|e| e.into_inner());
                for (i, sample) in h.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(sample);
                }
                out.push_str("]}");
            }
            out.push('\n');
            resp.header("Cache-Control", "no-store").json(&out);
        })
}

/// The demo routes and the facts about the running server they show.
pub struct Demo {
    info: Arc<Info>,
    status: Arc<Status>,
}

struct Info {
    /// The document root, for `/` (its `index.html`) and the page.
    files: Option<StaticFiles>,
    started: Instant,
    /// The server's description and serving loops, once it runs.
    server: OnceLock<(String, Vec<LoopHandle>)>,
}

impl Demo {
    /// Demo routes for a server with these static files (if any).
    pub fn new(files: Option<StaticFiles>) -> Demo {
        Demo {
            info: Arc::new(Info {
                files,
                started: Instant::now(),
                server: OnceLock::new(),
            }),
            status: Status::new(true),
        }
    }

    /// `router` with the demo routes added, the status page at
    /// `status_page`; the routes already in it take precedence.
    pub fn routes_with_status(&self, router: Router, status_page: &str) -> Router {
        status_routes(self.routes(router), &self.status, status_page)
    }

    /// `router` with the demo routes added; the routes already in it take
    /// precedence.
    pub fn routes(&self, router: Router) -> Router {
        let (i1, i2, i3) = (self.info.clone(), self.info.clone(), self.info.clone());
        router
            .get("/", move |req, resp| {
                // With a document root, `/` is its index.html if there is one.
                if let Some(f) = &i1.files {
                    if f.root().join("index.html").is_file() {
                        return f.serve(req, resp);
                    }
                }
                resp.html(&i1.page());
            })
            .get("/_evnet", move |_req, resp| {
                resp.html(&i2.page());
            })
            .get("/plaintext", |_req, resp| {
                resp.text("Hello, World!");
            })
            .get("/json", |_req, resp| {
                resp.json("{\"message\":\"Hello, World!\"}");
            })
            .get("/stats", move |_req, resp| {
                resp.header("Cache-Control", "no-store")
                    .json(&i3.stats_json());
            })
            .get("/whoami", |_req, resp| {
                // The client as the server sees it: behind a balancer
                // speaking the PROXY protocol, the one its header named.
                let peer = resp
                    .peer_addr()
                    .map_or_else(|| "unknown".to_string(), |a| a.to_string());
                resp.header("Cache-Control", "no-store")
                    .text(&format!("{peer}\n"));
            })
            .route("*", "/echo", |req, resp| {
                let ct = req
                    .header("content-type")
                    .unwrap_or(b"application/octet-stream");
                resp.header("Content-Type", ct).body(req.body());
            })
    }

    /// The server is up: its description and loops go on the pages.
    pub fn serving(&self, server: &Server) {
        self.status.serving(server.serving_loops());
        let _ = self.info.server.set((
            server.description().to_string(),
            server.serving_loops().to_vec(),
        ));
    }
}

impl Info {
    fn loops(&self) -> &[LoopHandle] {
        self.server.get().map_or(&[], |(_, loops)| loops.as_slice())
    }

    fn stats_json(&self) -> String {
        let (mut open, mut total, mut reqs, mut bin, mut bout) = (0usize, 0u64, 0u64, 0u64, 0u64);
        let mut per = String::new();
        for (i, l) in self.loops().iter().enumerate() {
            let s = l.stats();
            let o = s.connections_open.load(Ordering::Relaxed);
            let t = s.connections_total.load(Ordering::Relaxed);
            let r = s.messages.load(Ordering::Relaxed);
            let bi = s.bytes_in.load(Ordering::Relaxed);
            let bo = s.bytes_out.load(Ordering::Relaxed);
            open += o;
            total += t;
            reqs += r;
            bin += bi;
            bout += bo;
            if i > 0 {
                per.push(',');
            }
            let _ = write!(
                per,
                "{{\"id\":{},\"connections_open\":{o},\"connections_total\":{t},\"requests\":{r},\"bytes_in\":{bi},\"bytes_out\":{bo}}}",
                l.id()
            );
        }
        format!(
            "{{\"connections_open\":{open},\"connections_total\":{total},\"requests\":{reqs},\"bytes_in\":{bin},\"bytes_out\":{bout},\"uptime_secs\":{},\"loops\":[{per}]}}\n",
            self.started.elapsed().as_secs()
        )
    }

    fn page(&self) -> String {
        let description = self.server.get().map_or("", |(d, _)| d.as_str());
        let root = self.files.as_ref().map_or_else(
            || "none".to_string(),
            |f| html_escape(&f.root().display().to_string()),
        );
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>evnet</title></head><body>\n\
             <h1>evnet HTTP/1.1 server</h1>\n<ul>\n<li>{}</li>\n<li>serving loops: {}</li>\n\
             <li>uptime: {} s</li>\n<li>document root: {root}</li>\n</ul>\n\
             <p><a href=\"/plaintext\">/plaintext</a> | <a href=\"/json\">/json</a> | \
             <a href=\"/stats\">/stats</a> | <a href=\"/metrics\">/metrics</a> | \
             <a href=\"/stub_status\">/stub_status</a></p>\n</body></html>\n",
            html_escape(description),
            self.loops().len(),
            self.started.elapsed().as_secs()
        )
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
