//! A server for a protocol of your own, built on the codec module: a tiny
//! key-value store whose requests and replies are length-prefixed frames.
//!
//! On the wire every frame is a 2-byte big-endian length and that many bytes
//! ([`LengthFieldCodec`]). A request is `S key=value` (store) or `G key`
//! (fetch), without the spaces; a reply is `+` and the value, or `-` and an
//! error. The handler is a [`FrameHandler`] behind the [`Framed`] adapter, so
//! it sees whole requests however the bytes arrive, and a batch of pipelined
//! requests is answered in one send.
//!
//! ```sh
//! cargo run --example length_prefixed
//! ```
//! It serves on 127.0.0.1 (a port the kernel picks), sends a few requests
//! with a blocking client using the same codec, prints the replies and exits.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use evnet::codec::framed::{FrameHandler, Framed};
use evnet::codec::length_field::LengthFieldCodec;
use evnet::codec::{DecodeResult, Decoder, Encoder};
use evnet::net::{CloseReason, Conn, ServerBuilder};

/// The protocol's framing. `Framed` makes one decoder per connection with
/// `Default`, so the configured codec gets a type of its own.
struct KvCodec(LengthFieldCodec);

impl Default for KvCodec {
    fn default() -> Self {
        // A 2-byte length: frames (header included) up to 2 + 65,535 bytes.
        KvCodec(LengthFieldCodec::new(2, 2 + usize::from(u16::MAX)))
    }
}

impl Decoder for KvCodec {
    type Item = Vec<u8>;
    fn decode(&mut self, src: &[u8]) -> DecodeResult<Vec<u8>> {
        self.0.decode(src)
    }
}

/// One store per loop: `loops(0)` below serves every connection on one
/// loop, so every client sees the same keys, without a lock.
#[derive(Default)]
struct Kv {
    store: HashMap<Vec<u8>, Vec<u8>>,
    /// Encodes replies (the decoders live in each connection's context).
    encoder: KvCodec,
}

impl Kv {
    fn answer(&mut self, request: &[u8]) -> Vec<u8> {
        match request.split_first() {
            Some((b'S', pair)) => match pair.iter().position(|&b| b == b'=') {
                Some(eq) => {
                    self.store
                        .insert(pair[..eq].to_vec(), pair[eq + 1..].to_vec());
                    b"+".to_vec()
                }
                None => b"-expected key=value".to_vec(),
            },
            Some((b'G', key)) => match self.store.get(key) {
                Some(value) => [b"+", value.as_slice()].concat(),
                None => b"-no such key".to_vec(),
            },
            _ => b"-unknown command".to_vec(),
        }
    }
}

impl FrameHandler for Kv {
    type Codec = KvCodec;
    type Context = ();

    fn on_frame(&mut self, conn: &mut Conn<'_, Framed<Self>>, request: Vec<u8>) {
        let reply = self.answer(&request);
        let encoder = &mut self.encoder.0;
        // Encode straight into the connection's output. `encode` fails only
        // for a reply longer than a frame can carry (appending nothing):
        // close with the reason rather than leave the client waiting.
        if let Ok(Err(e)) = conn.write_with(|out| encoder.encode(reply.as_slice(), out)) {
            conn.close_with(CloseReason::Protocol(e.to_string()));
        }
    }
    // A malformed or oversized frame closes the connection (the default
    // `on_decode_error`); other connections are not affected.
}

/// A blocking client: send one request frame, read until a whole reply
/// frame has arrived. `pending` keeps bytes of the next reply.
fn request(
    stream: &mut TcpStream,
    codec: &mut KvCodec,
    pending: &mut Vec<u8>,
    req: &[u8],
) -> io::Result<Vec<u8>> {
    let mut frame = Vec::new();
    codec.0.encode(req, &mut frame).map_err(io::Error::other)?;
    stream.write_all(&frame)?;
    loop {
        if let Some((reply, n)) = codec.decode(pending).map_err(io::Error::other)? {
            pending.drain(..n);
            return Ok(reply);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

fn main() -> io::Result<()> {
    let server = ServerBuilder::new()
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .loops(0)
        .start(|_| Framed::new(Kv::default()))?;
    let addr = server.local_addr().expect("a TCP address");
    println!("serving on {addr}");

    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (mut codec, mut pending) = (KvCodec::default(), Vec::new());
    for (req, want) in [
        (&b"Sgreeting=hello"[..], &b"+"[..]),
        (b"Ggreeting", b"+hello"),
        (b"Gmissing", b"-no such key"),
        (b"X", b"-unknown command"),
    ] {
        let reply = request(&mut stream, &mut codec, &mut pending, req)?;
        println!(
            "{} -> {}",
            String::from_utf8_lossy(req),
            String::from_utf8_lossy(&reply)
        );
        assert_eq!(reply, want);
    }
    server.shutdown()
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example (it checks the replies it prints).
    #[test]
    fn runs() {
        super::main().unwrap();
    }
}
