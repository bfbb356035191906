//! hyper 1.x serving HTTP/1.1 on evnet tasks: evnet's loop accepts, each
//! connection is a task, and hyper drives it through the tokio I/O traits
//! (feature `tokio-io`) adapted by hyper-util's `TokioIo`; its timers
//! (the header read timeout) are on the loop's wheel through
//! `evnet::rt::HyperTimer` (feature `hyper`). No tokio runtime runs.
//!
//!     cargo run --example hyper_on_evnet --features tokio-io,hyper -- 127.0.0.1:8081
//!
//! Without an address it serves an ephemeral port, answers one keep-alive
//! client of its own (two requests on one connection) and exits, so that
//! `cargo test --features tokio-io --example hyper_on_evnet` runs it.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;

use evnet::rt::{self, TcpListener};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello from hyper on evnet: {}\n", req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Serve `listener`, one task per connection, for `conns` connections
/// (`None`: forever).
async fn serve(listener: TcpListener, conns: Option<usize>) {
    let mut served = 0;
    while conns.is_none_or(|n| served < n) {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        served += 1;
        let task = rt::spawn_local(async move {
            let io = TokioIo::new(stream);
            if let Err(e) = http1::Builder::new()
                .timer(rt::HyperTimer)
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(io, service_fn(hello))
                .await
            {
                eprintln!("connection: {e}");
            }
        });
        if conns.is_some() {
            task.await.unwrap();
        }
    }
}

/// Two requests on one keep-alive connection; the bodies.
fn client(addr: SocketAddr) -> Vec<String> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut bodies = Vec::new();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for (i, path) in ["/one", "/two"].iter().enumerate() {
        let close = if i == 1 { "Connection: close\r\n" } else { "" };
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{close}\r\n").unwrap();
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        bodies.push(String::from_utf8(body).unwrap());
    }
    bodies
}

fn main() {
    match std::env::args().nth(1) {
        Some(a) => rt::block_on(async move {
            let listener = TcpListener::bind(a.parse().expect("ADDR")).unwrap();
            println!(
                "hyper on evnet listening on {}",
                listener.local_addr().unwrap()
            );
            serve(listener, None).await;
        }),
        None => demo(),
    }
}

/// One keep-alive client of its own, two requests, then exit.
fn demo() {
    rt::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let c = std::thread::spawn(move || client(addr));
        serve(listener, Some(1)).await;
        let bodies = c.join().unwrap();
        assert_eq!(
            bodies,
            [
                "hello from hyper on evnet: /one\n",
                "hello from hyper on evnet: /two\n"
            ]
        );
        println!("{}", bodies.concat());
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs() {
        super::demo();
    }
}
