//! What a loop waits on: its driver.
//!
//! | driver | the loop is told | who moves the bytes |
//! |---|---|---|
//! | readiness ([`Poller`]: epoll, uring polls, poll, select, busy-poll, sigio) | an fd is ready | the connection, with its own syscalls |
//! | completion (the io_uring proactor, [`crate::ring`]) | an operation finished | the kernel, through the ring |
//!
//! A completion driver still polls for readiness: listeners, the loop's
//! waker and watched fds are polled on the same ring. So every turn the loop
//! asks the driver for readiness events, then for completions (a readiness
//! driver has none). What a driver can do is its [`Caps`]; nothing above the
//! reactor asks which backend it is.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::poller::{
    new_poller, no_edge, Caps, Event, Interest, Poller, PollerKind, Token, Trigger,
};
use crate::ring::{Completion, Uring};

/// A loop's poller or ring, with what it can do.
pub(crate) struct Driver {
    /// Read on every connection's hot path: kept here, not asked of the
    /// engine through a virtual call.
    caps: Caps,
    trigger: Trigger,
    engine: Engine,
}

enum Engine {
    /// Readiness: the loop is told an fd is ready and does the I/O itself.
    Readiness(Box<dyn Poller>),
    /// Completion: connections hand their recv and send to the ring; the
    /// ring also answers readiness polls for everything else.
    Completion(Box<Uring>),
}

impl Driver {
    /// Build the driver for `kind` in `trigger` mode (an edge-only backend
    /// gives edge whatever is asked: see [`Caps::trigger_for`]). Call it on
    /// the thread that will run the loop. `defer`: see
    /// [`LoopConfig::defer_completions`](crate::reactor::LoopConfig).
    pub(crate) fn new(kind: PollerKind, trigger: Trigger, defer: bool) -> io::Result<Driver> {
        let engine = match kind {
            PollerKind::Proactor if trigger == Trigger::Edge => return Err(no_edge(kind)),
            PollerKind::Proactor if defer => {
                Engine::Completion(Box::new(Uring::new_loop_proactor()?))
            }
            PollerKind::Proactor => Engine::Completion(Box::new(Uring::new_proactor()?)),
            _ => Engine::Readiness(new_poller(kind, trigger)?),
        };
        let poller: &dyn Poller = match &engine {
            Engine::Readiness(p) => &**p,
            Engine::Completion(r) => &**r,
        };
        Ok(Driver {
            caps: poller.caps(),
            trigger: poller.trigger(),
            engine,
        })
    }

    pub(crate) fn caps(&self) -> Caps {
        self.caps
    }

    /// The trigger mode readiness events are delivered in.
    pub(crate) fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// Backend name for logs and benchmark tables.
    pub(crate) fn name(&self) -> &'static str {
        self.poller_ref().name()
    }

    /// The readiness side, which every driver has.
    fn poller(&mut self) -> &mut dyn Poller {
        match &mut self.engine {
            Engine::Readiness(p) => &mut **p,
            Engine::Completion(r) => &mut **r,
        }
    }

    fn poller_ref(&self) -> &dyn Poller {
        match &self.engine {
            Engine::Readiness(p) => &**p,
            Engine::Completion(r) => &**r,
        }
    }

    pub(crate) fn register(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.poller().register(fd, token, interest)
    }

    pub(crate) fn reregister(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.poller().reregister(fd, token, interest)
    }

    pub(crate) fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.poller().deregister(fd)
    }

    /// Wait for readiness (and, on a completion driver, for completions:
    /// the ring returns when either arrives). See [`Poller::wait`].
    pub(crate) fn wait(
        &mut self,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.poller().wait(events, timeout)
    }

    /// The ring connections submit their operations to: `Some` exactly when
    /// [`Caps::completion`] (io_uring's readiness backend has a ring too,
    /// but only for polls, so it is not offered).
    pub(crate) fn ring(&mut self) -> Option<&mut Uring> {
        match &mut self.engine {
            Engine::Readiness(_) => None,
            Engine::Completion(r) => Some(r),
        }
    }

    /// Move the operations that finished since the last call into `out`
    /// (nothing on a readiness driver).
    pub(crate) fn take_completions(&mut self, out: &mut Vec<Completion>) {
        if let Engine::Completion(r) = &mut self.engine {
            r.take_completions(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test per driver, so a failure names its backend: the caps it
    /// reports once built, and the caps [`PollerKind::caps`] promises
    /// before, are both the table's row.
    macro_rules! caps_test {
        ($($name:ident: $kind:expr => $caps:expr;)*) => {$(
            #[test]
            fn $name() {
                let want: Caps = $caps;
                assert_eq!($kind.caps(), want, "PollerKind::caps");
                let driver = Driver::new($kind, Trigger::Level, true).unwrap();
                assert_eq!(driver.caps(), want, "the backend's own caps");
                assert_eq!(
                    driver.trigger(),
                    want.trigger_for(Trigger::Level).unwrap(),
                    "the trigger it delivers"
                );
            }
        )*};
    }

    mod caps {
        use super::*;

        caps_test! {
            epoll: PollerKind::Epoll => Caps { level: true, edge: true, exclusive: true, close_deregisters: true, ..Caps::NONE };
            uring: PollerKind::Uring => Caps { level: true, edge: true, exclusive: true, ..Caps::NONE };
            proactor: PollerKind::Proactor => Caps { level: true, exclusive: true, completion: true, ..Caps::NONE };
            poll: PollerKind::Poll => Caps { level: true, ..Caps::NONE };
            select: PollerKind::Select => Caps { level: true, ..Caps::NONE };
            busy_poll: PollerKind::BusyPoll => Caps { level: true, ..Caps::NONE };
            sigio: PollerKind::SigIo => Caps { edge: true, merges_notices: true, ..Caps::NONE };
        }
    }

    #[test]
    fn only_a_completion_driver_offers_its_ring() {
        for kind in PollerKind::ALL {
            let mut d = Driver::new(kind, Trigger::Level, true).unwrap();
            assert_eq!(d.ring().is_some(), d.caps().completion, "{kind:?}");
        }
    }

    #[test]
    fn the_proactor_has_no_edge_mode() {
        let err = Driver::new(PollerKind::Proactor, Trigger::Edge, true)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
