//! Tasks on the loops (`evnet::rt`): spawning locally, from other threads
//! and from callback handlers; join handles, abort and panics; sleep,
//! timeout and interval on the timing wheel, with their wheel operations
//! counted.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evnet::echo::Echo;
use evnet::net::ServerBuilder;
use evnet::reactor::{EventLoop, LoopConfig, LoopGroup};
use evnet::rt::{self, JoinError};
use util::*;

fn two_loops() -> LoopGroup {
    LoopGroup::start(2, |id| {
        EventLoop::new(LoopConfig {
            id,
            ..LoopConfig::default()
        })
    })
    .unwrap()
}

#[test]
fn block_on_runs_spawned_tasks_and_sleeps_end_in_deadline_order() {
    let start = Instant::now();
    let order = rt::block_on(async {
        let order = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|ms| {
                let order = order.clone();
                rt::spawn_local(async move {
                    rt::sleep(Duration::from_millis(ms)).await;
                    order.borrow_mut().push(ms);
                    ms * 2
                })
            })
            .collect();
        let mut doubled = Vec::new();
        for h in handles {
            doubled.push(h.await.unwrap());
        }
        assert_eq!(doubled, [60, 20, 40]);
        let v = order.borrow().clone();
        v
    });
    assert_eq!(order, [10, 20, 30]);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn many_threads_spawn_onto_two_loops_and_every_task_runs_once() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 12_500; // 100,000 in all
    let group = two_loops();
    let runs: Arc<Vec<AtomicU8>> = Arc::new(
        (0..THREADS * PER_THREAD)
            .map(|_| AtomicU8::new(0))
            .collect(),
    );
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            let handles = group.handles().to_vec();
            let runs = runs.clone();
            std::thread::spawn(move || {
                let joins: Vec<_> = (0..PER_THREAD)
                    .map(|i| {
                        let n = t * PER_THREAD + i;
                        let runs = runs.clone();
                        rt::spawn_on(&handles[n % 2], move || async move {
                            runs[n].fetch_add(1, Ordering::Relaxed);
                            n
                        })
                        .unwrap()
                    })
                    .collect();
                // Awaited here, on a loop of this thread's own: the wakes
                // come from the two serving loops.
                rt::block_on(async move {
                    for (i, j) in joins.into_iter().enumerate() {
                        assert_eq!(j.await.unwrap(), t * PER_THREAD + i);
                    }
                });
            })
        })
        .collect();
    for s in spawners {
        s.join().unwrap();
    }
    let wrong: Vec<usize> = (0..runs.len())
        .filter(|&i| runs[i].load(Ordering::Relaxed) != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} tasks did not run exactly once",
        wrong.len()
    );
    group.stop();
    group.join().unwrap();
}

#[test]
fn a_panicking_task_is_reported_and_the_loop_keeps_serving() {
    let group = two_loops();
    let h = &group.handles()[0];
    let boom = rt::spawn_on(h, || async {
        rt::yield_now().await;
        panic!("task blew up");
    })
    .unwrap();
    let after = rt::spawn_on(h, || async {
        rt::sleep(Duration::from_millis(5)).await;
        "still serving"
    })
    .unwrap();
    rt::block_on(async {
        let err = boom.await.unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        assert_eq!(err.panic_message(), Some("task blew up"));
        assert_eq!(after.await.unwrap(), "still serving");
    });
    group.stop();
    group.join().unwrap();
}

#[test]
fn abort_cancels_a_waiting_task_and_takes_its_timer_off_the_wheel() {
    rt::block_on(async {
        let dropped = Rc::new(RefCell::new(false));
        struct Flag(Rc<RefCell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                *self.0.borrow_mut() = true;
            }
        }
        let flag = Flag(dropped.clone());
        let sleeper = rt::spawn_local(async move {
            let _flag = flag;
            rt::sleep(Duration::from_secs(3600)).await;
            "woke"
        });
        rt::yield_now().await; // it runs, and waits
        assert!(!sleeper.is_finished());
        let t = Instant::now();
        sleeper.abort();
        let err = sleeper.await.unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(*dropped.borrow(), "the task's future was dropped");
    });
}

