//! may_minihttp server with a single may worker.
//! GET /plaintext -> 200 "Hello, World!" (text/plain); anything else -> 404.
//! may_minihttp keeps connections alive and answers pipelined requests in
//! batches on its own.
//!
//! Usage: may-plain [--addr 127.0.0.1:8080]

use std::io;

use may_minihttp::{HttpServer, HttpService, Request, Response};

#[derive(Clone)]
struct Plain;

impl HttpService for Plain {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        if req.method() == "GET" && req.path() == "/plaintext" {
            rsp.header("Content-Type: text/plain");
            rsp.body("Hello, World!");
        } else {
            rsp.status_code(404, "Not Found");
            rsp.header("Content-Type: text/plain");
            rsp.body("Not Found");
        }
        Ok(())
    }
}

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
        eprintln!("may-plain: {msg}");
    }
    eprintln!("usage: may-plain [--addr HOST:PORT]");
    std::process::exit(2)
}

fn main() {
    let addr = parse_addr();
    // One worker; leave CPU placement to the caller (the bench scripts pin
    // the whole process with taskset) instead of may's own core pinning.
    may::config().set_workers(1);
    may::config().set_worker_pin(false);
    let server = match HttpServer(Plain).start(&addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("may-plain: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("may-plain listening on {addr}");
    let _ = server.join();
}
