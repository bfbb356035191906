//! Stream servers and connections built on the reactor.

mod addr;
pub mod blocking;
mod buffer;
mod conn;
mod handler;
pub mod heartbeat;
pub mod offload;
mod server;

pub use addr::Addr;
pub use buffer::Buffer;
pub use conn::{Closed, Conn, ConnConfig, ConnHandle, Keepalive};
pub use handler::{CloseReason, EventHandler};
pub use offload::{PoolFull, WorkerPool};
pub use server::{listen, somaxconn, AcceptMode, Balance, Server, ServerBuilder};
