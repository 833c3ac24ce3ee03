//! What the UTXO cursor and the event stream share: a stream pulled one item at a
//! time by JavaScript, dropped when it ends, fails, is closed, or when the client
//! is closed (a pending pull then resolves to `null`, so no promise keeps Node
//! alive).

use std::sync::Arc;

use napi::Result;
use opnet::client::ClientError;
use tokio::sync::{watch, Mutex};

use crate::error;

/// A pullable stream and the client's "closed" signal.
pub struct Pull<S> {
    stream: Arc<Mutex<Option<S>>>,
    closed: watch::Receiver<bool>,
}

impl<S> Pull<S> {
    pub fn new(stream: S, closed: watch::Receiver<bool>) -> Pull<S> {
        Pull {
            stream: Arc::new(Mutex::new(Some(stream))),
            closed,
        }
    }

    /// Pulls one item with `next`, turned into JavaScript's value by `convert`;
    /// `Ok(None)` once the stream has ended or the client is closed.
    pub async fn next<T, U>(
        &self,
        next: impl AsyncFnOnce(&mut S) -> Option<std::result::Result<T, ClientError>>,
        convert: impl FnOnce(T) -> U,
    ) -> Result<Option<U>> {
        let mut closed = self.closed.clone();
        let mut guard = self.stream.lock().await;
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        if *closed.borrow() {
            guard.take();
            return Ok(None);
        }
        let item = tokio::select! {
            item = next(stream) => item,
            _ = closed.wait_for(|c| *c) => None,
        };
        match item {
            Some(Ok(v)) => Ok(Some(convert(v))),
            Some(Err(e)) => {
                guard.take();
                Err(error::client(e))
            }
            None => {
                guard.take();
                Ok(None)
            }
        }
    }

    /// Drops the stream (its remaining items are never fetched).
    pub async fn close(&self) {
        self.stream.lock().await.take();
    }
}
