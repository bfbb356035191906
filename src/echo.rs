//! The echo service: every byte read is written back.
//!
//! A peer that sends but never reads cannot grow the server's memory past
//! the high-water mark: reading pauses there and resumes when the output
//! has drained.

use crate::net::{Buffer, Conn, EventHandler};

/// An [`EventHandler`] that writes every byte it reads back to the peer,
/// pausing reads while the output queue is above its high-water mark. Keeps
/// no per-connection state; useful as a benchmark target and a smoke test.
#[derive(Default)]
pub struct Echo;

impl EventHandler for Echo {
    type Context = ();

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        if conn.write(input.as_slice()).is_ok() {
            input.clear();
        }
    }

    fn on_high_water(&mut self, conn: &mut Conn<'_, Self>, _queued: usize) {
        conn.pause_read();
    }

    fn on_write_complete(&mut self, conn: &mut Conn<'_, Self>) {
        conn.resume_read();
    }
}
