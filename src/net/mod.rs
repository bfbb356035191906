//! Stream servers, clients (connectors) and connections built on the reactor.

mod addr;
pub mod blocking;
mod buffer;
mod conn;
mod connector;
mod handler;
pub mod heartbeat;
pub mod inherit;
pub(crate) mod limit;
mod listener;
pub mod metrics;
pub mod offload;
pub mod process;
pub mod proxy;
mod server;
#[cfg(feature = "tls")]
pub mod tls;
pub mod udp;
pub mod upgrade;

pub use addr::Addr;
pub use buffer::Buffer;
pub use conn::{
    Closed, Conn, ConnConfig, ConnHandle, ConnTimer, Keepalive, SharedBytes, DEFAULT_HIGH_WATER,
    DEFAULT_WRITE_TIMEOUT,
};
pub use connector::{Backoff, Client, ClientService, Connector, RetryHook};
pub use handler::{CloseReason, EventHandler};
pub use limit::{auto_max_connections, MaxConnections};
pub use offload::{PoolFull, WorkerPool};
pub use server::{
    listen, listen_with, prepare_unix_path, somaxconn, AcceptMode, Balance, ListenOptions, Server,
    ServerBuilder, DEFAULT_UNIX_MODE,
};
