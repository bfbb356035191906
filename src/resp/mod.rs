//! A Redis-compatible command engine: pure logic, no sockets.
//!
//! Wiring it into a server:
//!
//! ```
//! use evnet::codec::{Decoder, resp::{CommandDecoder, write_protocol_error}};
//! use evnet::resp::{execute, Outcome, Session, Store};
//!
//! let store = Store::new(); // share one per server: Arc<Store>
//! // Per connection:
//! let mut session = Session::new();
//! let mut decoder = CommandDecoder::new();
//! let mut input = b"*1\r\n$4\r\nPING\r\nSET k v\r\nGET k\r\n".to_vec();
//! let mut output = Vec::new();
//! loop {
//!     match decoder.decode(&input) {
//!         Ok(Some((args, n))) => {
//!             input.drain(..n);
//!             if execute(&store, &mut session, &args, &mut output) == Outcome::Close {
//!                 break; // flush output, then close
//!             }
//!         }
//!         Ok(None) => break, // wait for more input
//!         Err(e) => {
//!             write_protocol_error(&mut output, &e); // then flush and close
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(output, b"+PONG\r\n+OK\r\n$1\r\nv\r\n");
//! ```

pub mod cmd;
pub mod compact;
pub mod glob;
pub mod server;
pub mod store;
pub mod zset;

pub use cmd::{
    execute, execute_spliced, retry_blocked, serve_ready, time_out_blocked, Outcome, Session,
    COMMAND_NAMES, SPLICE_AT, SPLICE_TAIL,
};
pub use glob::glob_match;
pub use store::{Entry, Expiry, Kind, Locked, Slot, Store, WrongType};
