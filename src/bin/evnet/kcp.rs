//! `evnet kcp-echo`: a KCP echo server (every byte of a session is written
//! back), and the KCP settings shared with `evnet client --kcp` and
//! `evnet load kcp`.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use evnet::echo::Echo;
use evnet::kcp::{KcpConfig, KcpMode};
use evnet::net::{MaxConnections, ServerBuilder};
use std::time::Duration;

use crate::client::parse_duration;
use crate::common::{block_stop_signals, wait_for_signal};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ModeArg {
    /// ikcp defaults: RTO doubles, congestion window on.
    Normal,
    /// "Turbo": 10 ms interval, 30 ms RTO floor, fast resend, no cwnd.
    Fast,
}

/// Engine settings on the command line.
#[derive(Args, Debug, Clone)]
pub struct KcpArgs {
    /// KCP profile.
    #[arg(long, value_enum, default_value = "fast")]
    pub mode: ModeArg,
    /// Largest datagram.
    #[arg(long, default_value_t = 1400)]
    pub mtu: usize,
    /// Send and receive windows, in segments.
    #[arg(long, default_value_t = 128)]
    pub wnd: u16,
}

impl KcpArgs {
    pub fn config(&self) -> KcpConfig {
        KcpConfig {
            mode: match self.mode {
                ModeArg::Normal => KcpMode::Normal,
                ModeArg::Fast => KcpMode::Fast,
            },
            mtu: self.mtu,
            snd_wnd: self.wnd,
            rcv_wnd: self.wnd.max(128),
            ..KcpConfig::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct KcpEchoArgs {
    /// UDP address to serve: HOST:PORT or [V6]:PORT.
    #[arg(long, default_value = "127.0.0.1:7002")]
    pub addr: String,
    /// Loops, each with its own SO_REUSEPORT socket (0: one, on the main
    /// thread).
    #[arg(long, default_value_t = 1)]
    pub loops: usize,
    #[command(flatten)]
    pub kcp: KcpArgs,
    /// Close a session after this long without a datagram from its peer.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub idle_timeout: Duration,
    /// Most sessions at once (each has a UDP socket of its own); at the
    /// cap a new peer takes the place of one silent a second or more.
    #[arg(long, default_value_t = 10_000)]
    pub max_sessions: usize,
}

pub fn run(args: KcpEchoArgs) -> Result<()> {
    block_stop_signals()?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(args.addr.as_str())
        .with_context(|| format!("bad address {:?}", args.addr))?
        .next()
        .with_context(|| format!("{}: no address", args.addr))?;
    let cfg = KcpConfig {
        idle_timeout: args.idle_timeout,
        ..args.kcp.config()
    };
    let server = ServerBuilder::new()
        .bind(addr)
        .loops(args.loops)
        .kcp(cfg)
        .max_connections(MaxConnections::Max(args.max_sessions))
        .start(|_| Echo)?;
    let local = server.local_addr().context("kcp-echo: no local address")?;
    println!(
        "evnet kcp-echo listening on udp {local} ({:?} mode, {} loops)",
        args.kcp.mode, args.loops
    );
    let sig = wait_for_signal()?;
    eprintln!("evnet kcp-echo: signal {sig}, stopping");
    server.shutdown()?;
    Ok(())
}
