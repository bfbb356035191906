//! hyper 1.x HTTP/1.1 server on a tokio current-thread runtime.
//! GET /plaintext -> 200 "Hello, World!" (text/plain); anything else -> 404.
//! Keep-alive is on and pipelined responses are flushed together
//! (`pipeline_flush(true)`).
//!
//! Usage: hyper-plain [--addr 127.0.0.1:8080]

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

static BODY: &[u8] = b"Hello, World!";

fn parse_addr() -> String {
    let mut addr = String::from("127.0.0.1:8080");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().unwrap_or_else(|| usage("--addr needs a value")),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    addr
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("hyper-plain: {msg}");
    }
    eprintln!("usage: hyper-plain [--addr HOST:PORT]");
    std::process::exit(2)
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

fn main() -> io::Result<()> {
    let addr = parse_addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!("hyper-plain listening on {}", listener.local_addr()?);
        let mut builder = http1::Builder::new();
        builder.keep_alive(true).pipeline_flush(true);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("hyper-plain: accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service_fn(handle));
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    })
}
