//! Feeds arbitrary bytes through the RESP command decoder the way a
//! connection does: bytes arrive in two reads split at a fuzz-chosen point,
//! commands are decoded until `Ok(None)`, consumed bytes are drained and the
//! unconsumed tail is kept for the next read. Checks that nothing panics,
//! that no step consumes more than it was given, that memory stays bounded
//! by the input (no allocation of a claimed size), and that the split does
//! not change the outcome. Every decoded command is then executed against a
//! `Store` (with a manual clock, so runs are deterministic): no command and
//! no argument list may panic.
//!
//! Shared, not copied: the `resp_command` fuzz target and the main crate's
//! `tests/fuzz_replay.rs` both include this file with `#[path]`, so it uses
//! only evnet's public API and the standard library (no `libfuzzer_sys`).

use evnet::codec::resp::CommandDecoder;
use evnet::codec::{CodecError, Decoder};
use evnet::resp::{execute, Outcome, Session, Store};

/// Non-empty commands decoded, the error that stopped the stream (if any),
/// and the bytes left over.
type Decoded = (Vec<Vec<Vec<u8>>>, Option<CodecError>, Vec<u8>);

fn run(reads: &[&[u8]], mut dec: CommandDecoder, total: usize) -> Decoded {
    let mut buf: Vec<u8> = Vec::new();
    let mut cmds = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match dec.decode(&buf) {
                Ok(Some((args, n))) => {
                    assert!(n > 0, "decoder consumed nothing");
                    assert!(n <= buf.len(), "decoder consumed more than given");
                    // Arguments are copies of (or shorter than) input bytes.
                    let bytes: usize = args.iter().map(Vec::len).sum();
                    assert!(bytes <= n, "arguments longer than their encoding");
                    assert!(args.capacity() <= 1024.max(args.len()) * 2);
                    buf.drain(..n);
                    if !args.is_empty() {
                        cmds.push(args);
                    }
                }
                Ok(None) => break,
                Err(e) => return (cmds, Some(e), Vec::new()),
            }
        }
    }
    assert!(buf.len() <= total);
    (cmds, None, buf)
}

fn decoder(small: bool) -> CommandDecoder {
    if small {
        // Small limits so that every limit is reachable by the fuzzer.
        CommandDecoder::new()
            .with_max_bulk_len(512)
            .with_max_inline_len(128)
            .with_max_multibulk_len(16)
    } else {
        CommandDecoder::new()
    }
}

/// One fuzz input: byte 0 is flags (bit 0: small decoder limits; bits 1-7:
/// ms to advance the store clock after each command), byte 1 picks the
/// split point, the rest is the byte stream. Panics if a check fails.
pub fn check(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let small = flags & 1 == 1;
    let at = usize::from(split) * data.len() / 255;
    let whole = run(&[data], decoder(small), data.len());
    let parts = run(&[&data[..at], &data[at..]], decoder(small), data.len());
    assert_eq!(whole, parts, "outcome depends on where the input was split");

    let store = Store::with_manual_clock(1_700_000_000_000);
    let mut session = Session::with_id(1);
    let mut out = Vec::new();
    for args in &whole.0 {
        out.clear();
        let r = execute(&store, &mut session, args, &mut out);
        assert!(!out.is_empty(), "command sent no reply: {args:?}");
        if r == Outcome::Close {
            break;
        }
        // Let expiries fire now and then.
        store.advance_clock(u64::from(flags >> 1));
    }
}
