//! Multi-process mode, nginx style: a master re-executes its own program N
//! times as workers and supervises them.
//!
//! ```text
//!   master                                workers (EVNET_WORKER=0..N)
//!   binds every worker's SO_REUSEPORT  --->  get theirs as LISTEN_FDS
//!   listeners (worker_fds)                   (inherit.rs) and serve them;
//!   wait for every worker's first            print a banner line when serving
//!   stdout line (its "ready" banner)
//!   loop: signalfd (SIGTERM/SIGINT, SIGUSR2 -> on_upgrade)
//!         pidfd per worker -> restart a worker that dies
//!   on SIGTERM/SIGINT: SIGTERM to all, wait (bounded), SIGKILL stragglers
//! ```
//!
//! The kernel spreads new connections over the workers' listeners by a hash
//! of the 4-tuple; there is no accept lock and no shared listener. A worker
//! dying drops only its own connections; its replacement is passed the same
//! listeners, so connections queued on them wait for it instead of being
//! reset (closing a SO_REUSEPORT member resets its queue). The master
//! holds every listener, so an upgrade can pass them all on.
//!
//! Readiness is "the worker printed its first line on stdout": servers print
//! their listening banner only after binding, so the master can announce the
//! service only when every worker accepts.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::Addr;
use crate::poller::Interest;
use crate::reactor::{EventLoop, LoopConfig, WatchId};
use crate::sys;

/// Set in a worker's environment to its index (0-based).
pub const WORKER_ENV: &str = "EVNET_WORKER";
/// Set in a worker's environment to the master's pid.
pub const MASTER_ENV: &str = "EVNET_MASTER_PID";

/// This process's worker index, if it was started by a [`Supervisor`].
pub fn worker_index() -> Option<usize> {
    std::env::var(WORKER_ENV).ok()?.parse().ok()
}

/// Call first thing in a worker: the kernel sends it SIGTERM if the master
/// dies (even by SIGKILL), so no worker outlives its master. Returns the
/// worker index, or `None` when not running as a worker.
pub fn worker_init() -> io::Result<Option<usize>> {
    let Some(i) = worker_index() else {
        return Ok(None);
    };
    sys::process::set_parent_death_signal(libc::SIGTERM)?;
    // The master may have died before the prctl: then nobody will signal us.
    if let Some(master) = std::env::var(MASTER_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if sys::process::getppid() != master {
            return Err(io::Error::other("the master process is gone"));
        }
    }
    Ok(Some(i))
}

/// Replace TCP port 0 with a concrete free port (bind, read, close), so
/// that every worker binds the same port. Another process could take the
/// port in between; binding then fails loudly in the workers.
pub fn resolve_ports(addrs: &[Addr]) -> io::Result<Vec<Addr>> {
    addrs
        .iter()
        .map(|a| match a.tcp() {
            Some(sa) if sa.port() == 0 => {
                let l = std::net::TcpListener::bind(sa)
                    .map_err(|e| io::Error::new(e.kind(), format!("bind {a}: {e}")))?;
                Ok(Addr::from(l.local_addr()?))
            }
            _ => Ok(a.clone()),
        })
        .collect()
}

/// How to start and supervise the workers.
pub struct SupervisorBuilder {
    workers: usize,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    ready_timeout: Duration,
    grace: Duration,
    worker_fds: Vec<Vec<Arc<OwnedFd>>>,
    on_upgrade: Option<Box<dyn Fn()>>,
}

impl SupervisorBuilder {
    /// Run `args` with `program` in each worker (default: this program, re-executed with its own arguments).
    pub fn command(
        mut self,
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        self.program = program.into();
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Add an environment variable for every worker.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long `start` waits for every worker's ready line (default 10 s).
    pub fn ready_timeout(mut self, d: Duration) -> Self {
        self.ready_timeout = d;
        self
    }

    /// The listening sockets each worker serves (by worker index), passed
    /// as `LISTEN_FDS` at every start of that worker (default none: workers
    /// bind their own).
    pub fn worker_fds(mut self, fds: Vec<Vec<Arc<OwnedFd>>>) -> Self {
        self.worker_fds = fds;
        self
    }

    /// Called on the supervising thread when the master gets SIGUSR2 (an
    /// upgrade: start the new master and, once it serves, SIGTERM this
    /// one). Default: SIGUSR2 is ignored.
    pub fn on_upgrade(mut self, f: impl Fn() + 'static) -> Self {
        self.on_upgrade = Some(Box::new(f));
        self
    }

    /// How long a stop waits after SIGTERM before SIGKILL (default 5 s).
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = d;
        self
    }

