//! Echo server on monoio (thread-per-core, io_uring driver): one task per
//! connection reading into an owned buffer and writing back what was read
//! (monoio's rent API: the buffer goes to the kernel and comes back).
//!
//! Usage: monoio-echo [--addr 127.0.0.1:7000]

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

fn parse_addr() -> String {
    let mut addr = String::from("127.0.0.1:7000");
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
        eprintln!("monoio-echo: {msg}");
    }
    eprintln!("usage: monoio-echo [--addr HOST:PORT]");
    std::process::exit(2)
}

async fn serve(mut stream: TcpStream) {
    // A Vec is read into its spare capacity (the read sets its length) and
    // written whole: the buffer goes to the kernel and comes back each time.
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let (res, b) = stream.read(buf).await;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, mut b) = stream.write_all(b).await;
        if res.is_err() {
            return;
        }
        b.clear();
        buf = b;
    }
}

fn main() {
    let addr = parse_addr();
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .build()
        .expect("monoio io_uring runtime (Linux 5.6+)");
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).expect("bind");
        eprintln!("monoio-echo listening on {}", listener.local_addr().unwrap());
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(serve(stream));
                }
                Err(e) => eprintln!("monoio-echo: accept: {e}"),
            }
        }
    });
}
