//! `NativeEventStream`: the subscription's events, one `next()` at a time. The
//! client library buffers a bounded number of events and resubscribes after the
//! last one delivered when the consumer falls behind, so a slow JavaScript
//! listener costs bounded memory and loses nothing.

use napi::Result;
use napi_derive::napi;
use opnet::client::{ClientEvent, EventStream};
use tokio::sync::watch;

use crate::convert::{self, JsEvent};
use crate::error;
use crate::pull::Pull;

/// The subscription (wrapped by index.js, which emits its events).
#[napi]
pub struct NativeEventStream {
    pull: Pull<EventStream>,
}

impl NativeEventStream {
    pub(crate) fn new(stream: EventStream, closed: watch::Receiver<bool>) -> NativeEventStream {
        NativeEventStream {
            pull: Pull::new(stream, closed),
        }
    }
}

/// A client event as JavaScript sees it.
fn js_event(e: ClientEvent) -> JsEvent {
    match e {
        ClientEvent::Event(e) => convert::event(&e),
        ClientEvent::Disconnected(e) => JsEvent {
            kind: "disconnected".into(),
            message: Some(error::client(e).reason),
            ..JsEvent::default()
        },
        ClientEvent::Reconnected {
            event_seq,
            resume_after,
            ..
        } => JsEvent {
            kind: "reconnected".into(),
            event_seq: Some(event_seq.into()),
            resume_after: Some(resume_after.into()),
            ..JsEvent::default()
        },
    }
}

#[napi]
impl NativeEventStream {
    /// The next event; null once the stream or the client is closed.
    #[napi]
    pub async fn next(&self) -> Result<Option<JsEvent>> {
        self.pull
            .next(async |s: &mut EventStream| s.next().await, js_event)
            .await
    }

    /// Ends the subscription.
    #[napi]
    pub async fn close(&self) {
        self.pull.close().await;
    }
}
