//! Options every server subcommand shares, and running until a signal.

use std::os::fd::AsRawFd;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::time::Duration;

use evnet::net::process::{self, Supervisor};
use evnet::net::proxy::{Cidr, ProxyProtocol};
use evnet::net::{
    AcceptMode, Addr, Balance, EventHandler, Keepalive, MaxConnections, Server, ServerBuilder,
};
use evnet::poller::{Interest, PollerKind, Trigger};
use evnet::reactor::EventLoop;
use evnet::sys;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum PollerArg {
    Epoll,
    /// io_uring poll requests (one-shot per event, or multishot with --trigger edge).
    Uring,
    /// io_uring as a proactor: connections recv (multishot, provided
    /// buffers) and send through the ring, one io_uring_enter per turn.
    Proactor,
    Poll,
    Select,
    /// Busy polling: every connection read on every turn (burns a core).
    BusyPoll,
    /// Signal-driven I/O (O_ASYNC + F_SETSIG + signalfd); always edge-triggered.
    Sigio,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum TriggerArg {
    Level,
    Edge,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum BalanceArg {
    RoundRobin,
    LeastConn,
    SourceHash,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ModelArg {
    /// Event-driven reactors (the poller, trigger and loops options apply).
    Reactor,
    /// Blocking I/O, one thread per connection (the classic baseline).
    Threads,
    /// Blocking I/O, one forked process per connection (the oldest model;
    /// echo only). Children are reaped as they exit.
    Processes,
    /// One async task per connection on the loops (Go's model; echo only):
    /// --loops, --poller and --trigger apply, each loop with its own
    /// SO_REUSEPORT listener.
    Async,
}

impl From<PollerArg> for PollerKind {
    fn from(p: PollerArg) -> PollerKind {
        match p {
            PollerArg::Epoll => PollerKind::Epoll,
            PollerArg::Uring => PollerKind::Uring,
            PollerArg::Proactor => PollerKind::Proactor,
            PollerArg::Poll => PollerKind::Poll,
            PollerArg::Select => PollerKind::Select,
            PollerArg::BusyPoll => PollerKind::BusyPoll,
            PollerArg::Sigio => PollerKind::SigIo,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on (repeat for several): HOST:PORT, [V6]:PORT, unix:/path, unix:@name.
    #[arg(long = "addr", value_name = "ADDR")]
    pub addrs: Vec<String>,
    /// Serving loops: 0 = one reactor accepts and serves; N = a main acceptor plus N sub-reactors. Default: number of CPUs.
    #[arg(long)]
    pub loops: Option<usize>,
    /// Readiness mechanism.
    #[arg(long, value_enum, default_value = "epoll")]
    pub poller: PollerArg,
    /// Level- or edge-triggered notification (edge needs epoll or uring).
    #[arg(long, value_enum, default_value = "level")]
    pub trigger: TriggerArg,
    /// Give every loop its own SO_REUSEPORT listener instead of a main acceptor.
    #[arg(long, conflicts_with = "exclusive")]
    pub reuseport: bool,
    /// Every loop watches one shared listener registered with EPOLLEXCLUSIVE.
    #[arg(long)]
    pub exclusive: bool,
    /// How the main acceptor spreads connections over sub-reactors.
    #[arg(long, value_enum, default_value = "round-robin")]
    pub balance: BalanceArg,
    /// I/O model.
    #[arg(long, value_enum, default_value = "reactor")]
    pub model: ModelArg,
    /// Listen backlog (default: /proc/sys/net/core/somaxconn).
    #[arg(long)]
    pub backlog: Option<i32>,
    /// Disable TCP_NODELAY (Nagle's algorithm back on).
    #[arg(long)]
    pub no_nodelay: bool,
    /// Close connections idle (no bytes either way) this long, e.g. 30s, 500ms, 2m; off: never.
    #[arg(long, value_parser = parse_timeout, default_value = "off", value_name = "DURATION")]
    pub idle_timeout: Timeout,
    /// Close connections whose started message stays incomplete this long; off: never.
    #[arg(long, value_parser = parse_timeout, default_value = "off", value_name = "DURATION")]
    pub read_timeout: Timeout,
    /// Close connections whose queued output makes no progress this long
    /// (nginx's send_timeout); off: wait forever.
    #[arg(long, value_parser = parse_timeout, default_value = "60s", value_name = "DURATION")]
    pub write_timeout: Timeout,
    /// TCP keepalive: idle time before the first probe (interval = idle/3, 3 probes).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub keepalive: Option<Duration>,
    /// Output queued per connection before reading from it pauses, e.g. 1MiB, 256KiB.
    #[arg(long, value_parser = parse_bytes, default_value = "1MiB", value_name = "BYTES")]
    pub high_water: u64,
    /// The longest a closing connection may take (sending what is queued,
    /// FIN, linger) before it is reset: a peer that never reads cannot hold it.
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub closing_time: Duration,
    /// Bytes a closing connection reads and discards before it is reset.
    #[arg(long, value_parser = parse_bytes, default_value = "1MiB", value_name = "BYTES")]
    pub closing_discard: u64,
    /// Most connections open at once (over all loops); at the cap the server
    /// stops accepting and new clients wait in the listen backlog until one
    /// closes. auto: the fd limit less 1/8 (half of that with --root, where
    /// each connection may hold a file); unlimited: no cap.
    #[arg(long, value_parser = parse_max_connections, default_value = "auto", value_name = "N")]
    pub max_connections: MaxConnections,
    /// On SIGINT/SIGTERM, how long in-flight output may take to drain before
    /// the remaining connections are closed. A second signal exits at once.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub shutdown_timeout: Duration,
    /// Cap this process's open files (soft RLIMIT_NOFILE); default: raise it to the hard limit.
    #[arg(long, value_name = "N")]
    pub max_fds: Option<u64>,
    /// Every connection starts with a PROXY protocol header (v1 or v2, as
    /// HAProxy sends with send-proxy / send-proxy-v2), read before anything
    /// else; the client it names is the connection's peer. Needs
    /// --proxy-from; connections from elsewhere are closed.
    #[arg(long, requires = "proxy_from")]
    pub proxy_protocol: bool,
    /// The networks allowed to send PROXY headers (the load balancers),
    /// e.g. 127.0.0.0/8,10.0.0.0/8,::1.
    #[arg(
        long,
        value_name = "CIDR,...",
        value_delimiter = ',',
        requires = "proxy_protocol"
    )]
    pub proxy_from: Vec<Cidr>,
    /// Run N worker processes (nginx-style master/worker), each with its own SO_REUSEPORT listener on the same port; the master restarts workers that die.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub processes: usize,
    /// Accept a TCP connection only once its client has sent something, waiting up
    /// to this long (TCP_DEFER_ACCEPT; the client must speak first, as in HTTP, TLS,
    /// RESP and echo); off: accept on the handshake.
    #[arg(long, value_parser = parse_timeout, default_value = "off", value_name = "DURATION")]
    pub defer_accept: Timeout,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Write this process's pid here once serving (removed at exit). On
    /// SIGUSR2 it becomes PATH.oldbin until the new process has taken over.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<std::path::PathBuf>,
    /// On SIGUSR2 (upgrade), how long the new process may take to report
    /// ready before it is killed and this one serves on.
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub upgrade_timeout: Duration,
}

/// The master hands its workers the resolved addresses (port 0 made concrete) here.
const LISTEN_ENV: &str = "EVNET_LISTEN";

impl ServerArgs {
    pub fn addrs(&self, default: &str) -> Result<Vec<Addr>> {
        if process::worker_index().is_some() {
            if let Ok(list) = std::env::var(LISTEN_ENV) {
                return list
                    .split(' ')
                    .map(|a| Addr::parse(a).with_context(|| format!("bad address {a:?}")))
                    .collect();
            }
        }
        let list = if self.addrs.is_empty() {
            vec![default.to_string()]
        } else {
            self.addrs.clone()
        };
        list.iter()
            .map(|a| Addr::parse(a).with_context(|| format!("bad address {a:?}")))
            .collect()
    }

    /// Apply process-wide settings (the fd limit, the pid file and upgrade).
    pub fn apply_process_limits(&self) -> Result<()> {
        crate::ops::configure(self.pid_file.clone(), self.upgrade_timeout);
        match self.max_fds {
            Some(n) => sys::set_nofile_limit(n).context("setting RLIMIT_NOFILE")?,
            None => {
                let _ = sys::raise_nofile_limit();
            }
        }
        Ok(())
    }

    /// The trigger asked for.
    pub fn trigger(&self) -> Trigger {
        match self.trigger {
            TriggerArg::Level => Trigger::Level,
            TriggerArg::Edge => Trigger::Edge,
        }
    }

    pub fn builder(&self, default_addr: &str) -> Result<ServerBuilder> {
        let mut b = ServerBuilder::new()
            .poller(self.poller.into())
            .trigger(self.trigger())
            .balance(match self.balance {
                BalanceArg::RoundRobin => Balance::RoundRobin,
                BalanceArg::LeastConn => Balance::LeastConnections,
                BalanceArg::SourceHash => Balance::SourceHash,
            })
            .accept_mode(if self.reuseport || process::worker_index().is_some() {
                AcceptMode::ReusePort
            } else if self.exclusive {
                AcceptMode::Exclusive
            } else {
                AcceptMode::Acceptor
            })
            .nodelay(!self.no_nodelay);
        if let Some(n) = self.loops {
            b = b.loops(n);
        }
        if let Some(n) = self.backlog {
            b = b.backlog(n);
        }
        b = b
            .idle_timeout(self.idle_timeout.0)
            .read_timeout(self.read_timeout.0)
            .write_timeout(self.write_timeout.0)
            .max_connections(self.max_connections);
        if let Some(d) = self.keepalive {
            b = b.keepalive(Keepalive {
                idle: d,
                interval: (d / 3).max(Duration::from_secs(1)),
                count: 3,
            });
        }
        b = b.high_water(usize::try_from(self.high_water).unwrap_or(usize::MAX));
        if let Some(d) = self.defer_accept.0 {
            b = b.defer_accept(d);
        }
        b = b
            .closing_time(self.closing_time)
            .closing_discard(self.closing_discard);
        if self.proxy_protocol {
            b = b.proxy_protocol(ProxyProtocol::new(self.proxy_from.iter().copied()));
        }
        for a in self.addrs(default_addr)? {
            b = b.bind(a);
        }
        Ok(b)
    }
}

impl ServerArgs {
    /// Multi-process mode. In a worker: tie its life to the master's and
    /// return `Ok(false)` (serve as usual). In the master (`--processes` > 1):
    /// start the workers, print `banner` once for each address when all are
    /// serving, supervise until SIGTERM/SIGINT, and return `Ok(true)`.
    pub fn run_processes(&self, name: &str, default: &str) -> Result<bool> {
        if process::worker_init().context("starting worker")?.is_some() {
            return Ok(false);
        }
        if self.processes <= 1 {
            return Ok(false);
        }
        if self.model != ModelArg::Reactor {
            bail!("--processes needs the reactor model");
        }
        let wanted = self.addrs(default)?;
        if wanted.iter().any(|a| a.tcp().is_none()) {
            bail!("--processes needs TCP addresses (workers share a port with SO_REUSEPORT)");
        }
        // The master binds (or, upgraded, inherits) every worker's
        // SO_REUSEPORT listeners and passes each worker its own, so a
        // restarted worker gets the same sockets and an upgrade can pass
        // them all on: no member of the group is ever closed and bound
        // again (that would reset the connections queued on it).
        let per_worker = self.loops.unwrap_or_else(sys::cpu_count).max(1);
        let backlog = self.backlog.unwrap_or_else(evnet::net::somaxconn);
        let mut worker_fds: Vec<Vec<std::sync::Arc<std::os::fd::OwnedFd>>> =
            vec![Vec::new(); self.processes];
        let mut addrs = Vec::new();
        for want in &wanted {
            let mut at = want.clone();
            for fds in worker_fds.iter_mut() {
                for _ in 0..per_worker {
                    let fd = evnet::net::listen(&at, backlog, true)
                        .with_context(|| format!("listening on {at}"))?;
                    // Port 0 resolves once; the rest bind the same port.
                    if let Some(a) = sys::socket::local_addr(fd.as_raw_fd())
                        .ok()
                        .and_then(|a| Addr::from_sockaddr(&a))
                    {
                        at = a;
                    }
                    let fd = std::sync::Arc::new(fd);
                    evnet::net::inherit::hold(&fd);
                    fds.push(fd);
                }
            }
            addrs.push(at);
        }
        let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        let sup = Supervisor::builder(self.processes)
            .env(LISTEN_ENV, list.join(" "))
            .worker_fds(worker_fds)
            .grace(self.shutdown_timeout + Duration::from_secs(2))
            .on_upgrade({
                let name = name.to_string();
                move || crate::ops::upgrade(&name)
            })
            .start()?;
        // What each worker runs, described once (workers use SO_REUSEPORT).
        let mut args = self.clone();
        args.reuseport = self.loops.unwrap_or(1) > 0;
        let desc = args.builder(default)?.describe();
        for a in &addrs {
            println!(
                "evnet {name} listening on {a} ({desc}, processes={})",
                self.processes
            );
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        crate::ops::ready();
        let sig = sup.run()?;
        eprintln!("evnet {name}: signal {sig}, workers stopped");
        crate::ops::remove_pid_file();
        Ok(true)
    }
}

thread_local! {
    /// The signalfd `wait_for_signal` reads, made up front by
    /// `block_stop_signals`: creating it later could fail with EMFILE once
    /// connections have taken every fd, leaving the process deaf to SIGTERM.
    static STOP_SIGNALS: std::cell::RefCell<Option<std::os::fd::OwnedFd>> = const { std::cell::RefCell::new(None) };
}

/// The signals a server waits for: SIGINT/SIGTERM stop it, SIGUSR2
/// upgrades it (see `ops.rs`).
const SERVER_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGUSR2];

/// Block SIGINT/SIGTERM/SIGUSR2 in this thread and every thread spawned
/// after, so they reach the process only through the signalfd
/// `wait_for_signal` reads.
pub fn block_stop_signals() -> Result<()> {
    sys::block_signals(&SERVER_SIGNALS).context("blocking signals")?;
    let sfd = sys::signalfd(&SERVER_SIGNALS).context("signalfd")?;
    STOP_SIGNALS.with(|s| *s.borrow_mut() = Some(sfd));
    Ok(())
}

/// Block until SIGINT or SIGTERM arrives (call `block_stop_signals` first,
/// on this thread); a SIGUSR2 meanwhile starts an upgrade (`ops::upgrade`).
pub fn wait_for_signal() -> Result<i32> {
    loop {
        let sig = wait_for_any_signal()?;
        if sig != libc::SIGUSR2 {
            return Ok(sig);
        }
        crate::ops::upgrade("server");
    }
}

fn wait_for_any_signal() -> Result<i32> {
    STOP_SIGNALS.with(|s| {
        let guard = s.borrow();
        let sfd = guard
            .as_ref()
            .context("block_stop_signals was not called on this thread")?;
        loop {
            let mut pfd = [sys::fdset::PollFd {
                fd: sfd.as_raw_fd(),
                events: sys::fdset::POLLIN,
                revents: 0,
            }];
            sys::fdset::poll(&mut pfd, -1)?;
            if let Some(sig) = sys::signalfd_read(sfd)? {
                return Ok(sig);
            }
        }
    })
}

/// Parse `250ms`, `30s`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" => n / 1_000_000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A timeout flag: a duration, or `off` (also `0`) for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

pub fn parse_timeout(s: &str) -> Result<Timeout, String> {
    match s.trim() {
        "off" | "none" | "never" => Ok(Timeout(None)),
        other => parse_duration(other).map(|d| Timeout((!d.is_zero()).then_some(d))),
    }
}

/// Parse a byte count: `65536`, `64KiB`, `1MiB`, `2GiB` (also `64K`, `1M`,
/// `2G`, binary units).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let shift = match unit {
        "" | "B" => 0,
        "K" | "KiB" | "k" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        _ => return Err(format!("bad size unit in {s:?} (KiB, MiB, GiB)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {s:?} too large"))
}

/// `auto`, `unlimited`, or a number of connections.
pub fn parse_max_connections(s: &str) -> Result<MaxConnections, String> {
    match s.trim() {
        "auto" => Ok(MaxConnections::Auto),
        "unlimited" | "none" => Ok(MaxConnections::Unlimited),
        n => match n.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "bad connection cap {s:?} (a number above 0, auto, unlimited)"
            )),
            Ok(n) => Ok(MaxConnections::Max(n)),
        },
    }
}

