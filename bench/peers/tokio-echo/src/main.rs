//! Echo server on a tokio current-thread runtime: one task per connection,
//! read into a buffer, then `write_all` what was read.
//!
//! Usage: tokio-echo [--addr 127.0.0.1:7000]

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
        eprintln!("tokio-echo: {msg}");
    }
    eprintln!("usage: tokio-echo [--addr HOST:PORT]");
    std::process::exit(2)
}

async fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

fn main() -> io::Result<()> {
    let addr = parse_addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        eprintln!("tokio-echo listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("tokio-echo: accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = serve(stream).await;
            });
        }
    })
}
