use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use evnet::resp::server::{serve, ActiveExpiry};
use evnet::resp::Store;

use crate::common::{block_stop_signals, wait_for_signal, ModelArg, ServerArgs};

#[derive(Args, Debug)]
pub struct RespArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// How often each loop deletes expired keys, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub expire_every_ms: u64,
    /// Most expired keys one sweep deletes.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub expire_budget: usize,
}

pub fn run(args: RespArgs) -> Result<()> {
    block_stop_signals()?;
    args.server.apply_process_limits()?;
    if args.server.model != ModelArg::Reactor {
        bail!("evnet resp runs on reactors only (--model reactor)");
    }
    let builder = args.server.builder("127.0.0.1:6380")?;
    let expiry = ActiveExpiry {
        every: Duration::from_millis(args.expire_every_ms.max(1)),
        budget: args.expire_budget,
    };
    let server = serve(builder, Arc::new(Store::new()), expiry)?;
    for a in server.addrs() {
        println!("evnet resp listening on {a} ({})", server.description());
    }
    let sig = wait_for_signal()?;
    eprintln!("evnet resp: signal {sig}, stopping");
    server.shutdown()?;
    Ok(())
}