/// A duration flag, or its old milliseconds spelling if that was given;
/// at least 1 ms (a zero timer would spin).
pub fn either(d: Duration, old_ms: Option<u64>) -> Duration {
    old_ms
        .map(Duration::from_millis)
        .unwrap_or(d)
        .max(Duration::from_millis(1))
}

/// Print the standard banner line for each address, then report ready
/// (`ops::ready`: pid file, an upgrading parent).
pub fn banner(name: &str, server: &Server) {
    for a in server.addrs() {
        println!("evnet {name} listening on {a} ({})", server.description());
    }
    crate::ops::ready();
}

/// Serve `builder` until SIGINT/SIGTERM, then drain within `deadline`; a
/// second signal exits at once (status 1). With the single reactor
/// (`--loops 0`) the loop runs on this thread, so the process stays
/// single-threaded ([`ServerBuilder::run`]); otherwise the loops get
/// threads and this thread waits for the signal.
/// `serving` is called with the server once it runs (to point a metrics
/// listener at its loops).
pub fn serve_reactor_then<H, F>(
    name: &str,
    builder: ServerBuilder,
    factory: F,
    deadline: Duration,
    serving: impl FnOnce(&Server),
) -> Result<()>
where
    H: EventHandler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    if builder.loop_count() == 0 {
        builder.run(factory, |el, server| {
            serving(server);
            banner(name, server);
            watch_stop_signals(name, el, deadline);
        })?;
        crate::ops::remove_pid_file();
        return Ok(());
    }
    let server = builder.start(factory)?;
    serving(&server);
    banner(name, &server);
    serve_until_signal(name, server, deadline)
}

