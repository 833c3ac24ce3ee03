//! `NativeEventStream`: the subscription's events, one `next()` at a time. The
//! client library buffers a bounded number of events and resubscribes after the
//! last one delivered when the consumer falls behind, so a slow JavaScript
//! listener costs bounded memory and loses nothing.

use std::sync::Arc;

use napi::Result;
use napi_derive::napi;
use opnet::client::{ClientEvent, EventStream};
use tokio::sync::{watch, Mutex};

use crate::convert::{self, JsEvent};
use crate::error;

/// The subscription (wrapped by index.js, which emits its events).
#[napi]
pub struct NativeEventStream {
    stream: Arc<Mutex<Option<EventStream>>>,
    closed: watch::Receiver<bool>,
}

impl NativeEventStream {
    pub(crate) fn new(stream: EventStream, closed: watch::Receiver<bool>) -> NativeEventStream {
        NativeEventStream {
            stream: Arc::new(Mutex::new(Some(stream))),
            closed,
        }
    }
}

#[napi]
impl NativeEventStream {
    /// The next event; null once the stream or the client is closed.
    #[napi]
    pub async fn next(&self) -> Result<Option<JsEvent>> {
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
            item = stream.next() => match item {
                Some(Ok(ClientEvent::Event(e))) => Ok(Some(convert::event(&e))),
                Some(Ok(ClientEvent::Disconnected(e))) => Ok(Some(JsEvent {
                    kind: "disconnected".into(),
                    message: Some(error::client(e).reason),
                    ..JsEvent::default()
                })),
                Some(Ok(ClientEvent::Reconnected { event_seq, resume_after, .. })) => Ok(Some(JsEvent {
                    kind: "reconnected".into(),
                    event_seq: Some(event_seq.into()),
                    resume_after: Some(resume_after.into()),
                    ..JsEvent::default()
                })),
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

    /// Ends the subscription.
    #[napi]
    pub async fn close(&self) {
        self.stream.lock().await.take();
    }
}
