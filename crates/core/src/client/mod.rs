//! The Rust client of `opnet.sock` (docs/PROTOCOL.md): what `opnet-cli` and
//! Rust applications use to query the index and follow its events.
//!
//! - [`Client`] is a cheap, cloneable handle to one connection. Requests from any
//!   number of tasks are pipelined on it and matched to their answers by sequence
//!   number (`connection`).
//! - [`UtxoStream`] pages through a scripthash's UTXOs with cursors, one page
//!   ahead at most (`stream`).
//! - [`EventStream`] follows events and, with [`ClientOptions::reconnect`],
//!   survives connection losses without losing or repeating an event (`events`,
//!   `reconnect`).
//! - [`script_hash`], [`parse_target`] and friends turn addresses, scripts and
//!   RPC-order hashes into what the wire carries (`target`).
//!
//! Built with the `client` feature only (tokio and the protocol codec): no LevelDB
//! and no chain readers, so the napi addon stays small.

mod connection;
mod error;
mod events;
mod reconnect;
mod requests;
mod stream;
mod target;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::ClientError;
pub use events::{ClientEvent, EventStream};
pub use requests::{BlockTxids, HeaderReply, TxReply, WatchChange};
pub use stream::UtxoStream;
pub use target::{
    address_to_script, display_hash, from_hex, parse_display_hash, parse_target, script_hash,
    to_hex, TargetError,
};

use crate::protocol::{
    HelloReply, DEFAULT_MAX_FRAME, FEATURE_EVENT_REPLAY, FEATURE_MEMPOOL,
    FEATURE_SCRIPTHASH_SUBSCRIPTIONS, FEATURE_TX_INDEX, MAX_CLIENT_NAME_LEN, MIN_MAX_FRAME,
};
use crate::Network;
use connection::Conn;
use events::SubLink;

/// Every feature this client can use (§4.1); the server grants what it offers.
pub const ALL_FEATURES: u64 =
    FEATURE_MEMPOOL | FEATURE_SCRIPTHASH_SUBSCRIPTIONS | FEATURE_EVENT_REPLAY | FEATURE_TX_INDEX;

/// Default of [`ClientOptions::event_buffer`].
pub const DEFAULT_EVENT_BUFFER: usize = 4096;

/// How to connect. `Default` asks for every feature and the largest frames, checks
/// no network and does not reconnect.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Shown in the server's logs (at most 64 bytes).
    pub client_name: String,
    /// Feature bits to ask for (§4.1); what was granted is in [`Client::hello`].
    pub features: u64,
    /// The largest frame this client accepts, 4,096 … 16 MiB; page sizes follow it.
    pub max_frame: u32,
    /// Reconnect when the connection drops (backoff 50 ms doubling to 2 s), restore
    /// watched scripthashes and resume the event subscription after the last event
    /// delivered. Requests in flight at the drop still fail with
    /// [`ClientError::Closed`], as do requests made while reconnecting.
    pub reconnect: bool,
    /// Refuse a server of another network (HELLO's `network`), so an address or a
    /// height is never read against the wrong chain.
    pub network: Option<Network>,
    /// Limit for connecting and HELLO, so a socket that never answers does not hang
    /// the caller.
    pub connect_timeout: Duration,
    /// Events held for an [`EventStream`] consumer before the connection stops
    /// queueing them; once the consumer has caught up the stream resubscribes after
    /// the last event it delivered, so a slow consumer costs bounded memory and
    /// loses nothing (the server replays from its logs).
    pub event_buffer: usize,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            client_name: format!("opnet-rust/{}", env!("CARGO_PKG_VERSION")),
            features: ALL_FEATURES,
            max_frame: DEFAULT_MAX_FRAME,
            reconnect: false,
            network: None,
            connect_timeout: Duration::from_secs(10),
            event_buffer: DEFAULT_EVENT_BUFFER,
        }
    }
}

