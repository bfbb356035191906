//! Operations every server command shares: the pid file, reporting ready
//! (to an upgrading parent), and the SIGUSR2 upgrade.
//!
//! The pid file follows nginx: on SIGUSR2 the old process renames it to
//! `<path>.oldbin` and starts the new one, which writes `<path>` with its
//! own pid once it serves. If the new process fails, the old one renames
//! `.oldbin` back. A process removes the file it owns when it exits.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use evnet::net::{inherit, upgrade};
use evnet::sys;

/// Overrides the program an upgrade starts (default: the path this
/// process was started from). Tests point it at a program that fails.
pub const UPGRADE_BIN_ENV: &str = "EVNET_UPGRADE_BIN";

struct Settings {
    pid_file: Option<PathBuf>,
    upgrade_timeout: Duration,
    /// Resolved at start: after a new build replaces the file, `/proc/self/exe`
    /// names the deleted old one, while this path names the new.
    program: PathBuf,
}

static SETTINGS: Mutex<Option<Settings>> = Mutex::new(None);
static UPGRADING: AtomicBool = AtomicBool::new(false);
static HANDED_OVER: AtomicBool = AtomicBool::new(false);
/// A stop signal arrived: no upgrade may start any more.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// The server is stopping (SIGINT/SIGTERM): a later SIGUSR2 is ignored.
pub fn stopping() {
    STOPPING.store(true, Ordering::SeqCst);
}

fn settings<R>(f: impl FnOnce(&Settings) -> R) -> Option<R> {
    SETTINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(f)
}

/// Remember the pid file and upgrade timeout (called once at start).
pub fn configure(pid_file: Option<PathBuf>, upgrade_timeout: Duration) {
    let program = std::env::current_exe()
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(std::env::args_os().next().unwrap_or_default()));
    *SETTINGS.lock().unwrap_or_else(|e| e.into_inner()) = Some(Settings {
        pid_file,
        upgrade_timeout,
        program,
    });
}

fn oldbin(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".oldbin");
    PathBuf::from(s)
}

/// The server serves: write the pid file, close inherited sockets no
/// server took, and tell an upgrading parent (it then drains and exits).
pub fn ready() {
    // A worker's readiness goes to its master (its first stdout line).
    let worker = evnet::net::process::worker_index().is_some();
    if let Some(Some(p)) = settings(|s| s.pid_file.clone()).filter(|_| !worker) {
        if let Err(e) = std::fs::write(&p, format!("{}\n", std::process::id())) {
            eprintln!("evnet: cannot write pid file {}: {e}", p.display());
        }
    }
    inherit::close_unclaimed();
    match upgrade::notify_ready() {
        Ok(true) => eprintln!(
            "evnet: pid {} serving; told the old process",
            std::process::id()
        ),
        Ok(false) => {}
        Err(e) => eprintln!("evnet: cannot report ready to the old process: {e}"),
    }
}

/// Remove the pid file this process owns (call before exiting): `.oldbin`
/// after a handover, else the file itself if it still names this process.
pub fn remove_pid_file() {
    if evnet::net::process::worker_index().is_some() {
        return;
    }
    let Some(Some(p)) = settings(|s| s.pid_file.clone()) else {
        return;
    };
    if HANDED_OVER.load(Ordering::SeqCst) {
        let _ = std::fs::remove_file(oldbin(&p));
        return;
    }
    let ours = std::fs::read_to_string(&p)
        .map(|s| s.trim() == std::process::id().to_string())
        .unwrap_or(false);
    if ours {
        let _ = std::fs::remove_file(&p);
    }
}

/// SIGUSR2: start this program again with the same arguments, hand it
/// every listener, and once it reports ready stop this process the way
/// SIGTERM does (stop accepting, drain, exit 0). Runs on a thread of its
/// own so the loops keep serving while the new process starts; a failure
/// is logged and this process serves on. A second SIGUSR2 while one is
/// under way is ignored.
pub fn upgrade(name: &str) {
    if evnet::net::process::worker_index().is_some() {
        eprintln!("evnet {name}: SIGUSR2 goes to the master process; ignored by this worker");
        return;
    }
    if STOPPING.load(Ordering::SeqCst) {
        eprintln!("evnet {name}: SIGUSR2 during shutdown: ignored");
        return;
    }
    if UPGRADING.swap(true, Ordering::SeqCst) {
        eprintln!("evnet {name}: SIGUSR2: an upgrade is already under way");
        return;
    }
    let name = name.to_string();
    let spawned = std::thread::Builder::new()
        .name("evnet-upgrade".into())
        .spawn(move || run_upgrade(&name));
    if let Err(e) = spawned {
        eprintln!("evnet: SIGUSR2: cannot start the upgrade: {e}");
        UPGRADING.store(false, Ordering::SeqCst);
    }
}

fn run_upgrade(name: &str) {
    let Some((pid_file, timeout, program)) =
        settings(|s| (s.pid_file.clone(), s.upgrade_timeout, s.program.clone()))
    else {
        eprintln!("evnet {name}: SIGUSR2: not configured for upgrades");
        UPGRADING.store(false, Ordering::SeqCst);
        return;
    };
    let program = std::env::var_os(UPGRADE_BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or(program);
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(p) = &pid_file {
        if let Err(e) = std::fs::rename(p, oldbin(p)) {
            eprintln!("evnet {name}: renaming pid file {}: {e}", p.display());
        }
    }
    eprintln!(
        "evnet {name}: SIGUSR2: starting {} to take over",
        program.display()
    );
    let result = upgrade::start_successor(&program, &args).and_then(|s| s.wait_ready(timeout));
    match result {
        Ok(pid) => {
            // One write(2): the successor logs to the same stderr at this
            // moment, and eprintln! writes a line in pieces that its
            // lines could split (tests and scripts read this one).
            let line =
                format!("evnet {name}: pid {pid} took over the listeners; draining and exiting\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            HANDED_OVER.store(true, Ordering::SeqCst);
            inherit::mark_handed_over();
            // The stop path SIGTERM takes, through the same signalfd.
            if let Err(e) = sys::process::kill(std::process::id(), libc::SIGTERM) {
                eprintln!("evnet {name}: cannot stop after the upgrade: {e}");
            }
        }
        Err(e) => {
            eprintln!("evnet {name}: upgrade failed: {e}; still serving");
            if let Some(p) = &pid_file {
                let _ = std::fs::rename(oldbin(p), p);
            }
            UPGRADING.store(false, Ordering::SeqCst);
        }
    }
}