#[test]
fn timeout_elapses_or_yields_the_value_and_cancels_its_timer() {
    let mut el = EventLoop::new(LoopConfig::default()).unwrap();
    // Drive the loop by hand to look at its counters.
    let done = Rc::new(RefCell::new(None));
    let d = done.clone();
    rt::spawn_in(&mut el, async move {
        let t = Instant::now();
        let r = rt::timeout(
            Duration::from_millis(20),
            rt::sleep(Duration::from_secs(3600)),
        )
        .await;
        assert_eq!(r, Err(rt::Elapsed));
        assert!(t.elapsed() >= Duration::from_millis(20));
        // Ready at the first poll: no timer at all.
        assert_eq!(
            rt::timeout(Duration::from_secs(3600), async { 7 }).await,
            Ok(7)
        );
        // Ready at the second poll: one arm and one cancel each.
        for _ in 0..10_000 {
            let r = rt::timeout(Duration::from_secs(3600), rt::yield_now()).await;
            assert_eq!(r, Ok(()));
        }
        *d.borrow_mut() = Some(());
    });
    let base_timers = el.timer_count();
    for _ in 0..100_000 {
        if done.borrow().is_some() {
            break;
        }
        el.turn(Some(Duration::from_millis(100))).unwrap();
    }
    assert!(done.borrow().is_some(), "the task did not finish");
    // 20 ms timeout: arm + the sleep(1 h) it raced: arm, cancel. Then
    // 10,000 × (arm + cancel).
    assert_eq!(rt::timer_operations(&el), 3 + 20_000);
    assert_eq!(rt::armed_timers(&el), 0);
    assert!(el.timer_count() <= base_timers, "timers left on the wheel");
    assert_eq!(rt::task_count(&el), 0);
}

#[test]
fn interval_ticks_every_period_without_bursts() {
    let period = Duration::from_millis(10);
    let (ticks, stall_end) = rt::block_on(async move {
        let mut iv = rt::interval(period);
        let mut ticks = Vec::new();
        let mut stall_end = None;
        for i in 0..5 {
            ticks.push(iv.tick().await);
            if i == 1 {
                // Fall behind by more than three periods.
                std::thread::sleep(Duration::from_millis(35));
                stall_end = Some(Instant::now());
            }
        }
        (ticks, stall_end.unwrap())
    });
    // (Scheduling delays on a loaded machine can only make ticks later, so
    // these hold whatever the load.) Never two ticks within a period.
    for w in ticks.windows(2) {
        assert!(w[1] - w[0] >= period, "ticks {:?} apart", w[1] - w[0]);
    }
    // The tick due during the stall comes (late), once...
    assert!(ticks[2] < stall_end);
    // ...and the missed ones are not made up in a burst: the next is a
    // whole period after the late one was taken.
    assert!(
        ticks[3] >= stall_end + period,
        "a burst after falling behind"
    );
}

#[test]
fn tasks_of_a_stopped_loop_are_cancelled_and_spawning_onto_it_fails() {
    let group = two_loops();
    let h = group.handles()[1].clone();
    let long = rt::spawn_on(&h, || async {
        rt::sleep(Duration::from_secs(3600)).await;
    })
    .unwrap();
    // It is on the loop (and waiting) before the stop.
    let started = rt::spawn_on(&h, || async {}).unwrap();
    rt::block_on(async { started.await.unwrap() });
    group.stop();
    group.join().unwrap();
    let err = rt::block_on(long).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(rt::spawn_on(&h, || async {}).is_err());
}

/// Tasks share a server's loop with its callback handlers: while echo
/// serves on the loop, a task spawned onto it counts the loop's open
/// connections from the loop's own stats.
#[test]
fn tasks_run_beside_a_servers_callback_handlers() {
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .loops(1)
        .start(|_| Echo)
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut c = connect(addr);
    roundtrip(&mut c, b"before");
    let loop_handle = server.serving_loops()[0].clone();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let h2 = loop_handle.clone();
    let task = rt::spawn_on(&loop_handle, move || async move {
        for _ in 0..3 {
            rt::sleep(Duration::from_millis(2)).await;
        }
        s.store(
            h2.stats().connections_open.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    })
    .unwrap();
    rt::block_on(task).unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 1);
    // The echo is unaffected.
    c.write_all(b"after").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"after");
    server.shutdown().unwrap();
}

#[test]
fn join_errors_say_what_happened() {
    let e = JoinError::Cancelled;
    assert_eq!(e.to_string(), "task was cancelled");
    assert!(e.panic_message().is_none());
}
