//! The HTTP/1.1 server: [`HttpHandler`] (one per loop) on the framework's
//! [`Server`], configured with [`HttpBuilder`].
//!
//! ```no_run
//! use evnet::http::{HttpBuilder, Router};
//! use evnet::net::ServerBuilder;
//!
//! let router = Router::new().get("/hello", |_req, resp| {
//!     resp.text("hi\n");
//! });
//! let server = HttpBuilder::new(ServerBuilder::new().bind("127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap()))
//!     .router(router)
//!     .start()
//!     .unwrap();
//! println!("http://{}/", server.local_addr().unwrap());
//! ```

pub mod files;
pub mod router;
pub mod static_files;

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::http::dispatch::HttpHandler;
use crate::http::proto::Limits;
use crate::net::{Server, ServerBuilder};
use crate::reactor::{EventLoop, LoopHandle};
use router::Router;
use static_files::StaticFiles;

/// Facts about the running server for the built-in pages.
struct Info {
    description: String,
    root: Option<PathBuf>,
    started: Instant,
    loops: OnceLock<Vec<LoopHandle>>,
}

/// Configures and starts an HTTP server.
#[derive(Debug)]
pub struct HttpBuilder {
    server: ServerBuilder,
    limits: Limits,
    router: Router,
    root: Option<PathBuf>,
    builtins: bool,
}

impl HttpBuilder {
    /// Serve on the listeners and loops `server` describes.
    pub fn new(server: ServerBuilder) -> Self {
        HttpBuilder {
            server,
            limits: Limits::default(),
            router: Router::new(),
            root: None,
            builtins: true,
        }
    }

    /// Request limits and timeouts.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The application's routes (they take precedence over the built-ins).
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// Serve files under `dir` for paths no route matched.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// Add the built-in routes (default on): `/` (server page, or the root's
    /// `index.html` when serving files), `/_evnet`, `/plaintext`, `/json`,
    /// `/stats` and `/echo` (answers with the request body).
    pub fn builtins(mut self, on: bool) -> Self {
        self.builtins = on;
        self
    }

    /// Bind and serve on loop threads; see [`ServerBuilder::start`].
    pub fn start(self) -> io::Result<HttpServer> {
        let (server, info, router, limits) = self.prepare()?;
        let server = server.start(move |_| HttpHandler::new(router.clone(), limits.clone()))?;
        let _ = info.loops.set(server.serving_loops().to_vec());
        Ok(HttpServer { server, info })
    }

    /// Serve with the single reactor on the calling thread until the loop
    /// stops; see [`ServerBuilder::run`]. `ready` runs on the loop first.
    pub fn run(self, ready: impl FnOnce(&mut EventLoop, &Server)) -> io::Result<()> {
        let (server, info, router, limits) = self.prepare()?;
        server.run(
            move |_| HttpHandler::new(router.clone(), limits.clone()),
            |el, server| {
                let _ = info.loops.set(server.serving_loops().to_vec());
                ready(el, server)
            },
        )
    }

    /// The framework server, the `/stats` info, and what every loop's
    /// handler gets (routes, limits).
    fn prepare(self) -> io::Result<(ServerBuilder, Arc<Info>, Arc<Router>, Limits)> {
        let files = match &self.root {
            Some(dir) => Some(Arc::new(StaticFiles::new(dir).map_err(|e| {
                io::Error::new(e.kind(), format!("document root {}: {e}", dir.display()))
            })?)),
            None => None,
        };
        let info = Arc::new(Info {
            description: self.server.describe(),
            root: files.as_ref().map(|f| f.root().to_path_buf()),
            started: Instant::now(),
            loops: OnceLock::new(),
        });
        let mut router = self.router;
        if self.builtins {
            router = add_builtins(router, &info, files.clone());
        }
        if let Some(files) = files {
            if !router.has_fallback() {
                router = router.fallback(move |req, resp| files.serve(req, resp));
            }
        }
        Ok((self.server, info, Arc::new(router), self.limits))
    }
}

/// A running HTTP server; stops on drop (or [`HttpServer::shutdown`]).
pub struct HttpServer {
    server: Server,
    info: Arc<Info>,
}

impl HttpServer {
    /// The first TCP listening address.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.local_addr()
    }

    /// The underlying framework server (addresses, loops, stats).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Counters summed over all loops, as served by `/stats`.
    pub fn stats_json(&self) -> String {
        stats_json(&self.info)
    }

    /// Stop the loops and wait for them.
    pub fn shutdown(self) -> io::Result<()> {
        self.server.shutdown()
    }

    /// The underlying server (for graceful shutdown and the like).
    pub fn into_server(self) -> Server {
        self.server
    }
}

fn stats_json(info: &Info) -> String {
    let loops = info.loops.get().map(Vec::as_slice).unwrap_or(&[]);
    let (mut open, mut total, mut reqs, mut bin, mut bout) = (0usize, 0u64, 0u64, 0u64, 0u64);
    let mut per = String::new();
    for (i, l) in loops.iter().enumerate() {
        let s = l.stats();
        let o = s.connections_open.load(Ordering::Relaxed);
        let t = s.connections_total.load(Ordering::Relaxed);
        let r = s.requests.load(Ordering::Relaxed);
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
        info.started.elapsed().as_secs()
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn info_page(info: &Info) -> String {
    let loops = info.loops.get().map_or(0, Vec::len);
    let root = info.root.as_ref().map_or_else(
        || "none".to_string(),
        |r| html_escape(&r.display().to_string()),
    );
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>evnet</title></head><body>\n\
         <h1>evnet HTTP/1.1 server</h1>\n<ul>\n<li>{}</li>\n<li>serving loops: {loops}</li>\n\
         <li>uptime: {} s</li>\n<li>document root: {root}</li>\n</ul>\n\
         <p><a href=\"/plaintext\">/plaintext</a> | <a href=\"/json\">/json</a> | \
         <a href=\"/stats\">/stats</a></p>\n</body></html>\n",
        html_escape(&info.description),
        info.started.elapsed().as_secs()
    )
}

fn add_builtins(router: Router, info: &Arc<Info>, files: Option<Arc<StaticFiles>>) -> Router {
    let (i1, i2, i3) = (info.clone(), info.clone(), info.clone());
    router
        .get("/", move |req, resp| {
            // With a document root, `/` is its index.html if there is one.
            if let Some(f) = &files {
                if f.root().join("index.html").is_file() {
                    return f.serve(req, resp);
                }
            }
            resp.html(&info_page(&i1));
        })
        .get("/_evnet", move |_req, resp| {
            resp.html(&info_page(&i2));
        })
        .get("/plaintext", |_req, resp| {
            resp.text("Hello, World!");
        })
        .get("/json", |_req, resp| {
            resp.json("{\"message\":\"Hello, World!\"}");
        })
        .get("/stats", move |_req, resp| {
            resp.header("Cache-Control", "no-store")
                .json(&stats_json(&i3));
        })
        .route("*", "/echo", |req, resp| {
            let ct = req
                .header("content-type")
                .unwrap_or(b"application/octet-stream");
            resp.header("Content-Type", ct).body(req.body());
        })
}
