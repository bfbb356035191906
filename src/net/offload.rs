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

/// The pool's queue for that connection is full (or its worker is gone after
/// a job panicked); nothing was queued. Typical handling: answer "busy" or
/// close, rather than retry on the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("worker pool is full")]
pub struct PoolFull;

/// A fixed set of worker threads, each with its own bounded queue, for
/// blocking work (file I/O, DNS, database calls) submitted from loop
/// threads. Shared as `Arc<WorkerPool>`; [`submit`](WorkerPool::submit) may
/// be called from any thread. Dropping the last reference lets the workers
/// finish the jobs already queued, and waits for them.
pub struct WorkerPool {
    queues: Vec<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Starts `workers` threads named `evnet-worker-N`, each with a queue of
    /// up to `queue` pending jobs (both at least 1).
    ///
    /// # Panics
    /// If a thread cannot be spawned.
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

    /// Queue `job` on the worker for `key` (jobs with equal keys run in
    /// order, on the same worker). Never blocks.
    ///
    /// # Errors
    /// [`PoolFull`] if that worker's queue is full, or if the worker died
    /// because an earlier job panicked.
    pub fn submit(&self, key: usize, job: impl FnOnce() + Send + 'static) -> Result<(), PoolFull> {
        let q = &self.queues[key % self.queues.len()];
        q.try_send(Box::new(job)).map_err(|e| match e {
            TrySendError::Full(_) | TrySendError::Disconnected(_) => PoolFull,
        })
    }

    /// Number of worker threads (fixed at creation).
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
