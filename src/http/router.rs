//! Dispatch by method and path: exact paths first, then the longest matching
//! prefix, then a fallback, else `404`. A path that matches with another
//! method answers `405` with `Allow`. HEAD is served by GET routes (the
//! connection leaves the body out).

use std::collections::HashMap;
use std::sync::Arc;

use super::request::{Request, Response};
use super::HttpError;

/// A route handler. Runs on a loop thread: it must not block (defer with
/// [`Response::defer`] and answer from another thread instead).
pub type Handler = Arc<dyn Fn(&Request<'_>, &mut Response<'_>) + Send + Sync>;

/// Which methods a route answers.
#[derive(Clone)]
struct Route {
    /// `None` answers every method.
    method: Option<String>,
    handler: Handler,
}

impl Route {
    fn matches(&self, method: &str) -> bool {
        match &self.method {
            None => true,
            Some(m) => m == method || (method == "HEAD" && m == "GET"),
        }
    }
}

/// Routes requests to handlers. Build it once; servers share it between
/// loops (`Send + Sync`).
#[derive(Clone, Default)]
pub struct Router {
    exact: HashMap<String, Vec<Route>>,
    /// Longest prefix first.
    prefixes: Vec<(String, Route)>,
    fallback: Option<Handler>,
}

impl Router {
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
        let route = Route {
            method: (method != "*").then(|| method.to_string()),
            handler: Arc::new(f),
        };
        self.exact.entry(path.to_string()).or_default().push(route);
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
        let route = Route {
            method: (method != "*").then(|| method.to_string()),
            handler: Arc::new(f),
        };
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

    /// Run the handler for `req`.
    pub fn dispatch(&self, req: &Request<'_>, resp: &mut Response<'_>) {
        let method = req.method();
        let path = req.path();
        if let Some(routes) = self.exact.get(path) {
            if let Some(r) = routes.iter().find(|r| r.matches(method)) {
                return (r.handler)(req, resp);
            }
            let mut allow = String::new();
            for r in routes {
                if let Some(m) = &r.method {
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
            if path.starts_with(p.as_str()) && r.matches(method) {
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

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut paths: Vec<&str> = self.exact.keys().map(String::as_str).collect();
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
