//! The HTTP/1.1 server: [`HttpHandler`] (one per loop) on the framework's
//! [`Server`], configured with [`HttpBuilder`]. It serves what the program
//! registers, nothing else: the [`Router`]'s routes, then files under the
//! document root if one is set ([`StaticFiles`]), else `404`.
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

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::http::dispatch::HttpHandler;
use crate::http::proto::Limits;
use crate::net::{Server, ServerBuilder};
use crate::reactor::EventLoop;
use router::Router;
use static_files::StaticFiles;

/// Configures and starts an HTTP server.
#[derive(Debug)]
pub struct HttpBuilder {
    server: ServerBuilder,
    limits: Limits,
    router: Router,
    files: Files,
}

/// Where the files for unmatched paths come from.
#[derive(Debug)]
enum Files {
    None,
    /// A root opened with [`StaticFiles::new`]'s defaults at start.
    Root(PathBuf),
    /// Files the program configured.
    Configured(StaticFiles),
}

impl HttpBuilder {
    /// Serve on the listeners and loops `server` describes.
    pub fn new(server: ServerBuilder) -> Self {
        HttpBuilder {
            server,
            limits: Limits::default(),
            router: Router::new(),
            files: Files::None,
        }
    }

    /// Request limits and timeouts.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The application's routes (without any, every request is `404`, or a
    /// file under [`HttpBuilder::root`]).
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// Serve files under `dir` for paths no route matched (unless the
    /// router has a fallback of its own), with [`StaticFiles::new`]'s
    /// defaults.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.files = Files::Root(dir.into());
        self
    }

    /// Serve files with `files` (a root and its settings: open-file cache,
    /// listings) for paths no route matched; replaces [`HttpBuilder::root`].
    pub fn static_files(mut self, files: StaticFiles) -> Self {
        self.files = Files::Configured(files);
        self
    }

    /// Bind and serve on loop threads; see [`ServerBuilder::start`].
    pub fn start(self) -> io::Result<HttpServer> {
        let (server, router, limits) = self.prepare()?;
        let server = server.start(move |_| HttpHandler::new(router.clone(), limits.clone()))?;
        Ok(HttpServer { server })
    }

    /// Serve with the single reactor on the calling thread until the loop
    /// stops; see [`ServerBuilder::run`]. `ready` runs on the loop first.
    pub fn run(self, ready: impl FnOnce(&mut EventLoop, &Server)) -> io::Result<()> {
        let (server, router, limits) = self.prepare()?;
        server.run(
            move |_| HttpHandler::new(router.clone(), limits.clone()),
            ready,
        )
    }

    /// The framework server and what every loop's handler gets: the routes
    /// (with the document root as their fallback) and the limits.
    fn prepare(self) -> io::Result<(ServerBuilder, Arc<Router>, Limits)> {
        let mut router = self.router;
        let files = match self.files {
            Files::Configured(files) => Some(files),
            Files::Root(dir) => Some(StaticFiles::new(&dir).map_err(|e| {
                io::Error::new(e.kind(), format!("document root {}: {e}", dir.display()))
            })?),
            Files::None => None,
        };
        if let Some(files) = files {
            if !router.has_fallback() {
                router = router.fallback(move |req, resp| files.serve(req, resp));
            }
        }
        Ok((self.server, Arc::new(router), self.limits))
    }
}

/// A running HTTP server; stops on drop (or [`HttpServer::shutdown`]).
pub struct HttpServer {
    server: Server,
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

    /// Stop the loops and wait for them.
    pub fn shutdown(self) -> io::Result<()> {
        self.server.shutdown()
    }

    /// The underlying server (for graceful shutdown and the like).
    pub fn into_server(self) -> Server {
        self.server
    }
}