    /// Spawn every worker and wait until each has printed its ready line.
    /// On failure every worker already started is killed.
    pub fn start(self) -> io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel();
        let cfg = Rc::new(self);
        let mut workers = Vec::new();
        for i in 0..cfg.workers {
            match spawn(&cfg, i, Some(tx.clone())) {
                Ok(w) => workers.push(w),
                Err(e) => {
                    kill_all(&mut workers);
                    return Err(e);
                }
            }
        }
        drop(tx);
        let deadline = Instant::now() + cfg.ready_timeout;
        let mut lines = vec![String::new(); cfg.workers];
        let mut ready = 0;
        while ready < cfg.workers {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = rx.recv_timeout(left);
            let err = match r {
                Ok((i, Ok(line))) => {
                    lines[i] = line;
                    ready += 1;
                    continue;
                }
                Ok((i, Err(()))) => format!("worker {i} exited before it was ready"),
                Err(_) => format!("workers not ready after {:?}", cfg.ready_timeout),
            };
            kill_all(&mut workers);
            return Err(io::Error::other(err));
        }
        Ok(Supervisor {
            cfg,
            workers,
            ready_lines: lines,
        })
    }
}

/// A running set of worker processes.
pub struct Supervisor {
    cfg: Rc<SupervisorBuilder>,
    workers: Vec<Worker>,
    ready_lines: Vec<String>,
}

struct Worker {
    pid: u32,
    pidfd: OwnedFd,
    started: Instant,
}

impl Supervisor {
    /// `workers` re-executions of this program (same arguments), to be
    /// adjusted with the builder.
    pub fn builder(workers: usize) -> SupervisorBuilder {
        SupervisorBuilder {
            workers: workers.max(1),
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            args: std::env::args_os().skip(1).collect(),
            env: Vec::new(),
            ready_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(5),
            worker_fds: Vec::new(),
            on_upgrade: None,
        }
    }

    /// The first stdout line of each worker, by index.
    pub fn ready_lines(&self) -> &[String] {
        &self.ready_lines
    }

    /// The current worker pids, by index.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    /// Supervise until SIGTERM or SIGINT (blocked here, read through a
    /// signalfd): a worker that exits is restarted (at most once a second
    /// if it keeps dying at start). On the signal every worker gets SIGTERM,
    /// then SIGKILL after the grace period; returns the signal once all have
    /// been reaped. Must be called on the thread that started the workers
    /// (their parent-death signal is tied to it).
    pub fn run(self) -> io::Result<i32> {
        let sigs = [libc::SIGINT, libc::SIGTERM, libc::SIGUSR2];
        sys::block_signals(&sigs)?;
        let sfd = sys::signalfd(&sigs)?;
        let mut el = EventLoop::new(LoopConfig::default())?;
        let n = self.workers.len();
        let state = Rc::new(RefCell::new(State {
            cfg: self.cfg,
            workers: self.workers.into_iter().map(|w| Some((w, None))).collect(),
            stopping: None,
        }));
        for i in 0..n {
            watch(&mut el, &state, i)?;
        }
        let st = state.clone();
        let sfd_raw = sfd.as_raw_fd();
        el.watch(sfd_raw, Interest::READABLE, move |el, _| {
            while let Ok(Some(sig)) = sys::signalfd_read(&sfd) {
                if sig == libc::SIGUSR2 {
                    let st = st.borrow();
                    match &st.cfg.on_upgrade {
                        Some(f) if st.stopping.is_none() => f(),
                        _ => tracing::info!("SIGUSR2 ignored"),
                    }
                    continue;
                }
                begin_stop(el, &st, sig);
            }
        })?;
        el.run()?;
        let sig = state.borrow().stopping.unwrap_or(libc::SIGTERM);
        Ok(sig)
    }
}

struct State {
    cfg: Rc<SupervisorBuilder>,
    /// `None` while a worker is waiting to be restarted.
    workers: Vec<Option<(Worker, Option<WatchId>)>>,
    /// The signal that asked us to stop.
    stopping: Option<i32>,
}

