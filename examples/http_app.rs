//! A small HTTP application on the evnet library: a few routes on a
//! `Router`, and one route (`/primes`) whose work is too slow for a loop
//! thread, so it runs on a `WorkerPool` and is answered later through
//! `Response::defer`. Requests pipelined behind a deferred one wait, so
//! responses still leave in request order.
//!
//! ```sh
//! cargo run --example http_app       # serves on 127.0.0.1, on a free port it prints
//! curl http://127.0.0.1:PORT/hello
//! curl http://127.0.0.1:PORT/hello/you
//! curl -d 'three short words' http://127.0.0.1:PORT/count
//! curl 'http://127.0.0.1:PORT/primes?below=1000000'
//! ```
//!
//! `HttpBuilder` serves only what is registered here: any other path is 404.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use evnet::http::{percent_decode, HttpBuilder, HttpError, OwnedResponse, Router};
use evnet::net::{ServerBuilder, WorkerPool};

fn main() -> std::io::Result<()> {
    let pool = WorkerPool::new(2, 64);
    let next_job = AtomicUsize::new(0);
    let router = Router::new()
        .get("/hello", |_req, resp| {
            resp.text("Hello from evnet!\n");
        })
        .prefix("GET", "/hello/", |req, resp| {
            // The router matched the prefix; the rest of the path is the name.
            let raw = &req.path().as_bytes()["/hello/".len()..];
            let mut name = Vec::new();
            match percent_decode(raw, &mut name) {
                Ok(()) => {
                    let name = String::from_utf8_lossy(&name);
                    resp.text(&format!("Hello, {name}!\n"));
                }
                Err(e) => {
                    resp.error(e);
                }
            }
        })
        .post("/count", |req, resp| {
            let text = String::from_utf8_lossy(req.body());
            let words = text.split_whitespace().count();
            resp.json(&format!(
                "{{\"bytes\":{},\"words\":{words}}}\n",
                req.body().len()
            ));
        })
        .get("/primes", move |req, resp| {
            let Some(below) = req
                .query()
                .and_then(|q| q.strip_prefix("below="))
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|&n| n <= 10_000_000)
            else {
                resp.error(HttpError::new(400, "want ?below=N, N <= 10000000", false));
                return;
            };
            // Counting takes long: never on the loop thread. The loop goes
            // on serving other connections; the worker answers when done.
            let answer = resp.defer();
            let job = move || {
                let body = format!("{} primes below {below}\n", count_primes(below));
                let _ =
                    answer.send(OwnedResponse::new(200, body).header("Content-Type", "text/plain"));
            };
            // A full pool refuses the job and drops it; the dropped
            // `Deferred` then answers 500, so the client is never left hanging.
            let _ = pool.submit(next_job.fetch_add(1, Ordering::Relaxed), job);
        });

    let addr: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
    let server = HttpBuilder::new(ServerBuilder::new().bind(addr).loops(1))
        .router(router)
        .start()?;
    let at = server.local_addr().expect("a TCP listener");
    println!(
        "http_app on http://{at}/ (try /hello, /hello/you, POST /count, /primes?below=1000000)"
    );
    server.into_server().join()
}

/// Primes below `n`, by trial division (slow on purpose: the work to offload).
fn count_primes(n: u64) -> usize {
    (2..n)
        .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .count()
}
