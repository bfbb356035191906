//! `evnet`: the framework's servers and tools behind one command.

mod common;
mod echo;
mod resp;
mod udp;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "evnet", version, about = "Event-driven network servers and tools for Linux")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Echo server: every byte read is written back.
    Echo(echo::EchoArgs),
    /// Redis-protocol (RESP2) in-memory key-value server.
    Resp(resp::RespArgs),
    /// UDP echo server: every datagram is sent back to its sender.
    UdpEcho(udp::UdpEchoArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Echo(args) => echo::run(args),
        Command::Resp(args) => resp::run(args),
        Command::UdpEcho(args) => udp::run(args),
    };
    if let Err(e) = result {
        eprintln!("evnet: {e:#}");
        std::process::exit(1);
    }
}
