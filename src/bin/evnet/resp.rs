use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use evnet::resp::server::{handler_factory, ActiveExpiry};
use evnet::resp::store::Policy;
use evnet::resp::Store;

use crate::common::{
    block_stop_signals, either, parse_duration, serve_reactor_then, ModelArg, ServerArgs,
};
use crate::metrics::MetricsArgs;

#[derive(Args, Debug)]
pub struct RespArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// How often each loop deletes expired keys, e.g. 100ms.
    #[arg(long, value_parser = parse_duration, default_value = "100ms", value_name = "DURATION")]
    pub expire_every: Duration,
    /// The old spelling of --expire-every, in milliseconds.
    #[arg(long, value_name = "MS", hide = true)]
    pub expire_every_ms: Option<u64>,
    /// Most expired keys one sweep deletes.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub expire_budget: usize,
    /// Most heap the server may use, e.g. 100mb or 2gb (0: no limit). Past
    /// it, writes evict keys by --maxmemory-policy or are refused (OOM).
    #[arg(long, value_name = "BYTES", default_value = "0", value_parser = parse_memory)]
    pub maxmemory: usize,
    /// What happens past --maxmemory: noeviction, allkeys-lru,
    /// allkeys-random, volatile-lru, volatile-random or volatile-ttl.
    #[arg(long, value_name = "POLICY", default_value = "noeviction", value_parser = parse_policy)]
    pub maxmemory_policy: Policy,
}

fn parse_memory(s: &str) -> Result<usize, String> {
    evnet::resp::cmd::parse_memory(s.as_bytes())
        .ok_or_else(|| format!("{s:?} is not a memory size (bytes, or with k, kb, m, mb, g, gb)"))
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s.as_bytes()).ok_or_else(|| format!("unknown maxmemory policy {s:?}"))
}

pub fn run(args: RespArgs) -> Result<()> {
    block_stop_signals()?;
    args.server.apply_process_limits()?;
    if args.server.model != ModelArg::Reactor {
        bail!("evnet resp runs on reactors only (--model reactor)");
    }
    let default = "127.0.0.1:6380";
    if args.server.processes > 1 {
        // Workers would each hold a separate keyspace: clients would see
        // different data depending on which process the kernel picked.
        bail!("evnet resp keeps one keyspace in one process; use --loops, not --processes");
    }
    let builder = args.server.builder(default)?;
    let builder = args.server.tls.apply(builder, &[])?;
    let expiry = ActiveExpiry {
        every: either(args.expire_every, args.expire_every_ms),
        budget: args.expire_budget,
    };
    let store = Arc::new(Store::new());
    store.set_maxmemory(args.maxmemory, args.maxmemory_policy);
    let metrics = args.metrics.start("resp")?;
    serve_reactor_then(
        "resp",
        builder,
        handler_factory(store, expiry),
        args.server.shutdown_timeout,
        |server| {
            if let Some(m) = &metrics {
                m.serving(server);
            }
        },
    )
}
