//! A bounded worker pool for blocking work, so it never runs on a loop.
//!
//! `Conn::offload(pool, work, then)` runs `work` on a worker and `then` back
//! on the connection's loop with the result. Jobs of one connection go to
//! one worker (chosen by its token), so their results come back in the order
//! they were submitted. A full queue is refused at once ([`PoolFull`]): the
//! loop never blocks waiting for a worker.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// The pool's queue for that connection is full; nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("worker pool is full")]
pub struct PoolFull;

pub struct WorkerPool {
    queues: Vec<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// `workers` threads, each with a queue of `queue` pending jobs.
    pub fn new(workers: usize, queue: usize) -> Arc<WorkerPool> {
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let (tx, rx) = sync_channel::<Job>(queue.max(1));
            queues.push(tx);
            let t = std::thread::Builder::new()
                .name(format!("evnet-worker-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .expect("spawn worker thread");
            threads.push(t);
        }
        Arc::new(WorkerPool { queues, threads })
    }

    /// Queue `job` on the worker for `key` (jobs with equal keys run in order).
    pub fn submit(&self, key: usize, job: impl FnOnce() + Send + 'static) -> Result<(), PoolFull> {
        let q = &self.queues[key % self.queues.len()];
        q.try_send(Box::new(job)).map_err(|e| match e {
            TrySendError::Full(_) | TrySendError::Disconnected(_) => PoolFull,
        })
    }

    pub fn workers(&self) -> usize {
        self.queues.len()
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.queues.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
