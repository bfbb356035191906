//! The framed adapter: a [`FrameHandler`] receives whole frames decoded by
//! its codec instead of raw bytes.
//!
//! [`Framed<H>`] implements [`EventHandler`] for any `H: FrameHandler`. Each
//! connection gets its own decoder (`H::Codec::default()`), kept in the
//! connection's context next to the user's own ([`FramedContext`]). When
//! bytes arrive the adapter decodes as many frames as the input holds and
//! hands them to `on_frame` in order, all within one callback, so every reply
//! written for one pipelined batch leaves in one send.
//!
//! Decoding stops as soon as the handler closes the connection (QUIT-style
//! commands): frames after that point are dropped, not answered.
//!
//! Decoding also stops when the replies written so far reach the
//! connection's high-water mark and the socket cannot take them at once:
//! the frames not yet decoded stay in the input, reading pauses, and both
//! resume when the output has drained. So a few kilobytes of pipelined
//! requests for large values cannot make one connection hold an unbounded
//! amount of replies: it holds at most the mark plus one reply.
//!
//! A decode error means the stream is out of sync: `on_decode_error` runs
//! (the default closes the connection with [`CloseReason::Protocol`]) and the
//! connection is closed even if the handler did not ask for it. Only that
//! connection is affected.
//!
//! ```no_run
//! use evnet::codec::framed::{FrameHandler, Framed};
//! use evnet::codec::line::LineCodec;
//! use evnet::net::{Conn, ServerBuilder};
//!
//! /// Answers every `\n`-terminated line in upper case.
//! struct Upper;
//!
//! impl FrameHandler for Upper {
//!     type Codec = LineCodec; // default: `\n`, lines up to 64 KiB
//!     type Context = ();
//!     fn on_frame(&mut self, conn: &mut Conn<'_, Framed<Self>>, line: Vec<u8>) {
//!         let _ = conn.write_with(|out| {
//!             out.extend(line.to_ascii_uppercase());
//!             out.push(b'\n');
//!         });
//!     }
//! }
//!
//! let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
//! let server = ServerBuilder::new().bind(addr).start(|_| Framed::new(Upper)).unwrap();
//! ```

use super::{CodecError, Decoder};
use crate::net::{Buffer, CloseReason, Conn, EventHandler};

/// The item type `H`'s codec produces.
pub type FrameOf<H> = <<H as FrameHandler>::Codec as Decoder>::Item;

