//! The `opnet.sock` server (docs/PROTOCOL.md): a tokio runtime of its own, a Unix
//! socket created 0600, one reader and one writer task per connection.
//!
//! The server never blocks its event loop on the index while a block is being
//! written (queries then move to the blocking pool) and never sleeps to poll:
//! events wake subscribers through a watch channel.

pub mod connection;
pub mod handler;
pub mod hub;
pub mod node;
pub mod query;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::watch;

pub use node::{IndexView, Node, NodeError, DEFAULT_MEMPOOL_LOG_BYTES};

use crate::protocol::{Event, Status, DEFAULT_MAX_FRAME};

/// The server's limits and identity (docs/PROTOCOL.md §5.1 has the defaults).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub socket_path: PathBuf,
    pub max_connections: usize,
    /// Largest frame accepted from clients (and offered in HELLO).
    pub max_frame: u32,
    pub max_results: u32,
    pub max_inflight: usize,
    /// Requests per second per connection; 0 disables the limit.
    pub rate_limit: u32,
    pub max_scripthashes: usize,
    pub server_name: String,
    /// Threads of the server's runtime.
    pub worker_threads: usize,
}

impl ServerConfig {
    /// The defaults, serving at `socket_path`.
    pub fn new(socket_path: &Path) -> ServerConfig {
        ServerConfig {
            socket_path: socket_path.to_path_buf(),
            max_connections: 64,
            max_frame: DEFAULT_MAX_FRAME,
            max_results: 10_000,
            max_inflight: 32,
            rate_limit: 1_000_000,
            max_scripthashes: 100_000,
            server_name: format!("opnet-core/{}", env!("CARGO_PKG_VERSION")),
            worker_threads: 2,
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum ServerError {
    /// Another server answers on the socket path.
    InUse(PathBuf),
    Io(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::InUse(p) => write!(
                f,
                "{} is in use by another running server; stop it or choose another -opnetsocket",
                p.display()
            ),
            ServerError::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// A running server; dropping it without [`ServerHandle::shutdown`] also stops it.
pub struct ServerHandle {
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    path: PathBuf,
    connections: Arc<AtomicUsize>,
}

impl ServerHandle {
    /// Where it listens.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Connections currently open.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Tells every client (CLOSING `SHUTTING_DOWN`), stops, removes the socket file.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            // Give connections a moment to write their CLOSING frame.
            rt.block_on(async {
                let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
                while self.connections.load(Ordering::Relaxed) > 0
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.runtime.is_some() {
            self.stop_now();
        }
    }
}

/// This process's effective uid (the second `Uid:` field of /proc/self/status).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Removes a socket file no server answers on; refuses one that is live.
fn clear_stale_socket(path: &Path) -> Result<(), ServerError> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(ServerError::Io(format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                )));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse(path.to_path_buf()));
            }
            // A dead socket of another user is theirs to clean up, even for root.
            if let Some(me) = effective_uid() {
                if meta.uid() != me {
                    return Err(ServerError::Io(format!(
                        "{} is a socket left by another user (uid {}); refusing to replace it: \
                         remove it or choose another -opnetsocket",
                        path.display(),
                        meta.uid()
                    )));
                }
            }
            tracing::info!(path = %path.display(), "removing a stale socket left by an earlier run");
            std::fs::remove_file(path)
                .map_err(|e| ServerError::Io(format!("removing {}: {e}", path.display())))
        }
    }
}

/// Starts serving `node` at `config.socket_path`.
pub fn start(config: ServerConfig, node: Arc<Node>) -> Result<ServerHandle, ServerError> {
    let path = config.socket_path.clone();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ServerError::Io(format!("creating {}: {e}", dir.display())))?;
    }
    clear_stale_socket(&path)?;
    let std_listener = std::os::unix::net::UnixListener::bind(&path)
        .map_err(|e| ServerError::Io(format!("binding {}: {e}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ServerError::Io(format!("chmod 0600 {}: {e}", path.display())))?;
    // Connections are only accepted from the socket owner's user: a client that
    // connected in the instant before the chmod is still turned away.
    let owner = std::fs::metadata(&path)
        .map_err(|e| ServerError::Io(format!("reading {}: {e}", path.display())))?
        .uid();
    std_listener
        .set_nonblocking(true)
        .map_err(|e| ServerError::Io(format!("socket setup: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads.max(1))
        .thread_name("opnet-server")
        .enable_all()
        .build()
        .map_err(|e| ServerError::Io(format!("starting the server runtime: {e}")))?;
    let listener = {
        let _guard = runtime.enter();
        UnixListener::from_std(std_listener)
            .map_err(|e| ServerError::Io(format!("socket setup: {e}")))?
    };
    let (stop, stop_rx) = watch::channel(false);
    let connections = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(connection::Shared {
        config,
        node,
        shutdown: stop_rx.clone(),
    });
    runtime.spawn(accept_loop(
        listener,
        shared,
        connections.clone(),
        owner,
        stop_rx,
    ));
    tracing::info!(path = %path.display(), "serving opnet.sock");
    Ok(ServerHandle {
        runtime: Some(runtime),
        stop,
        path,
        connections,
    })
}

/// Decrements the connection count when a connection ends, however it ends.
struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(
    listener: UnixListener,
    shared: Arc<connection::Shared>,
    connections: Arc<AtomicUsize>,
    owner: u32,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let mut stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: log, breathe, carry on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == owner => {}
            _ => {
                tracing::warn!("refused a connection from another user");
                continue;
            }
        }
        let max = shared.config.max_connections;
        if connections.fetch_add(1, Ordering::Relaxed) >= max {
            connections.fetch_sub(1, Ordering::Relaxed);
            let bytes = hub::encode_event(&Event::Closing {
                seq: shared.node.hub.last_seq(),
                status: Status::TooManyConnections,
                detail: max as u32,
                message: format!("the server allows {max} connections"),
            });
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
                let _ = stream.shutdown().await;
            });
            continue;
        }
        let slot = ConnectionSlot(connections.clone());
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            connection::serve(stream, shared).await;
        });
    }
}
