//! plot-kcp-loss: draws the loss lab's chart (bench/kcp_loss.sh) from its
//! raw samples: echo round-trip latency against packet loss, p50 solid and
//! p99 dashed, one colour per transport, each point the median of its
//! rounds, latency on a log scale.
//!
//!   plot-kcp-loss [--title TEXT] IN.tsv OUT.svg
//!
//! Bad input (no header, missing columns, no successful run, a field that
//! is not a number) is reported with its line and exits 1, writing nothing.

mod draw;
mod samples;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: plot-kcp-loss [--title TEXT] IN.tsv OUT.svg";
const DEFAULT_TITLE: &str = "Echo latency vs packet loss";

struct Args {
    title: String,
    input: PathBuf,
    output: PathBuf,
}

/// `Ok(None)`: help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut title = DEFAULT_TITLE.to_string();
    let mut paths = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--title" => title = args.next().ok_or("--title needs a value")?,
            "-h" | "--help" => return Ok(None),
            _ if a.starts_with('-') && a.len() > 1 => return Err(format!("unknown option {a}")),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let [input, output]: [PathBuf; 2] = paths.try_into().map_err(|p: Vec<PathBuf>| {
        format!("expected IN.tsv and OUT.svg, got {} path(s)", p.len())
    })?;
    Ok(Some(Args {
        title,
        input,
        output,
    }))
}

fn run(args: Args) -> Result<(), String> {
    let input = args.input.display();
    let text = std::fs::read_to_string(&args.input).map_err(|e| format!("{input}: {e}"))?;
    let medians = samples::parse(&text).map_err(|e| format!("{input}: {e}"))?;
    draw::draw(&medians, &args.title, &args.output)
        .map_err(|e| format!("{}: {e}", args.output.display()))?;
    eprintln!("plot-kcp-loss: wrote {}", args.output.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("plot-kcp-loss: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plot-kcp-loss: {e}");
            ExitCode::FAILURE
        }
    }
}