/// A handler that works on whole frames. Callbacks mirror [`EventHandler`];
/// the connection they get is a `Conn<Framed<Self>>`, whose context is a
/// [`FramedContext`] (`conn.context().user` is `Self::Context`).
pub trait FrameHandler: Sized + 'static {
    /// The decoder, one per connection.
    type Codec: Decoder + Default + 'static;
    /// Per-connection state of the user.
    type Context: Default + 'static;

    /// The connection is established; no frame has been decoded yet. The
    /// default does nothing. See [`EventHandler::on_open`].
    fn on_open(&mut self, _conn: &mut Conn<'_, Framed<Self>>) {}

    /// One whole frame, in arrival order.
    fn on_frame(&mut self, conn: &mut Conn<'_, Framed<Self>>, frame: FrameOf<Self>);

    /// The peer sent bytes the codec rejects. The default closes the
    /// connection with [`CloseReason::Protocol`]; an override may write an
    /// error reply first. The connection is closed after this returns either
    /// way.
    fn on_decode_error(&mut self, conn: &mut Conn<'_, Framed<Self>>, err: CodecError) {
        conn.close_with(CloseReason::Protocol(err.to_string()));
    }

    /// Output that had to wait in the connection's queue has all been
    /// handed to the kernel; the usual place to resume reading after
    /// [`on_high_water`](Self::on_high_water) paused it. The default does
    /// nothing. See [`EventHandler::on_write_complete`].
    fn on_write_complete(&mut self, _conn: &mut Conn<'_, Framed<Self>>) {}

    /// The connection's output queue grew past its high-water mark and now
    /// holds `queued` bytes: the peer reads slower than this handler writes.
    /// A typical reaction is `conn.pause_read()`. The default does nothing.
    /// See [`EventHandler::on_high_water`].
    fn on_high_water(&mut self, _conn: &mut Conn<'_, Framed<Self>>, _queued: usize) {}

    /// The peer shut down its write side. The default finishes sending and
    /// closes; an unfinished frame left in the input is dropped.
    fn on_read_closed(&mut self, conn: &mut Conn<'_, Framed<Self>>) {
        conn.close();
    }

    /// The connection is closed (writes now fail); `reason` says why, e.g.
    /// [`CloseReason::Protocol`] after a decode error. Called exactly once
    /// per connection that got [`on_open`](Self::on_open). The default does
    /// nothing.
    fn on_close(&mut self, _conn: &mut Conn<'_, Framed<Self>>, _reason: &CloseReason) {}
}

/// Per-connection state of a [`Framed`] handler: the decoder and the user's
/// context.
pub struct FramedContext<H: FrameHandler> {
    /// This connection's decoder, holding any partial-frame progress.
    /// Replacing it mid-stream loses that progress; call its `reset` if the
    /// input is discarded.
    pub codec: H::Codec,
    /// The handler's own per-connection state (`H::Context::default()` when
    /// the connection opens).
    pub user: H::Context,
    /// Decoding stopped at the high-water mark (and reading paused) until
    /// the output drains.
    held: bool,
}

impl<H: FrameHandler> Default for FramedContext<H> {
    fn default() -> Self {
        FramedContext {
            codec: H::Codec::default(),
            user: H::Context::default(),
            held: false,
        }
    }
}

/// Adapts a [`FrameHandler`] into an [`EventHandler`].
pub struct Framed<H> {
    inner: H,
}

impl<H: FrameHandler> Framed<H> {
    /// Wraps `inner` so it can be given to a server or connector as an
    /// [`EventHandler`]. Like any handler, one instance serves all
    /// connections of one loop.
    pub fn new(inner: H) -> Framed<H> {
        Framed { inner }
    }

    /// The wrapped frame handler, e.g. to read state it shares across the
    /// loop's connections.
    pub fn get_ref(&self) -> &H {
        &self.inner
    }

    /// The wrapped frame handler, mutably.
    pub fn get_mut(&mut self) -> &mut H {
        &mut self.inner
    }
}

impl<H: FrameHandler> EventHandler for Framed<H> {
    type Context = FramedContext<H>;

    fn on_open(&mut self, conn: &mut Conn<'_, Self>) {
        self.inner.on_open(conn);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Self>, input: &mut Buffer) {
        // Frames are decoded at an offset and the input consumed once at the
        // end: one memmove per batch instead of one per frame. The decoder
        // sees the same unconsumed bytes either way.
        let mut consumed = 0;
        while !conn.is_closing() && !conn.is_read_paused() {
            let r = conn.context().codec.decode(&input.as_slice()[consumed..]);
            match r {
                Ok(Some((frame, n))) => {
                    debug_assert!(n > 0, "decoder consumed nothing");
                    consumed += n;
                    self.inner.on_frame(conn, frame);
                    if conn.pending_output() >= conn.high_water() {
                        // Send what the replies so far hold; if the socket
                        // cannot take it all, stop here until it drains.
                        conn.flush();
                        if conn.queued() > 0 {
                            conn.context().held = true;
                            conn.pause_read();
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let msg = e.to_string();
                    self.inner.on_decode_error(conn, e);
                    if !conn.is_closing() {
                        conn.close_with(CloseReason::Protocol(msg));
                    }
                    break;
                }
            }
        }
        if conn.is_closing() {
            // Nothing more will be decoded: the rest is never needed.
            input.clear();
        } else {
            input.consume(consumed);
        }
    }

    fn on_write_complete(&mut self, conn: &mut Conn<'_, Self>) {
        if std::mem::take(&mut conn.context().held) {
            // The frames left in the input come again (see Conn::resume_read).
            conn.resume_read();
        }
        self.inner.on_write_complete(conn);
    }

    fn on_high_water(&mut self, conn: &mut Conn<'_, Self>, queued: usize) {
        self.inner.on_high_water(conn, queued);
    }

    fn on_read_closed(&mut self, conn: &mut Conn<'_, Self>) {
        self.inner.on_read_closed(conn);
    }

    fn on_close(&mut self, conn: &mut Conn<'_, Self>, reason: &CloseReason) {
        self.inner.on_close(conn, reason);
    }
}
