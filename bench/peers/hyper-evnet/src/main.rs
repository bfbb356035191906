//! hyper 1.x HTTP/1.1 server on evnet tasks: the same service and builder
//! settings as hyper-plain (which runs on tokio's current-thread runtime),
//! on one evnet loop instead — the loop accepts, each connection is a task,
//! hyper drives it through the tokio I/O traits (hyper-util's `TokioIo`).
//! With `--timer`, hyper's timers run on the loop's wheel
//! (`evnet::rt::HyperTimer`) and hyper then applies its default 30 s header
//! read timeout; off by default, as hyper-plain sets no timer.
//! GET /plaintext -> 200 "Hello, World!" (text/plain); anything else -> 404.
//!
//! Usage: hyper-evnet [--addr 127.0.0.1:8080] [--poller epoll|proactor] [--timer]

use std::convert::Infallible;

use bytes::Bytes;
use evnet::poller::PollerKind;
use evnet::reactor::LoopConfig;
use evnet::rt::{self, TcpListener};
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

static BODY: &[u8] = b"Hello, World!";

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("hyper-evnet: {msg}");
    }
    eprintln!("usage: hyper-evnet [--addr HOST:PORT] [--poller epoll|proactor] [--timer]");
    std::process::exit(2)
}

fn parse_args() -> (String, PollerKind, bool) {
    let mut addr = String::from("127.0.0.1:8080");
    let mut poller = PollerKind::Epoll;
    let mut timer = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().unwrap_or_else(|| usage("--addr needs a value")),
            "--poller" => {
                poller = match args.next().as_deref() {
                    Some("epoll") => PollerKind::Epoll,
                    Some("proactor") => PollerKind::Proactor,
                    _ => usage("--poller is epoll or proactor"),
                }
            }
            "--timer" => timer = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    (addr, poller, timer)
}

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut rsp = if req.method() == Method::GET && req.uri().path() == "/plaintext" {
        Response::new(Full::new(Bytes::from_static(BODY)))
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"Not Found")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    let h = rsp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(SERVER, HeaderValue::from_static("hyper"));
    Ok(rsp)
}

fn main() {
    let (addr, poller, timer) = parse_args();
    let config = LoopConfig {
        poller,
        ..LoopConfig::default()
    };
    let r = rt::block_on_with(config, async move {
        let listener = TcpListener::bind(addr.parse().unwrap_or_else(|_| usage("bad --addr")))?;
        eprintln!("hyper-evnet listening on {}", listener.local_addr()?);
        let mut builder = http1::Builder::new();
        builder.keep_alive(true).pipeline_flush(true);
        if timer {
            builder.timer(rt::HyperTimer);
        }
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("hyper-evnet: accept: {e}");
                    rt::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service_fn(handle));
            rt::spawn_local(async move {
                let _ = conn.await;
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    if let Err(e) = r.and_then(|r| r) {
        eprintln!("hyper-evnet: {e}");
        std::process::exit(1);
    }
}
