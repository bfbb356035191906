//! Multi-process mode, nginx style: a master re-executes its own program N
//! times as workers and supervises them.
//!
//! ```text
//!   master (no listener)                  workers (EVNET_WORKER=0..N)
//!   resolve port 0 -> concrete port  --->  each binds its own SO_REUSEPORT
//!   wait for every worker's first          listener on that port and prints
//!   stdout line (its "ready" banner)       a banner line when serving
//!   loop: signalfd (SIGTERM/SIGINT)
//!         pidfd per worker -> restart a worker that dies
//!   on SIGTERM/SIGINT: SIGTERM to all, wait (bounded), SIGKILL stragglers
//! ```
//!
//! The kernel spreads new connections over the workers' listeners by a hash
//! of the 4-tuple; there is no accept lock and no shared listener. A worker
//! dying drops only its own connections (and the ones queued on its
//! listener); its replacement binds a fresh listener.
//!
//! Readiness is "the worker printed its first line on stdout": servers print
//! their listening banner only after binding, so the master can announce the
//! service only when every worker accepts.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
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
    child: Child,
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
        }
    }

    /// The first stdout line of each worker, by index.
    pub fn ready_lines(&self) -> &[String] {
        &self.ready_lines
    }

    /// The current worker pids, by index.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.child.id()).collect()
    }

    /// Supervise until SIGTERM or SIGINT (blocked here, read through a
    /// signalfd): a worker that exits is restarted (at most once a second
    /// if it keeps dying at start). On the signal every worker gets SIGTERM,
    /// then SIGKILL after the grace period; returns the signal once all have
    /// been reaped. Must be called on the thread that started the workers
    /// (their parent-death signal is tied to it).
    pub fn run(self) -> io::Result<i32> {
        let sigs = [libc::SIGINT, libc::SIGTERM];
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
    let mut child = Command::new(&cfg.program)
        .args(&cfg.args)
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .env(WORKER_ENV, i.to_string())
        .env(MASTER_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("spawning worker {i}: {e}")))?;
    let pid = child.id();
    let pidfd = match sys::process::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let stdout = child.stdout.take().expect("piped stdout");
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
        child,
        pidfd,
        started: Instant::now(),
    })
}

fn kill_all(workers: &mut [Worker]) {
    for w in workers.iter_mut() {
        let _ = w.child.kill();
        let _ = w.child.wait();
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
    let Some((mut w, watch)) = st.workers[i].take() else {
        return;
    };
    if let Some(id) = watch {
        let _ = el.unwatch(id);
    }
    let status = w.child.wait();
    let pid = w.child.id();
    drop(w.pidfd);
    if st.stopping.is_some() {
        tracing::info!("worker {i} (pid {pid}) exited: {status:?}");
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
    tracing::warn!("worker {i} (pid {pid}) exited ({status:?}); restarting in {delay:?}");
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
            tracing::info!("worker {i} restarted as pid {}", w.child.id());
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
        let _ = sys::process::kill(w.child.id(), libc::SIGTERM);
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
                w.child.id()
            );
            let _ = sys::process::kill(w.child.id(), libc::SIGKILL);
        }
    });
}
