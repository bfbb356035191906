//! `--metrics-addr` for the servers that do not speak HTTP (`echo`,
//! `resp`): a small evnet HTTP server on its own loop thread serving
//! `/metrics`, `/stub_status` and the status page about the main server's
//! loops (`http_demo::status_routes`; `evnet http` serves them itself).

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use evnet::http::{HttpBuilder, HttpServer, Router};
use evnet::net::{AcceptMode, Addr, Server, ServerBuilder};

use crate::http_demo::{status_routes, Status};

#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Serve /metrics (Prometheus), /stub_status (nginx format) and the
    /// live status page about this server on ADDR (HOST:PORT), from a loop
    /// thread of its own.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Path of the live status page on --metrics-addr (its JSON is the
    /// path + `.json`).
    #[arg(long, value_name = "PATH", default_value = "/status")]
    pub status_path: String,
}

/// The running metrics listener: keeps its server alive, and learns the
/// main server's loops once that runs.
pub struct MetricsListener {
    status: Arc<Status>,
    _server: HttpServer,
}

impl MetricsArgs {
    /// Start the listener if `--metrics-addr` was given.
    pub fn start(&self, name: &str) -> Result<Option<MetricsListener>> {
        let Some(addr) = &self.metrics_addr else {
            return Ok(None);
        };
        if !self.status_path.starts_with('/') {
            anyhow::bail!("--status-path must start with '/'");
        }
        let addr = Addr::parse(addr).with_context(|| format!("bad --metrics-addr {addr:?}"))?;
        // Not HTTP: the status-class counters and the latency histogram
        // would stay empty (the listener's own loop is not reported on).
        let status = Status::new(false);
        // One loop with its own listener: the scrapes take one thread.
        let builder = ServerBuilder::new()
            .bind(addr)
            .loops(1)
            .accept_mode(AcceptMode::ReusePort);
        let server = HttpBuilder::new(builder)
            .router(status_routes(Router::new(), &status, &self.status_path))
            .start()
            .context("starting the --metrics-addr listener")?;
        for a in server.server().addrs() {
            println!(
                "evnet {name} metrics on http://{a}/metrics (status page http://{a}{})",
                self.status_path
            );
        }
        Ok(Some(MetricsListener {
            status,
            _server: server,
        }))
    }
}

impl MetricsListener {
    /// The main server is up: report on its loops.
    pub fn serving(&self, server: &Server) {
        self.status.serving(server.serving_loops());
    }
}
