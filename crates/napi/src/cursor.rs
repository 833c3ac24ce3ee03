//! `NativeUtxoCursor`: the pages of one query, fetched as JavaScript asks. The
//! stream keeps at most one page in flight ahead of the consumer, so a consumer
//! that stops asking stops the reading of the socket (backpressure up to the
//! server, whose writer then waits on the socket).

use std::sync::Arc;

use napi::Result;
use napi_derive::napi;
use opnet::client::UtxoStream;
use tokio::sync::{watch, Mutex};

use crate::convert::{self, JsUtxoPage};
use crate::error;

/// Pages of a query (wrapped by index.js's `utxos()` and `utxoStream()`).
#[napi]
pub struct NativeUtxoCursor {
    stream: Arc<Mutex<Option<UtxoStream>>>,
    closed: watch::Receiver<bool>,
}

impl NativeUtxoCursor {
    pub(crate) fn new(stream: UtxoStream, closed: watch::Receiver<bool>) -> NativeUtxoCursor {
        NativeUtxoCursor {
            stream: Arc::new(Mutex::new(Some(stream.prefetch(true)))),
            closed,
        }
    }
}

#[napi]
impl NativeUtxoCursor {
    /// The next page, or null after the last (or once the client is closed).
    #[napi]
    pub async fn next(&self) -> Result<Option<JsUtxoPage>> {
        let mut closed = self.closed.clone();
        let mut guard = self.stream.lock().await;
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        if *closed.borrow() {
            guard.take();
            return Ok(None);
        }
        tokio::select! {
            page = stream.next_page() => match page {
                Some(Ok(p)) => Ok(Some(convert::page(&p))),
                Some(Err(e)) => {
                    guard.take();
                    Err(error::client(e))
                }
                None => {
                    guard.take();
                    Ok(None)
                }
            },
            _ = closed.wait_for(|c| *c) => {
                guard.take();
                Ok(None)
            }
        }
    }

    /// Stops early: the query's remaining pages are not fetched.
    #[napi]
    pub async fn close(&self) {
        self.stream.lock().await.take();
    }
}
