//! `evnet`: the framework's servers and tools behind one command.

mod client;
mod common;
mod echo;
mod http;
mod http_demo;
mod kcp;
mod load;
mod metrics;
mod ops;
mod resp;
mod tls;
mod udp;

use clap::{Parser, Subcommand};

/// The heap is counted, so `evnet resp` can report and cap its memory
/// (INFO memory, `--maxmemory`).
#[global_allocator]
static ALLOC: evnet::sys::alloc::Counting = evnet::sys::alloc::Counting;

#[derive(Parser)]
#[command(
    name = "evnet",
    version,
    about = "Event-driven network servers and tools for Linux"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Echo server: every byte read is written back.
    Echo(echo::EchoArgs),
    /// HTTP/1.1 server: demo pages and routes, static files (--root).
    Http(http::HttpArgs),
    /// Interactive client: stdin lines to the server, replies to stdout (exit 0 clean, 1 connect failure, 2 reset/error).
    Client(client::ClientArgs),
    /// Load generator (wrk-like) for echo, http and resp servers.
    Load(load::LoadArgs),
    /// Redis-protocol (RESP2) in-memory key-value server.
    Resp(resp::RespArgs),
    /// UDP echo server: every datagram is sent back to its sender.
    UdpEcho(udp::UdpEchoArgs),
    /// KCP echo server: reliable UDP sessions, every byte written back.
    KcpEcho(kcp::KcpEchoArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Sockets passed by systemd or an upgrading evnet: before any thread
    // starts (this clears their environment variables).
    evnet::net::inherit::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Echo(args) => echo::run(args),
        Command::Http(args) => http::run(args),
        Command::Load(args) => load::run(args),
        Command::Client(args) => match client::run(args) {
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
        Command::Resp(args) => resp::run(args),
        Command::UdpEcho(args) => udp::run(args),
        Command::KcpEcho(args) => kcp::run(args),
    };
    if let Err(e) = result {
        eprintln!("evnet: {e:#}");
        std::process::exit(1);
    }
}
