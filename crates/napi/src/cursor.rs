//! `NativeUtxoCursor`: the pages of one query, fetched as JavaScript asks. The
//! stream keeps at most one page in flight ahead of the consumer, so a consumer
//! that stops asking stops the reading of the socket (backpressure up to the
//! server, whose writer then waits on the socket).

use napi::Result;
use napi_derive::napi;
use opnet::client::UtxoStream;
use tokio::sync::watch;

use crate::convert::{self, JsUtxoPage};
use crate::pull::Pull;

/// Pages of a query (wrapped by index.js's `utxos()` and `utxoStream()`).
#[napi]
pub struct NativeUtxoCursor {
    pull: Pull<UtxoStream>,
}

impl NativeUtxoCursor {
    pub(crate) fn new(stream: UtxoStream, closed: watch::Receiver<bool>) -> NativeUtxoCursor {
        NativeUtxoCursor {
            pull: Pull::new(stream.prefetch(true), closed),
        }
    }
}

#[napi]
impl NativeUtxoCursor {
    /// The next page, or null after the last (or once the client is closed).
    #[napi]
    pub async fn next(&self) -> Result<Option<JsUtxoPage>> {
        self.pull
            .next(
                async |s: &mut UtxoStream| s.next_page().await,
                |p| convert::page(&p),
            )
            .await
    }

    /// Stops early: the query's remaining pages are not fetched.
    #[napi]
    pub async fn close(&self) {
        self.pull.close().await;
    }
}
