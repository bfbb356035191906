use anyhow::{bail, Result};
use clap::Args;
use evnet::echo::{AsyncEcho, Echo};
use evnet::net::blocking::{self, ProcessServer, ThreadServer};
use evnet::reactor::LoopConfig;

use crate::common::{block_stop_signals, serve_reactor, wait_for_signal, ModelArg, ServerArgs};

#[derive(Args, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

pub fn run(args: EchoArgs) -> Result<()> {
    block_stop_signals()?;
    args.server.apply_process_limits()?;
    let default = "127.0.0.1:7000";
    if args.server.run_processes("echo", default)? {
        return Ok(());
    }
    match args.server.model {
        ModelArg::Threads => {
            let addrs = args.server.addrs(default)?;
            let mut servers = Vec::new();
            for a in addrs {
                let Some(tcp) = a.tcp() else {
                    bail!("--model threads serves TCP addresses only")
                };
                let s = ThreadServer::start(std::net::TcpListener::bind(tcp)?, blocking::echo)?;
                println!("evnet echo listening on {} (model=threads: one blocking thread per connection)", s.local_addr());
                servers.push(s);
            }
            let sig = wait_for_signal()?;
            eprintln!("evnet echo: signal {sig}, stopping");
        }
        ModelArg::Processes => {
            let mut servers = Vec::new();
            for a in args.server.addrs(default)? {
                let Some(tcp) = a.tcp() else {
                    bail!("--model processes serves TCP addresses only")
                };
                let s = ProcessServer::start(std::net::TcpListener::bind(tcp)?, blocking::echo)?;
                println!("evnet echo listening on {} (model=processes: one forked process per connection)", s.local_addr());
                servers.push(s);
            }
            let sig = wait_for_signal()?;
            eprintln!("evnet echo: signal {sig}, stopping");
            for mut s in servers {
                s.stop();
            }
        }
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
            let mut servers = Vec::new();
            for a in args.server.addrs(default)? {
                let Some(tcp) = a.tcp() else {
                    bail!("--model async serves TCP addresses only")
                };
                let s = AsyncEcho::start(tcp, loops, config.clone())?;
                println!(
                    "evnet echo listening on {} (model=async: one task per connection on {loops} loop(s), poller={})",
                    s.local_addr(),
                    config.poller.name()
                );
                servers.push(s);
            }
            let sig = wait_for_signal()?;
            eprintln!("evnet echo: signal {sig}, stopping");
            for s in servers {
                s.stop()?;
            }
        }
        ModelArg::Reactor => {
            let builder = args.server.builder(default)?;
            serve_reactor("echo", builder, |_| Echo, args.server.shutdown_timeout)?;
        }
    }
    Ok(())
}
