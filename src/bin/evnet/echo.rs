use std::net::SocketAddr;

use anyhow::{bail, Result};
use clap::Args;
use evnet::echo::{AsyncEcho, Echo};
use evnet::net::blocking::{self, ProcessServer, ThreadServer};
use evnet::reactor::LoopConfig;

use crate::common::{
    block_stop_signals, serve_reactor_then, wait_for_signal, ModelArg, ServerArgs,
};
use crate::metrics::MetricsArgs;

#[derive(Args, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

pub fn run(args: EchoArgs) -> Result<()> {
    block_stop_signals()?;
    args.server.apply_process_limits()?;
    let default = "127.0.0.1:7000";
    args.server.tls.check(args.server.processes)?;
    if args.metrics.metrics_addr.is_some()
        && (args.server.processes > 1 || args.server.model != ModelArg::Reactor)
    {
        // The counters are the reactor loops' and each process has its own.
        bail!("--metrics-addr needs --model reactor and one process");
    }
    if args.server.proxy_protocol && args.server.model != ModelArg::Reactor {
        // The other models would hand the header to the echo as data.
        bail!("--proxy-protocol needs --model reactor");
    }
    if args.server.run_processes("echo", default)? {
        return Ok(());
    }
    if args.server.tls.on() && args.server.model != ModelArg::Reactor {
        bail!("TLS needs the reactor model");
    }
    match args.server.model {
        ModelArg::Threads => serve_tcp_until_signal(
            &args.server,
            default,
            "threads",
            "one blocking thread per connection",
            |tcp| {
                let s = ThreadServer::start(std::net::TcpListener::bind(tcp)?, blocking::echo)?;
                Ok((s.local_addr(), s))
            },
            |s| {
                drop(s);
                Ok(())
            },
        )?,
        ModelArg::Processes => serve_tcp_until_signal(
            &args.server,
            default,
            "processes",
            "one forked process per connection",
            |tcp| {
                let s = ProcessServer::start(std::net::TcpListener::bind(tcp)?, blocking::echo)?;
                Ok((s.local_addr(), s))
            },
            |mut s| {
                s.stop();
                Ok(())
            },
        )?,
        ModelArg::Async => {
            let loops = args
                .server
                .loops
                .unwrap_or_else(evnet::sys::cpu_count)
                .max(1);
            let poller: evnet::poller::PollerKind = args.server.poller.into();
            let Some(trigger) = poller.caps().trigger_for(args.server.trigger()) else {
                bail!("{} has no edge-triggered mode", poller.name());
            };
            let config = LoopConfig {
                poller,
                trigger,
                ..LoopConfig::default()
            };
            serve_tcp_until_signal(
                &args.server,
                default,
                "async",
                &format!(
                    "one task per connection on {loops} loop(s), poller={}",
                    poller.name()
                ),
                |tcp| {
                    let s = AsyncEcho::start(tcp, loops, config.clone())?;
                    Ok((s.local_addr(), s))
                },
                |s| Ok(s.stop()?),
            )?
        }
        ModelArg::Reactor => {
            let builder = args.server.builder(default)?;
            let builder = args.server.tls.apply(builder, &[])?;
            let metrics = args.metrics.start("echo")?;
            serve_reactor_then(
                "echo",
                builder,
                |_| Echo,
                args.server.shutdown_timeout,
                |server| {
                    if let Some(m) = &metrics {
                        m.serving(server);
                    }
                },
            )?;
        }
    }
    Ok(())
}

/// The models outside the reactor: one server per TCP address of `--addr`
/// made by `start`, a banner for each (`model`, and `how` it serves), then,
/// on SIGTERM or SIGINT, `stop` for each.
fn serve_tcp_until_signal<S>(
    args: &ServerArgs,
    default: &str,
    model: &str,
    how: &str,
    start: impl Fn(SocketAddr) -> Result<(SocketAddr, S)>,
    stop: impl Fn(S) -> Result<()>,
) -> Result<()> {
    let mut servers = Vec::new();
    for a in args.addrs(default)? {
        let Some(tcp) = a.tcp() else {
            bail!("--model {model} serves TCP addresses only")
        };
        let (addr, s) = start(tcp)?;
        println!("evnet echo listening on {addr} (model={model}: {how})");
        servers.push(s);
    }
    let sig = wait_for_signal()?;
    eprintln!("evnet echo: signal {sig}, stopping");
    servers.into_iter().try_for_each(stop)
}
