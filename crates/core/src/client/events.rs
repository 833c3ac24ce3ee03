//! The event subscription: a pull-based stream of events that remembers the last
//! event number it delivered, so that it can resubscribe from exactly there
//! (docs/PROTOCOL.md §7.1, §9) — after a reconnect, or after its consumer fell so
//! far behind that the connection stopped queueing events for it. Either way the
//! consumer sees every event once, in order: nothing lost, nothing repeated.
//!
//! How "nothing repeated" holds: every SUBSCRIBE starts a new *epoch*. Events are
//! tagged with the epoch of the subscription they arrived on, and the stream drops
//! any event of an older epoch. Starting an epoch and reading the last delivered
//! number happen under one lock, as does delivering an event and recording its
//! number, so an event is either delivered before the resubscription (and the new
//! subscription starts after it) or dropped (and replayed by the new one).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::connection::{Conn, SinkChange};
use super::{Client, ClientError, Inner};
use crate::protocol::{Event, GapReason, HelloReply, Request, Response, SubscribeFrom, KIND_ALL};

/// What the connection task sends a stream.
pub(crate) enum Item {
    /// An event received on the subscription of `epoch`.
    Event { epoch: u64, event: Event },
    /// The connection ended.
    Lost(ClientError),
    /// A reconnect resubscribed; the replay follows.
    Reconnected {
        hello: HelloReply,
        event_seq: u64,
        resume_after: u64,
    },
    /// The subscription cannot be restored (the new server refused it).
    Fatal(ClientError),
}

/// Where events of one SUBSCRIBE go: the connection task holds it from the answer
/// on.
pub(crate) struct Sink {
    pub(crate) epoch: u64,
    pub(crate) shared: Arc<SubShared>,
    pub(crate) tx: mpsc::UnboundedSender<Item>,
    /// Set on a resubscription after a reconnect: the stream is told so, with the
    /// new connection's HELLO answer, just before the replay.
    pub(crate) reconnected: Option<HelloReply>,
}

/// A subscription as the client knows it, to restore it on a new connection.
pub(crate) struct SubLink {
    pub(crate) shared: Arc<SubShared>,
    pub(crate) tx: mpsc::UnboundedSender<Item>,
}

struct SubState {
    /// The epoch whose events are delivered.
    epoch: u64,
    /// The number a resubscription resumes after.
    last_delivered: u64,
    /// The connection stopped queueing events of the current epoch.
    overflowed: bool,
}

/// State shared by a stream, the connection task and the reconnect supervisor.
pub(crate) struct SubShared {
    pub(crate) kinds: u8,
    /// Events in the channel, counted so the connection can bound them.
    pub(crate) queued: AtomicUsize,
    state: Mutex<SubState>,
}

