use anyhow::{bail, Result};
use clap::Args;
use evnet::echo::Echo;
use evnet::net::blocking::{self, ThreadServer};

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
        ModelArg::Reactor => {
            let builder = args.server.builder(default)?;
            serve_reactor("echo", builder, |_| Echo, args.server.shutdown_timeout)?;
        }
    }
    Ok(())
}
