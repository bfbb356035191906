//! `evnet http`: the HTTP/1.1 server (the demo routes of `http_demo.rs`,
//! optional static files).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use evnet::http::{HttpBuilder, Limits, Router, StaticFiles};
use evnet::net::{auto_max_connections, MaxConnections, Server};

use crate::common::{
    block_stop_signals, either, parse_bytes, parse_duration, serve_until_signal,
    watch_stop_signals, ModelArg, ServerArgs,
};
use crate::http_demo::Demo;

#[derive(Args, Debug)]
pub struct HttpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Serve files under this directory (GET/HEAD, ranges, conditional requests).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Open files kept per loop for --root (descriptor, size, validators);
    /// 0 turns the cache off.
    #[arg(long, value_name = "ENTRIES", default_value_t = evnet::http::DEFAULT_CACHE_ENTRIES)]
    pub open_file_cache: usize,
    /// How long a cached file is trusted before it is opened again: a file
    /// changed or deleted on disk is served as it was for at most this long.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub open_file_cache_valid: Duration,
    /// List the names in directories that have no index.html (otherwise 403).
    #[arg(long)]
    pub autoindex: bool,
    /// Deadline for a complete request head (408 after it), e.g. 10s, 500ms.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub header_timeout: Duration,
    /// The old spelling of --header-timeout, in milliseconds.
    #[arg(long, value_name = "MS", hide = true)]
    pub header_timeout_ms: Option<u64>,
    /// Idle keep-alive connections close after this long, e.g. 60s, 2m.
    #[arg(long, value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    pub keepalive_timeout: Duration,
    /// The old spelling of --keepalive-timeout, in milliseconds.
    #[arg(long, value_name = "MS", hide = true)]
    pub keepalive_timeout_ms: Option<u64>,
    /// Path of the live status page (its JSON is the path + `.json`);
    /// `/metrics` and `/stub_status` are served beside it.
    #[arg(long, value_name = "PATH", default_value = "/status")]
    pub status_path: String,
    /// Largest request body, e.g. 8MiB (413 past it).
    #[arg(long, value_parser = parse_bytes, value_name = "BYTES", default_value = "8MiB")]
    pub max_body: u64,
}

pub fn run(args: HttpArgs) -> Result<()> {
    block_stop_signals()?;
    args.server.apply_process_limits()?;
    if args.server.model != ModelArg::Reactor {
        bail!("evnet http runs on the reactor model only");
    }
    let default = "127.0.0.1:8080";
    args.server.tls.check(args.server.processes)?;
    if args.server.run_processes("http", default)? {
        return Ok(());
    }
    if !args.status_path.starts_with('/') {
        bail!("--status-path must start with '/'");
    }
    let limits = Limits {
        header_timeout: either(args.header_timeout, args.header_timeout_ms),
        keepalive_timeout: either(args.keepalive_timeout, args.keepalive_timeout_ms),
        max_body: args.max_body,
        ..Limits::default()
    };
    let limits_shown = limits.describe();
    let mut server_builder = args.server.builder(default)?;
    server_builder = args.server.tls.apply(server_builder, &["http/1.1"])?;
    let scheme = if args.server.tls.on() {
        "https"
    } else {
        "http"
    };
    if args.root.is_some() && args.server.max_connections == MaxConnections::Auto {
        // Each connection may hold a file open besides its socket, and
        // each loop's open-file cache holds up to its entries.
        let (soft, _) = evnet::sys::nofile_limit().unwrap_or((1024, 1024));
        let cached = args.open_file_cache * server_builder.loop_count().max(1);
        let max = auto_max_connections(soft).saturating_sub(cached) / 2;
        server_builder = server_builder.max_connections(MaxConnections::Max(max.max(1)));
    }
    let single = server_builder.loop_count() == 0;
    // A bad document root fails here now, with the message and context the
    // builder gave it before the demo routes moved out of the library.
    let context = if single {
        "serving HTTP"
    } else {
        "starting the HTTP server"
    };
    let files = match &args.root {
        Some(dir) => Some(
            StaticFiles::new(dir)
                .with_context(|| format!("document root {}", dir.display()))
                .context(context)?
                .open_file_cache(args.open_file_cache, args.open_file_cache_valid)
                .autoindex(args.autoindex),
        ),
        None => None,
    };
    let demo = Demo::new(files.clone());
    let mut builder = HttpBuilder::new(server_builder)
        .limits(limits)
        .router(demo.routes_with_status(Router::new(), &args.status_path));
    if let Some(files) = &files {
        builder = builder.static_files(files.clone());
    }
    let root = args.root.clone();
    let files_shown = match files.as_ref().and_then(|f| f.cache_settings()) {
        Some((n, valid)) => format!(" (open-file cache: {n} per loop, trusted {valid:?})"),
        None => " (no open-file cache)".to_string(),
    };
    let banner = move |server: &Server| {
        demo.serving(server);
        println!("evnet http: {}", server.description());
        println!("evnet http: {limits_shown}");
        match &root {
            Some(r) => println!("evnet http: document root {}{}", r.display(), files_shown),
            None => println!("evnet http: no document root (built-in routes only)"),
        }
        for a in server.addrs() {
            println!("evnet http listening on {scheme}://{a}/");
        }
        crate::ops::ready();
    };
    let deadline = args.server.shutdown_timeout;
    if single {
        builder
            .run(|el, server| {
                banner(server);
                watch_stop_signals("http", el, deadline);
            })
            .context("serving HTTP")?;
        crate::ops::remove_pid_file();
        return Ok(());
    }
    let server = builder.start().context("starting the HTTP server")?;
    banner(server.server());
    serve_until_signal("http", server.into_server(), deadline)
}
