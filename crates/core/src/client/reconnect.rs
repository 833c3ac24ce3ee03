//! Reconnecting (with [`ClientOptions::reconnect`](super::ClientOptions::reconnect)):
//! when the connection ends, connect again with backoff, say HELLO, watch the
//! scripthashes again and resume the event subscription after the last event it
//! delivered (docs/PROTOCOL.md §9, step 5).
//!
//! Requests that were in flight fail with the connection (they may or may not have
//! been executed, so retrying them is the caller's decision); the supervisor only
//! restores state the client owns.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::connection::{self, Conn, SinkChange};
use super::events::{self, Item};
use super::requests::request_chunks;
use super::{ClientError, Inner};
use crate::protocol::{Request, Response};

/// Wait before the first attempt after a drop.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A connection that lasted this long resets the backoff; one that drops sooner
/// keeps it growing, so a server that accepts and then drops every connection is
/// not hammered.
const STABLE: Duration = Duration::from_secs(10);

/// Watches the connection whose task is `task` and replaces it whenever it ends,
/// until every handle of the client is gone.
pub(crate) async fn supervise(client: Weak<Inner>, mut task: JoinHandle<()>) {
    let mut delay = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let _ = (&mut task).await;
        if started.elapsed() >= STABLE {
            delay = FIRST_BACKOFF;
        }
        task = loop {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
            let Some(inner) = client.upgrade() else {
                return;
            };
            match restore(&inner).await {
                Ok(task) => break task,
                Err(e) => tracing::debug!(error = %e, "reconnecting to opnet.sock failed"),
            }
        };
    }
}

/// One attempt: a new connection with the client's state restored. A refusal
/// that retrying cannot fix (the new server rejects the subscription) is reported
/// to the event stream and the connection kept for requests.
async fn restore(inner: &Arc<Inner>) -> Result<JoinHandle<()>, ClientError> {
    let (conn, task) = connection::open(&inner.path, &inner.options).await?;
    let fatal = match rewatch(inner, &conn).await {
        Ok(()) => None,
        Err(e) if e.is_disconnect() => return Err(e),
        Err(e) => Some(e),
    };
    *inner.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn.clone();
    tracing::info!(path = %inner.path.display(), "reconnected to opnet.sock");
    if let Some((shared, tx)) = inner.current_sub() {
        if let Some(e) = fatal {
            events::tell(&tx, Item::Fatal(e));
        } else {
            match events::resubscribe(inner, &shared, &conn, Some(conn.hello.clone())).await {
                Ok(()) => {}
                Err(e) if e.is_disconnect() => return Err(e),
                Err(e) => events::tell(&tx, Item::Fatal(e)),
            }
        }
    }
    Ok(task)
}

/// Watches the client's scripthashes on `conn`.
async fn rewatch(inner: &Inner, conn: &Conn) -> Result<(), ClientError> {
    let watched: Vec<[u8; 32]> = inner
        .watched
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect();
    if watched.is_empty() {
        return Ok(());
    }
    for chunk in request_chunks(&watched) {
        match conn
            .call(
                Request::SubscribeScripthashes(chunk.to_vec()),
                SinkChange::Keep,
            )
            .await?
        {
            Response::ScripthashesSubscribed { .. } => {}
            other => {
                return Err(ClientError::Protocol(format!(
                    "SUBSCRIBE_SCRIPTHASHES answered with {other:?}"
                )))
            }
        }
    }
    Ok(())
}