impl SubShared {
    fn new(kinds: u8) -> SubShared {
        SubShared {
            kinds,
            queued: AtomicUsize::new(0),
            state: Mutex::new(SubState {
                epoch: 0,
                last_delivered: 0,
                overflowed: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, SubState> {
        // Every update is a few field writes that cannot be observed half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a new epoch; returns it and the event number to resume after.
    fn begin(&self) -> (u64, u64) {
        let mut s = self.state();
        s.epoch += 1;
        s.overflowed = false;
        (s.epoch, s.last_delivered)
    }

    /// The SUBSCRIBE of `epoch` was answered: the replay starts after
    /// `resume_after`.
    pub(crate) fn subscribed(&self, epoch: u64, resume_after: u64) {
        let mut s = self.state();
        if s.epoch == epoch {
            s.last_delivered = resume_after;
        }
    }

    /// The connection stopped queueing events of `epoch` for this stream.
    pub(crate) fn overflowed(&self, epoch: u64) {
        let mut s = self.state();
        if s.epoch == epoch {
            s.overflowed = true;
        }
    }

    /// Records `event` as delivered if it belongs to the current epoch; false means
    /// it is stale and must be dropped.
    fn deliver(&self, epoch: u64, event: &Event) -> bool {
        let mut s = self.state();
        if s.epoch != epoch {
            return false;
        }
        match event {
            // What was lost is reported; resuming should not report it again.
            Event::Gap {
                reason: GapReason::HistoryUnavailable,
                next,
                ..
            } => s.last_delivered = s.last_delivered.max(next.saturating_sub(1)),
            // Other gaps say what is missing without moving the position: the block
            // events after `last` are still coming.
            Event::Gap { .. } => {}
            other => s.last_delivered = s.last_delivered.max(other.seq()),
        }
        true
    }

    fn last_delivered(&self) -> u64 {
        self.state().last_delivered
    }

    /// The consumer has drained everything queued before the overflow.
    fn needs_resubscribe(&self) -> bool {
        self.state().overflowed && self.queued.load(Ordering::Acquire) == 0
    }
}

/// What an [`EventStream`] yields besides errors.
#[derive(Clone, Debug)]
pub enum ClientEvent {
    /// An event from the server (§8), in event-number order. CLOSING never comes
    /// through here: it ends the connection and shows up as `Disconnected` or as
    /// the stream's error.
    Event(Event),
    /// The connection dropped (only with `reconnect`); the client is reconnecting
    /// and will resume the subscription where this stream stopped.
    Disconnected(ClientError),
    /// The client reconnected and resubscribed after the last delivered event; the
    /// events missed meanwhile follow. Scripthash activity is not replayed by the
    /// server (§7.3): re-query watched scripthashes after this.
    Reconnected {
        /// The new connection's HELLO answer.
        hello: HelloReply,
        /// The latest event number at the server.
        event_seq: u64,
        /// Events after this number follow (the last one this stream delivered).
        resume_after: u64,
    },
}

/// A subscription's events, pulled one at a time with [`EventStream::next`].
///
/// A client has one subscription at a time (the protocol's SUBSCRIBE replaces the
/// previous one); subscribing again ends the previous stream. Dropping the stream
/// unsubscribes.
pub struct EventStream {
    client: Client,
    shared: Arc<SubShared>,
    rx: mpsc::UnboundedReceiver<Item>,
    done: bool,
}

impl Inner {
    fn is_current(&self, shared: &Arc<SubShared>) -> bool {
        self.sub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(&l.shared, shared))
    }

    fn current_sub_tx(&self, shared: &Arc<SubShared>) -> Option<mpsc::UnboundedSender<Item>> {
        self.sub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|l| Arc::ptr_eq(&l.shared, shared))
            .map(|l| l.tx.clone())
    }

    /// The subscription to restore on a new connection, if any.
    pub(crate) fn current_sub(&self) -> Option<(Arc<SubShared>, mpsc::UnboundedSender<Item>)> {
        self.sub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|l| (l.shared.clone(), l.tx.clone()))
    }
}

/// Subscribes `shared` again on `conn`, after its last delivered event. Serialized
/// with every other SUBSCRIBE of the client, so epochs reach the server in order.
/// Does nothing for a subscription that was replaced meanwhile.
pub(crate) async fn resubscribe(
    inner: &Inner,
    shared: &Arc<SubShared>,
    conn: &Conn,
    reconnected: Option<HelloReply>,
) -> Result<(), ClientError> {
    let _serial = inner.sub_lock.lock().await;
    let Some(tx) = inner.current_sub_tx(shared) else {
        return Ok(());
    };
    let (epoch, after) = shared.begin();
    let req = Request::Subscribe {
        kinds: shared.kinds,
        from: SubscribeFrom::AfterSeq(after),
    };
    let sink = Sink {
        epoch,
        shared: shared.clone(),
        tx,
        reconnected,
    };
    match conn.call(req, SinkChange::Set(sink)).await? {
        Response::Subscribed { .. } => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// Sends `item` to the current subscription's stream (the reconnect supervisor's
/// way to report a subscription it cannot restore).
pub(crate) fn tell(tx: &mpsc::UnboundedSender<Item>, item: Item) {
    let _ = tx.send(item);
}

fn unexpected(resp: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {resp:?}"))
}

impl Client {
    /// Subscribes to the event kinds `kinds` (`KIND_BLOCKS`, `KIND_MEMPOOL`,
    /// `KIND_SCRIPTHASHES`) starting at `from` (§7.1). Events follow on the returned
    /// stream; with `reconnect` they survive connection losses. Replaces (and ends)
    /// a previous stream of this client.
    pub async fn subscribe(
        &self,
        kinds: u8,
        from: SubscribeFrom,
    ) -> Result<EventStream, ClientError> {
        if kinds == 0 || kinds & !KIND_ALL != 0 {
            return Err(ClientError::Invalid(format!(
                "event kinds {kinds:#04x}: at least one of KIND_BLOCKS, KIND_MEMPOOL, KIND_SCRIPTHASHES and nothing else"
            )));
        }
        let inner = &self.inner;
        let _serial = inner.sub_lock.lock().await;
        let shared = Arc::new(SubShared::new(kinds));
        let (tx, rx) = mpsc::unbounded_channel();
        let (epoch, _) = shared.begin();
        let sink = Sink {
            epoch,
            shared: shared.clone(),
            tx: tx.clone(),
            reconnected: None,
        };
        let conn = inner.current();
        match conn
            .call(Request::Subscribe { kinds, from }, SinkChange::Set(sink))
            .await?
        {
            Response::Subscribed { .. } => {}
            other => return Err(unexpected(&other)),
        }
        *inner.sub.lock().unwrap_or_else(|p| p.into_inner()) = Some(SubLink {
            shared: shared.clone(),
            tx,
        });
        Ok(EventStream {
            client: self.clone(),
            shared,
            rx,
            done: false,
        })
    }
}

impl EventStream {
    /// The next event or notice; `None` once the stream has ended (its connection
    /// closed without `reconnect`, a later `subscribe` replaced it, or an error was
    /// returned).
    pub async fn next(&mut self) -> Option<Result<ClientEvent, ClientError>> {
        loop {
            if self.done {
                return None;
            }
            if self.shared.needs_resubscribe() {
                if let Err(e) = self.catch_up().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            let Some(item) = self.rx.recv().await else {
                self.done = true;
                return None;
            };
            match item {
                Item::Event { epoch, event } => {
                    self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                    if self.shared.deliver(epoch, &event) {
                        return Some(Ok(ClientEvent::Event(event)));
                    }
                }
                Item::Lost(error) => {
                    if self.client.inner.options.reconnect {
                        return Some(Ok(ClientEvent::Disconnected(error)));
                    }
                    self.done = true;
                    return Some(Err(error));
                }
                Item::Reconnected {
                    hello,
                    event_seq,
                    resume_after,
                } => {
                    return Some(Ok(ClientEvent::Reconnected {
                        hello,
                        event_seq,
                        resume_after,
                    }))
                }
                Item::Fatal(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }

    /// Resubscribes after the consumer caught up with an overflow. A connection
    /// that drops meanwhile is the reconnect supervisor's to handle.
    async fn catch_up(&mut self) -> Result<(), ClientError> {
        let inner = &self.client.inner;
        if !inner.is_current(&self.shared) {
            self.done = true;
            return Ok(());
        }
        let conn = inner.current();
        match resubscribe(inner, &self.shared, &conn, None).await {
            Err(e) if e.is_disconnect() && inner.options.reconnect => Ok(()),
            other => other,
        }
    }

    /// The number of the last event delivered (or the resume point before any):
    /// what an application persists to resume with `SubscribeFrom::AfterSeq` after
    /// a restart.
    pub fn last_seq(&self) -> u64 {
        self.shared.last_delivered()
    }

    /// The event kinds subscribed to.
    pub fn kinds(&self) -> u8 {
        self.shared.kinds
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let inner = &self.client.inner;
        // A SUBSCRIBE in progress will replace this subscription anyway; never send
        // an UNSUBSCRIBE that could overtake it.
        let Ok(_serial) = inner.sub_lock.try_lock() else {
            return;
        };
        let mut sub = inner.sub.lock().unwrap_or_else(|p| p.into_inner());
        if sub
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(&l.shared, &self.shared))
        {
            *sub = None;
            drop(sub);
            inner
                .current()
                .send_and_forget(Request::Unsubscribe { kinds: KIND_ALL }, SinkChange::Clear);
        }
    }
}