impl ClientOptions {
    fn check(&self) -> Result<(), ClientError> {
        if self.client_name.len() > MAX_CLIENT_NAME_LEN {
            return Err(ClientError::Invalid(format!(
                "client_name is {} bytes; at most {MAX_CLIENT_NAME_LEN}",
                self.client_name.len()
            )));
        }
        if self.event_buffer == 0 {
            return Err(ClientError::Invalid(
                "event_buffer must be at least 1".into(),
            ));
        }
        if !(MIN_MAX_FRAME..=DEFAULT_MAX_FRAME).contains(&self.max_frame) {
            return Err(ClientError::Invalid(format!(
                "max_frame {} is outside {MIN_MAX_FRAME}..={DEFAULT_MAX_FRAME}",
                self.max_frame
            )));
        }
        Ok(())
    }
}

/// A connection to `opnet.sock`. Cloning is cheap and every clone shares the
/// connection; it is `Send + Sync`, so tasks can issue requests concurrently. The
/// connection closes when the last clone (and the last stream) is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// What every clone of a client shares.
pub(crate) struct Inner {
    path: PathBuf,
    options: ClientOptions,
    /// The first connection's HELLO answer.
    hello: HelloReply,
    /// The connection requests go to (replaced by a reconnect).
    conn: Mutex<Conn>,
    /// Scripthashes to watch again after a reconnect.
    watched: Mutex<BTreeSet<[u8; 32]>>,
    /// The event subscription to restore after a reconnect.
    sub: Mutex<Option<SubLink>>,
    /// Serializes SUBSCRIBEs, so their answers (and epochs) come in the order sent.
    sub_lock: tokio::sync::Mutex<()>,
}

impl Inner {
    /// The connection to send requests on.
    pub(crate) fn current(&self) -> Conn {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Client {
    /// Connects to the socket at `path` and says HELLO. Must be called inside a
    /// tokio runtime (with the time and I/O drivers enabled): the connection's task
    /// is spawned on it.
    pub async fn connect(
        path: impl AsRef<Path>,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        options.check()?;
        let path = path.as_ref().to_path_buf();
        let (conn, task) = connection::open(&path, &options).await?;
        let inner = Arc::new(Inner {
            path,
            hello: conn.hello.clone(),
            options,
            conn: Mutex::new(conn),
            watched: Mutex::new(BTreeSet::new()),
            sub: Mutex::new(None),
            sub_lock: tokio::sync::Mutex::new(()),
        });
        if inner.options.reconnect {
            tokio::spawn(reconnect::supervise(Arc::downgrade(&inner), task));
        }
        Ok(Client { inner })
    }

    /// The server's HELLO answer on the first connection: granted features, limits
    /// (`max_results` is the largest page), network, tip at connect time. A
    /// reconnect's answer comes with [`ClientEvent::Reconnected`].
    pub fn hello(&self) -> &HelloReply {
        &self.inner.hello
    }

    /// The network the server serves.
    pub fn network(&self) -> Option<Network> {
        Network::from_id(self.inner.hello.network)
    }

    /// The socket this client connects to.
    pub fn socket_path(&self) -> &Path {
        &self.inner.path
    }

    /// The options it was created with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_cheap_shareable_handles() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Client>();
        fn sendable<T: Send + 'static>() {}
        sendable::<EventStream>();
        sendable::<UtxoStream>();
    }

    #[test]
    fn options_are_checked_before_connecting() {
        let o = ClientOptions {
            client_name: "x".repeat(65),
            ..ClientOptions::default()
        };
        assert!(matches!(o.check(), Err(ClientError::Invalid(_))));
        let o = ClientOptions {
            max_frame: 100,
            ..ClientOptions::default()
        };
        assert!(matches!(o.check(), Err(ClientError::Invalid(_))));
        assert!(ClientOptions::default().check().is_ok());
        assert_eq!(ClientOptions::default().features, 15);
    }
}
