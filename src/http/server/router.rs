//! Dispatch by method and path: exact paths first, then the longest matching
//! prefix, then a fallback, else `404`. A path that matches with another
//! method answers `405` with `Allow`. HEAD is served by GET routes (the
//! connection leaves the body out).

use std::collections::HashMap;
use std::sync::Arc;

use crate::http::dispatch::{Response, Service};
use crate::http::message::Request;
use crate::http::proto::parse::Method;
use crate::http::proto::HttpError;

/// A route handler. Runs on a loop thread: it must not block (defer with
/// [`Response::defer`] and answer from another thread instead).
pub type Handler = Arc<dyn Fn(&Request<'_>, &mut Response<'_>) + Send + Sync>;

/// Which methods a route answers.
#[derive(Clone)]
struct Route {
    /// `None` answers every method.
    method: Option<(Method, String)>,
    handler: Handler,
}

impl Route {
    fn new(method: &str, handler: Handler) -> Route {
        Route {
            method: (method != "*")
                .then(|| (Method::from_bytes(method.as_bytes()), method.to_string())),
            handler,
        }
    }

    fn matches(&self, req: &Request<'_>) -> bool {
        match &self.method {
            None => true,
            // Known methods compare as enums; others by name.
            Some((Method::Other, m)) => m == req.method(),
            Some((k, _)) => {
                let kind = req.method_kind();
                *k == kind || (kind == Method::Head && *k == Method::Get)
            }
        }
    }
}

/// Up to this many exact paths are found by a scan.
const SCAN_MAX: usize = 16;

/// Routes requests to handlers. Build it once; servers share it between
/// loops (`Send + Sync`).
#[derive(Clone, Default)]
pub struct Router {
    /// Exact paths with their routes, in the order first added.
    exact: Vec<(String, Vec<Route>)>,
    /// Position in `exact` by path, once there are too many for a scan.
    index: Option<HashMap<String, usize>>,
    /// Longest prefix first.
    prefixes: Vec<(String, Route)>,
    fallback: Option<Handler>,
}

impl Router {
    /// An empty router: until routes are added, every request gets `404`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer `method` (`"*"` for any) on exactly `path` (raw, as sent).
    pub fn route(
        mut self,
        method: &str,
        path: &str,
        f: impl Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static,
    ) -> Self {
        let route = Route::new(method, Arc::new(f));
        match self.exact_routes(path) {
            Some(i) => self.exact[i].1.push(route),
            None => {
                self.exact.push((path.to_string(), vec![route]));
                match &mut self.index {
                    Some(index) => {
                        index.insert(path.to_string(), self.exact.len() - 1);
                    }
                    None if self.exact.len() > SCAN_MAX => {
                        let index = self.exact.iter().enumerate();
                        self.index = Some(index.map(|(i, (p, _))| (p.clone(), i)).collect());
                    }
                    None => {}
                }
            }
        }
        self
    }

    /// GET (and HEAD) on exactly `path`.
    pub fn get(
        self,
        path: &str,
        f: impl Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.route("GET", path, f)
    }

    /// POST on exactly `path`.
    pub fn post(
        self,
        path: &str,
        f: impl Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.route("POST", path, f)
    }

    /// Answer `method` (`"*"` for any) on every path starting with `prefix`.
    pub fn prefix(
        mut self,
        method: &str,
        prefix: &str,
        f: impl Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static,
    ) -> Self {
        let route = Route::new(method, Arc::new(f));
        self.prefixes.push((prefix.to_string(), route));
        self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        self
    }

    /// Answer whatever nothing else matched (instead of `404`).
    pub fn fallback(
        mut self,
        f: impl Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Arc::new(f));
        self
    }

    /// Whether a fallback is set.
    pub fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// Position of `path` in `exact`: a scan while the table is small
    /// (cheaper than hashing a short path), a map lookup beyond.
    fn exact_routes(&self, path: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(path).copied(),
            None => self.exact.iter().position(|(p, _)| p == path),
        }
    }

    /// Run the handler for `req`.
    pub fn dispatch(&self, req: &Request<'_>, resp: &mut Response<'_>) {
        let path = req.path();
        if let Some(routes) = self.exact_routes(path).map(|i| &self.exact[i].1) {
            if let Some(r) = routes.iter().find(|r| r.matches(req)) {
                return (r.handler)(req, resp);
            }
            let mut allow = String::new();
            for r in routes {
                if let Some((_, m)) = &r.method {
                    if !allow.is_empty() {
                        allow.push_str(", ");
                    }
                    allow.push_str(m);
                }
            }
            resp.status(405)
                .header("Allow", allow)
                .text("405 Method Not Allowed\n");
            return;
        }
        for (p, r) in &self.prefixes {
            if path.starts_with(p.as_str()) && r.matches(req) {
                return (r.handler)(req, resp);
            }
        }
        match &self.fallback {
            Some(f) => f(req, resp),
            None => {
                resp.error(HttpError::NOT_FOUND);
            }
        }
    }
}

/// The router is the service [`HttpBuilder`](super::HttpBuilder) serves.
impl Service for Router {
    fn call(&self, req: &Request<'_>, resp: &mut Response<'_>) {
        self.dispatch(req, resp)
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut paths: Vec<&str> = self.exact.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort_unstable();
        f.debug_struct("Router")
            .field("exact", &paths)
            .field(
                "prefixes",
                &self
                    .prefixes
                    .iter()
                    .map(|p| p.0.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}
