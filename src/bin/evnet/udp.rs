use anyhow::{Context, Result};
use clap::Args;
use clap::ValueEnum;
use evnet::net::udp::{UdpBatch, UdpEcho, UdpServerBuilder};
use evnet::poller::Trigger;

use crate::common::{block_stop_signals, wait_for_signal, PollerArg, TriggerArg};

#[derive(Args, Debug)]
pub struct UdpEchoArgs {
    /// Address to listen on (repeat for several): HOST:PORT or [V6]:PORT.
    #[arg(long = "addr", value_name = "ADDR")]
    pub addrs: Vec<String>,
    /// Loops, each with its own SO_REUSEPORT socket per address. Default: number of CPUs.
    #[arg(long)]
    pub loops: Option<usize>,
    /// Readiness mechanism.
    #[arg(long, value_enum, default_value = "epoll")]
    pub poller: PollerArg,
    /// Level- or edge-triggered notification (edge needs epoll or uring).
    #[arg(long, value_enum, default_value = "level")]
    pub trigger: TriggerArg,
    /// SO_RCVBUF/SO_SNDBUF of every socket, in bytes (capped by the kernel).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub socket_buffer: usize,
    /// How datagrams move: auto = recvmmsg/sendmmsg with GRO/GSO where the
    /// kernel has them, mmsg = without the offloads, off = one
    /// recvfrom/sendto per datagram.
    #[arg(long, value_enum, default_value = "auto")]
    pub batch: BatchArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BatchArg {
    Auto,
    Mmsg,
    Off,
}

impl From<BatchArg> for UdpBatch {
    fn from(b: BatchArg) -> UdpBatch {
        match b {
            BatchArg::Auto => UdpBatch::Auto,
            BatchArg::Mmsg => UdpBatch::Mmsg,
            BatchArg::Off => UdpBatch::Off,
        }
    }
}

pub fn run(args: UdpEchoArgs) -> Result<()> {
    block_stop_signals()?;
    crate::ops::configure(None, std::time::Duration::from_secs(30));
    let list = if args.addrs.is_empty() {
        vec!["127.0.0.1:7001".to_string()]
    } else {
        args.addrs.clone()
    };
    let mut b = UdpServerBuilder::new()
        .loops(args.loops.unwrap_or_else(evnet::sys::cpu_count))
        .poller(args.poller.into())
        .trigger(match args.trigger {
            TriggerArg::Level => Trigger::Level,
            TriggerArg::Edge => Trigger::Edge,
        })
        .socket_buffers(args.socket_buffer)
        .batch(args.batch.into());
    for a in &list {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(a.as_str())
            .with_context(|| format!("bad address {a:?}"))?
            .next()
            .with_context(|| format!("{a}: no address"))?;
        b = b.bind(addr);
    }
    let server = b.start(|_| UdpEcho)?;
    for a in server.addrs() {
        println!(
            "evnet udp-echo listening on udp {a} ({} loops, SO_REUSEPORT)",
            server.loops().len()
        );
    }
    crate::ops::ready();
    let sig = wait_for_signal()?;
    eprintln!("evnet udp-echo: signal {sig}, stopping");
    server.shutdown()?;
    Ok(())
}