/// For a loop running on this thread: take the stop-signal fd made by
/// `block_stop_signals` and watch it on `el`. The first signal drains the
/// loop within `deadline` (it then stops); a second exits at once
/// (status 1). If the signals cannot be watched the loop is stopped.
pub fn watch_stop_signals(name: &str, el: &mut EventLoop, deadline: Duration) {
    let Some(sfd) = STOP_SIGNALS.with(|s| s.borrow_mut().take()) else {
        eprintln!("evnet {name}: block_stop_signals was not called on this thread");
        el.stop();
        return;
    };
    let fd = sfd.as_raw_fd();
    let tag = name.to_string();
    let mut draining = false;
    let watched = el.watch(fd, Interest::READABLE, move |el, _| {
        while let Ok(Some(sig)) = sys::signalfd_read(&sfd) {
            if sig == libc::SIGUSR2 {
                crate::ops::upgrade(&tag);
                continue;
            }
            if draining {
                eprintln!("evnet: signal {sig} during shutdown: exiting now");
                std::process::exit(1);
            }
            draining = true;
            crate::ops::stopping();
            eprintln!("evnet {tag}: signal {sig}: draining connections (up to {deadline:?}; signal again to exit now)");
            el.drain(deadline);
        }
    });
    if let Err(e) = watched {
        eprintln!("evnet {name}: cannot watch for signals: {e}");
        el.stop();
    }
}

/// Wait for SIGINT/SIGTERM, then shut down gracefully within `deadline`;
/// a second signal during the drain exits at once (status 1).
pub fn serve_until_signal(name: &str, server: Server, deadline: Duration) -> Result<()> {
    let sig = wait_for_signal()?;
    crate::ops::stopping();
    eprintln!("evnet {name}: signal {sig}: draining connections (up to {deadline:?}; signal again to exit now)");
    let name = name.to_string();
    std::thread::spawn(move || {
        let r = server.shutdown_graceful(deadline);
        crate::ops::remove_pid_file();
        if let Err(e) = r {
            eprintln!("evnet {name}: shutdown: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    });
    let sig = wait_for_signal()?;
    eprintln!("evnet: signal {sig} during shutdown: exiting now");
    std::process::exit(1);
}
