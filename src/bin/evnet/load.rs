//! `evnet load`: a wrk-like load generator (echo, http, resp targets).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use evnet::load::{self, LoadConfig, Report, Target};
use evnet::net::Addr;

use crate::client::parse_duration;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Kind {
    Echo,
    Http,
    Resp,
    /// KCP echo over UDP (`evnet kcp-echo`): TARGET is HOST:PORT.
    Kcp,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// What to speak.
    #[arg(value_enum)]
    pub kind: Kind,
    /// HOST:PORT (echo, resp), or an http://HOST:PORT/path URL.
    pub target: String,
    /// Concurrent connections.
    #[arg(short, long, default_value_t = 10)]
    pub connections: usize,
    /// Event loops (threads) driving the connections.
    #[arg(short, long, default_value_t = 1)]
    pub threads: usize,
    /// How long to measure (after warmup), e.g. 10s.
    #[arg(short, long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Stop after exactly this many answered requests.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Run this long before measuring.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Requests per write (pipelining depth).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Open loop: requests per second across all connections (latency from the scheduled time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Source addresses to spread connections over, e.g. 127.0.0.2,127.0.0.3.
    #[arg(long, value_delimiter = ',')]
    pub bind: Vec<std::net::IpAddr>,
    /// Echo message size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Extra HTTP header, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// RESP: fraction of GETs (the rest are SETs).
    #[arg(long, default_value_t = 0.9)]
    pub ratio: f64,
    /// RESP: number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub connect_timeout: Duration,
    /// A request unanswered this long is a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: crate::tls::ClientTlsArgs,
    /// TLS: every new connection makes a full handshake (no session resumption).
    #[arg(long)]
    pub tls_no_resume: bool,
    /// KCP settings (for `load kcp`).
    #[command(flatten)]
    pub kcp: crate::kcp::KcpArgs,
}

/// Split `http://host:port/path` (or `https://`) into the address, Host
/// header and path.
fn parse_url(url: &str) -> Result<(String, String, String)> {
    let (rest, port) = match url.strip_prefix("https://") {
        Some(rest) => (rest, 443),
        None => (url.strip_prefix("http://").unwrap_or(url), 80),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:{port}")
    };
    Ok((addr, hostport.to_string(), path.to_string()))
}

pub fn run(args: LoadArgs) -> Result<()> {
    if args.kind == Kind::Kcp {
        return run_kcp(&args);
    }
    let (addr_s, target) = match args.kind {
        Kind::Kcp => unreachable!("handled above"),
        Kind::Echo => (args.target.clone(), Target::Echo { size: args.size }),
        Kind::Resp => (
            args.target.clone(),
            Target::Resp {
                get_ratio: args.ratio,
                keys: args.keys,
                value_size: args.size,
            },
        ),
        Kind::Http => {
            let (addr, host, path) = parse_url(&args.target)?;
            let mut headers = Vec::new();
            for h in &args.headers {
                let (k, v) = h
                    .split_once(':')
                    .with_context(|| format!("bad header {h:?} (want Name: value)"))?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            (
                addr,
                Target::Http {
                    method: args.method.clone(),
                    path,
                    host,
                    headers,
                    body: Vec::new(),
                },
            )
        }
    };
    let addr = Addr::parse(&addr_s).with_context(|| format!("bad address {addr_s:?}"))?;
    let _ = evnet::sys::raise_nofile_limit();
    let mut cfg = LoadConfig::new(addr, target);
    cfg.connections = args.connections;
    cfg.threads = args.threads;
    cfg.requests = args.requests;
    cfg.duration = if args.requests.is_some() {
        None
    } else {
        Some(args.duration.unwrap_or(Duration::from_secs(10)))
    };
    cfg.warmup = args.warmup;
    cfg.pipeline = args.pipeline;
    cfg.rate = args.rate;
    cfg.bind = args.bind.clone();
    cfg.connect_timeout = args.connect_timeout;
    cfg.timeout = args.timeout;
    let mut tls_args = args.tls.clone();
    tls_args.tls |= args.target.starts_with("https://");
    let host = addr_s.rsplit_once(':').map_or(addr_s.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let alpn: &[&str] = if args.kind == Kind::Http {
        &["http/1.1"]
    } else {
        &[]
    };
    cfg.tls = tls_args.connector(host, alpn)?.map(|t| {
        if args.tls_no_resume {
            t.without_resumption()
        } else {
            t
        }
    });
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(250));
        let b = bar.clone();
        cfg.progress = Some(Arc::new(move |elapsed: Duration, done: u64| {
            let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
            b.set_message(format!(
                "{:>6.1}s  {done} requests  {rate:.0} req/s",
                elapsed.as_secs_f64()
            ));
        }));
        Some(bar)
    } else {
        None
    };
    let report = load::run(&cfg).context("load run")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print_report(&args, &report);
    }
    Ok(())
}

fn run_kcp(args: &LoadArgs) -> Result<()> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(args.target.as_str())
        .with_context(|| format!("bad address {:?}", args.target))?
        .next()
        .with_context(|| format!("{}: no address", args.target))?;
    let cfg = load::kcp::KcpLoad {
        addr,
        kcp: args.kcp.config(),
        connections: args.connections,
        threads: args.threads,
        size: args.size,
        duration: args.duration.unwrap_or(Duration::from_secs(10)),
        warmup: args.warmup,
        rate: args.rate,
        pipeline: args.pipeline,
        timeout: args.timeout,
    };
    let report = load::kcp::run(&cfg).context("kcp load run")?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print_report(args, &report);
    }
    Ok(())
}

fn print_report(args: &LoadArgs, r: &Report) {
    let ms = |q: f64| r.latency_at(q).as_secs_f64() * 1e3;
    println!(
        "{} connections, {} threads, target {}",
        args.connections, args.threads, args.target
    );
    println!(
        "  {} requests in {:.2}s, {:.0} req/s, {:.2} MB/s in, {:.2} MB/s out",
        r.requests,
        r.elapsed.as_secs_f64(),
        r.throughput(),
        r.bytes_received as f64 / r.elapsed.as_secs_f64().max(1e-9) / 1e6,
        r.bytes_sent as f64 / r.elapsed.as_secs_f64().max(1e-9) / 1e6,
    );
    println!(
        "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        r.latency.max() as f64 / 1e3
    );
    let e = &r.errors;
    println!(
        "  errors: connect {}, timeout {}, reset {}, closed {}, bad reply {}, other {}; non-2xx/error replies {}",
        e.connect, e.timeout, e.reset, e.closed, e.bad_reply, e.other, r.non_success
    );
}
