//! `evnet echo --processes N`: a master supervising SO_REUSEPORT workers.

mod util;

use std::time::Duration;

use util::*;

/// Pids of `pid`'s children, from /proc/PID/task/*/children.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out.sort_unstable();
    out
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry: look at its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s[s.rfind(')').unwrap() + 2..].chars().next(),
            Some('Z') | Some('X')
        ),
        Err(_) => false,
    }
}

fn roundtrips(addr: std::net::SocketAddr, conns: usize) {
    let mut streams: Vec<_> = (0..conns).map(|_| connect(addr)).collect();
    for (i, s) in streams.iter_mut().enumerate() {
        roundtrip(s, &pattern(i as u64, 1 + i * 37 % 4000));
    }
}

#[test]
fn workers_serve_restart_after_kill_and_stop_on_sigterm() {
    let mut master = Child::spawn(&[
        "echo",
        "--addr",
        "127.0.0.1:0",
        "--processes",
        "2",
        "--loops",
        "0",
    ]);
    let mpid = master.pid();
    assert!(
        wait_until(Duration::from_secs(10), || children(mpid).len() == 2),
        "two workers: {:?}",
        children(mpid)
    );
    roundtrips(master.addr, 100);

    let before = children(mpid);
    let victim = before[0];
    evnet::sys::process::kill(victim, libc::SIGKILL).unwrap();
    let replaced = wait_until(Duration::from_secs(10), || {
        let now = children(mpid);
        now.len() == 2 && !now.contains(&victim) && now.iter().all(|&p| alive(p))
    });
    assert!(
        replaced,
        "no replacement for {victim}: {:?}",
        children(mpid)
    );
    // The replacement binds its listener before it reports ready; give the
    // master a moment to see it, then every connection must be served.
    std::thread::sleep(Duration::from_millis(200));
    roundtrips(master.addr, 100);

    let workers = children(mpid);
    evnet::sys::process::kill(mpid, libc::SIGTERM).unwrap();
    let exited = wait_until(Duration::from_secs(15), || !master.is_alive());
    assert!(exited, "master still running after SIGTERM");
    let status = master.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "master exit status {status:?}");
    for w in workers {
        assert!(
            wait_until(Duration::from_secs(5), || !alive(w)),
            "worker {w} outlived the master"
        );
    }
}