fn spawn(
    cfg: &SupervisorBuilder,
    i: usize,
    ready: Option<mpsc::Sender<(usize, Result<String, ()>)>>,
) -> io::Result<Worker> {
    let fds: Vec<std::os::fd::RawFd> = cfg
        .worker_fds
        .get(i)
        .map(|v| v.iter().map(|f| f.as_raw_fd()).collect())
        .unwrap_or_default();
    let cstr = |b: &[u8]| {
        std::ffi::CString::new(b)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
    };
    let prog = cstr(cfg.program.as_os_str().as_bytes())?;
    let mut argv = vec![prog.clone()];
    for a in &cfg.args {
        argv.push(cstr(a.as_bytes())?);
    }
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    vars.extend(cfg.env.iter().cloned());
    vars.push((WORKER_ENV.into(), i.to_string().into()));
    vars.push((MASTER_ENV.into(), std::process::id().to_string().into()));
    if !fds.is_empty() {
        let names: Vec<String> = fds.iter().map(|&fd| super::inherit::fd_name(fd)).collect();
        vars.push((
            super::inherit::LISTEN_FDS.into(),
            fds.len().to_string().into(),
        ));
        vars.push((
            super::inherit::LISTEN_FDNAMES.into(),
            names.join(":").into(),
        ));
    }
    let mut env = Vec::new();
    for (k, v) in &vars {
        // A later entry (ours) wins over an inherited one of the same name.
        if vars.iter().rev().find(|(k2, _)| k2 == k).map(|(_, v2)| v2) != Some(v) {
            continue;
        }
        if k == super::inherit::LISTEN_PID {
            continue;
        }
        let mut e = k.as_bytes().to_vec();
        e.push(b'=');
        e.extend_from_slice(v.as_bytes());
        env.push(cstr(&e)?);
    }
    let null = std::fs::File::open("/dev/null")?;
    let (out_read, out_write) = std::io::pipe()?;
    let pid = sys::process::spawn_with_fds(
        &prog,
        &argv,
        &env,
        &[(null.as_raw_fd(), 0), (out_write.as_raw_fd(), 1)],
        &fds,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("spawning worker {i}: {e}")))?;
    drop(out_write);
    let pidfd = match sys::process::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = sys::process::kill(pid, libc::SIGKILL);
            sys::process::reap_blocking(pid);
            return Err(e);
        }
    };
    let stdout = out_read;
    // Off the loop: a worker's output must never block the master.
    let _ = std::thread::Builder::new()
        .name(format!("evnet-worker-{i}-out"))
        .spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            match lines.next() {
                Some(Ok(line)) => {
                    tracing::info!("worker {i} (pid {pid}) ready");
                    if let Some(tx) = ready {
                        let _ = tx.send((i, Ok(line)));
                    }
                }
                _ => {
                    if let Some(tx) = ready {
                        let _ = tx.send((i, Err(())));
                    }
                    return;
                }
            }
            for line in lines.map_while(Result::ok) {
                println!("[worker {i}] {line}");
            }
        });
    Ok(Worker {
        pid,
        pidfd,
        started: Instant::now(),
    })
}

fn kill_all(workers: &mut [Worker]) {
    for w in workers.iter_mut() {
        let _ = sys::process::kill(w.pid, libc::SIGKILL);
        sys::process::reap_blocking(w.pid);
    }
}

fn watch(el: &mut EventLoop, state: &Rc<RefCell<State>>, i: usize) -> io::Result<()> {
    let fd = match &state.borrow().workers[i] {
        Some((w, _)) => w.pidfd.as_raw_fd(),
        None => return Ok(()),
    };
    let st = state.clone();
    let id = el.watch(fd, Interest::READABLE, move |el, _| on_exit(el, &st, i))?;
    if let Some((_, watch)) = &mut state.borrow_mut().workers[i] {
        *watch = Some(id);
    }
    Ok(())
}

fn live(state: &State) -> usize {
    state.workers.iter().filter(|w| w.is_some()).count()
}

fn on_exit(el: &mut EventLoop, state: &Rc<RefCell<State>>, i: usize) {
    let mut st = state.borrow_mut();
    let Some((w, watch)) = st.workers[i].take() else {
        return;
    };
    if let Some(id) = watch {
        let _ = el.unwatch(id);
    }
    let pid = w.pid;
    let status = sys::process::reap_status(pid);
    drop(w.pidfd);
    if st.stopping.is_some() {
        tracing::info!("worker {i} (pid {pid}) exited: {status}");
        if live(&st) == 0 {
            el.stop();
        }
        return;
    }
    // A worker that dies at once (bad config, port taken) would otherwise
    // be restarted in a tight loop.
    let delay = if w.started.elapsed() < Duration::from_secs(1) {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    tracing::warn!("worker {i} (pid {pid}) exited ({status}); restarting in {delay:?}");
    drop(st);
    let st = state.clone();
    el.run_after(delay, move |el| respawn(el, &st, i));
}

fn respawn(el: &mut EventLoop, state: &Rc<RefCell<State>>, i: usize) {
    if state.borrow().stopping.is_some() {
        return;
    }
    let cfg = state.borrow().cfg.clone();
    match spawn(&cfg, i, None) {
        Ok(w) => {
            tracing::info!("worker {i} restarted as pid {}", w.pid);
            state.borrow_mut().workers[i] = Some((w, None));
            if let Err(e) = watch(el, state, i) {
                tracing::error!("cannot watch worker {i}: {e}");
            }
        }
        Err(e) => {
            tracing::error!("cannot restart worker {i}: {e}; retrying in 1s");
            let st = state.clone();
            el.run_after(Duration::from_secs(1), move |el| respawn(el, &st, i));
        }
    }
}

fn begin_stop(el: &mut EventLoop, state: &Rc<RefCell<State>>, sig: i32) {
    let mut st = state.borrow_mut();
    if st.stopping.is_some() {
        return;
    }
    st.stopping = Some(sig);
    tracing::info!("signal {sig}: stopping {} workers", live(&st));
    for (w, _) in st.workers.iter().flatten() {
        let _ = sys::process::kill(w.pid, libc::SIGTERM);
    }
    if live(&st) == 0 {
        el.stop();
        return;
    }
    let grace = st.cfg.grace;
    drop(st);
    let st = state.clone();
    el.run_after(grace, move |_| {
        for (w, _) in st.borrow().workers.iter().flatten() {
            tracing::warn!(
                "worker pid {} ignored SIGTERM for {grace:?}; killing it",
                w.pid
            );
            let _ = sys::process::kill(w.pid, libc::SIGKILL);
        }
    });
}
