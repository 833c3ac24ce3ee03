//! One client connection: a reader that decodes, rate-limits and executes requests,
//! and a writer that owns the socket's write half and the subscription position,
//! and interleaves responses with events (docs/PROTOCOL.md §5.2).
//!
//! At most `max_inflight` requests are executing or waiting to be written; the
//! reader stops reading the socket until one completes, so a client that never
//! reads only ever stops itself. Events are read from the hub at the writer's own
//! position only when the socket has taken what came before.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::handler::{self, error, Negotiated};
use super::hub::{Delivery, Position};
use super::node::Node;
use super::ServerConfig;
use crate::protocol::{
    self, kind, ErrorReply, Event, Frame, FrameDecoder, FrameError, Request, Response, Status,
    SubscribeFrom, ACTIVITY_ENTRY_LEN, DEFAULT_MAX_FRAME, FEATURE_EVENT_REPLAY, FEATURE_MEMPOOL,
    FEATURE_SCRIPTHASH_SUBSCRIPTIONS, KIND_MEMPOOL, KIND_SCRIPTHASHES,
    MAX_SCRIPTHASHES_PER_REQUEST,
};

/// Events read from the hub per writer round.
const EVENTS_PER_ROUND: usize = 256;
/// The writer stops adding events to a write once it holds this much.
const WRITE_BATCH_BYTES: usize = 256 << 10;

/// What the whole server shares with each connection.
pub struct Shared {
    pub config: ServerConfig,
    pub node: Arc<Node>,
    pub shutdown: watch::Receiver<bool>,
}

/// A message from the reader (or a request task) to the writer.
enum Outgoing {
    Frame(Bytes, Option<OwnedSemaphorePermit>),
    /// HELLO's answer: later frames are sized to the client's maximum.
    Negotiated(Bytes, OwnedSemaphorePermit, u32),
    /// SUBSCRIBE's answer: events start after this frame is written.
    Subscribed(Bytes, OwnedSemaphorePermit, u8, Position),
    Unsubscribed(Bytes, OwnedSemaphorePermit, u8),
    /// A last frame, then the connection closes.
    Close(Bytes),
}

type Watched = Arc<RwLock<HashSet<[u8; 32]>>>;

/// Encodes a frame; a body too large for the client's maximum becomes an error.
fn encode_response(seq: u32, req_kind: u8, resp: &Response, max_frame: u32) -> Bytes {
    let frame = protocol::response_frame(seq, resp);
    let mut out = BytesMut::with_capacity(frame.body.len() + protocol::frame::HEADER_LEN);
    match protocol::encode(&frame, max_frame, &mut out) {
        Ok(()) => out.freeze(),
        Err(_) => {
            let resp = Response::Error {
                request_kind: req_kind,
                error: error(
                    Status::LimitExceeded,
                    max_frame,
                    format!(
                        "the response ({} bytes) exceeds the negotiated frame size",
                        frame.body.len()
                    ),
                ),
            };
            let frame = protocol::response_frame(seq, &resp);
            let mut out = BytesMut::new();
            let _ = protocol::encode(&frame, DEFAULT_MAX_FRAME, &mut out);
            out.freeze()
        }
    }
}

fn encode_event(event: &Event) -> Bytes {
    super::hub::encode_event(event)
}

fn closing(status: Status, detail: u32, message: &str, seq: u64) -> Bytes {
    encode_event(&Event::Closing {
        seq,
        status,
        detail,
        message: message.to_string(),
    })
}

/// Token bucket: `rate` per second, a burst of one second's worth.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        Bucket {
            rate: rate as f64,
            tokens: rate as f64,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how many milliseconds until one is there.
    fn take(&mut self) -> Result<(), u32> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / self.rate) * 1000.0).ceil() as u32)
        }
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let watched: Watched = Arc::new(RwLock::new(HashSet::new()));
    let writer = tokio::spawn(write_loop(wr, rx, shared.clone(), watched.clone()));
    let mut reader = Reader {
        inflight: Arc::new(Semaphore::new(shared.config.max_inflight.max(1))),
        bucket: Bucket::new(shared.config.rate_limit),
        negotiated: None,
        tx,
        watched,
        shared,
    };
    reader.run(&mut rd).await;
    drop(reader);
    let _ = writer.await;
}

struct Reader {
    shared: Arc<Shared>,
    inflight: Arc<Semaphore>,
    bucket: Bucket,
    negotiated: Option<Negotiated>,
    tx: mpsc::UnboundedSender<Outgoing>,
    watched: Watched,
}

impl Reader {
    async fn run(&mut self, rd: &mut tokio::net::unix::OwnedReadHalf) {
        let mut buf = BytesMut::with_capacity(16 << 10);
        let mut decoder = FrameDecoder::new(self.shared.config.max_frame);
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        if !self.dispatch(frame).await {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let (status, detail) = match e {
                            FrameError::TooLarge { max, .. } => (Status::FrameTooLarge, max),
                            FrameError::TooShort { .. } => (Status::Malformed, 0),
                        };
                        tracing::debug!(error = %e, "closing a connection after a bad frame");
                        let seq = self.shared.node.hub.last_seq();
                        let _ = self.tx.send(Outgoing::Close(closing(
                            status,
                            detail,
                            &e.to_string(),
                            seq,
                        )));
                        return;
                    }
                }
            }
            if *shutdown.borrow() {
                self.close_for_shutdown();
                return;
            }
            tokio::select! {
                r = rd.read_buf(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                _ = shutdown.changed() => {
                    self.close_for_shutdown();
                    return;
                }
            }
        }
    }

    fn close_for_shutdown(&self) {
        let seq = self.shared.node.hub.last_seq();
        let _ = self.tx.send(Outgoing::Close(closing(
            Status::ShuttingDown,
            0,
            "the server is stopping",
            seq,
        )));
    }

    fn max_frame(&self) -> u32 {
        self.negotiated.map_or(DEFAULT_MAX_FRAME, |n| n.max_frame)
    }

    fn send(&self, seq: u32, req_kind: u8, resp: Response, permit: Option<OwnedSemaphorePermit>) {
        let bytes = encode_response(seq, req_kind, &resp, self.max_frame());
        let _ = self.tx.send(Outgoing::Frame(bytes, permit));
    }

    fn send_error(
        &self,
        seq: u32,
        req_kind: u8,
        e: ErrorReply,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        self.send(
            seq,
            req_kind,
            Response::Error {
                request_kind: req_kind,
                error: e,
            },
            permit,
        );
    }

    fn needs(&self, feature: u64, name: &str) -> Result<(), ErrorReply> {
        match self.negotiated {
            Some(n) if n.features & feature != 0 => Ok(()),
            _ => Err(error(
                Status::FeatureNotNegotiated,
                feature as u32,
                format!("this request needs the {name} feature"),
            )),
        }
    }

    /// Handles one frame; false ends the connection.
    async fn dispatch(&mut self, frame: Frame) -> bool {
        let (k, seq) = (frame.kind, frame.seq);
        if !(0x01..=0x5F).contains(&k) {
            self.send_error(
                seq,
                k,
                error(
                    Status::UnknownType,
                    k as u32,
                    format!("{k:#04x} is not a request type"),
                ),
                None,
            );
            return true;
        }
        if (self.negotiated.is_none()) != (k == kind::HELLO) {
            let why = if k == kind::HELLO {
                "HELLO was already sent on this connection"
            } else {
                "the first request on a connection must be HELLO"
            };
            self.send_error(seq, k, error(Status::HelloRequired, 0, why), None);
            return true;
        }
        if let Err(wait_ms) = self.bucket.take() {
            self.send_error(
                seq,
                k,
                error(
                    Status::RateLimited,
                    wait_ms,
                    format!(
                        "more than {} requests per second; retry in {wait_ms} ms",
                        self.shared.config.rate_limit
                    ),
                ),
                None,
            );
            return true;
        }
        let Ok(permit) = self.inflight.clone().acquire_owned().await else {
            return false;
        };
        let request = match Request::decode(k, &frame.body) {
            Ok(r) => r,
            Err(e) => {
                self.send_error(
                    seq,
                    k,
                    error(e.status(), e.detail(), e.to_string()),
                    Some(permit),
                );
                return true;
            }
        };
        let node = &self.shared.node;
        match request {
            Request::Hello(h) => match handler::hello(&self.shared.config, node, &h) {
                Ok((reply, n)) => {
                    self.negotiated = Some(n);
                    let bytes = encode_response(seq, k, &Response::Hello(reply), n.max_frame);
                    let _ = self
                        .tx
                        .send(Outgoing::Negotiated(bytes, permit, n.max_frame));
                }
                Err(e) => {
                    self.send_error(seq, k, e, Some(permit));
                    return false;
                }
            },
            Request::Ping(body) => self.send(seq, k, Response::Pong(body), Some(permit)),
            Request::Subscribe { kinds, from } => {
                let checks = [
                    (kinds & KIND_MEMPOOL != 0, FEATURE_MEMPOOL, "MEMPOOL"),
                    (
                        kinds & KIND_SCRIPTHASHES != 0,
                        FEATURE_SCRIPTHASH_SUBSCRIPTIONS,
                        "SCRIPTHASH_SUBSCRIPTIONS",
                    ),
                    (
                        !matches!(from, SubscribeFrom::Now),
                        FEATURE_EVENT_REPLAY,
                        "EVENT_REPLAY",
                    ),
                ];
                for (asked, feature, name) in checks {
                    if asked {
                        if let Err(e) = self.needs(feature, name) {
                            self.send_error(seq, k, e, Some(permit));
                            return true;
                        }
                    }
                }
                match node.hub.resume_point(&from) {
                    None => self.send_error(
                        seq,
                        k,
                        error(Status::Malformed, 0, "event number above the latest event"),
                        Some(permit),
                    ),
                    Some(pos) => {
                        let resp = Response::Subscribed {
                            event_seq: node.hub.last_seq(),
                            resume_after: pos.after,
                        };
                        let bytes = encode_response(seq, k, &resp, self.max_frame());
                        let _ = self
                            .tx
                            .send(Outgoing::Subscribed(bytes, permit, kinds, pos));
                    }
                }
            }
            Request::Unsubscribe { kinds } => {
                let bytes = encode_response(seq, k, &Response::Unsubscribed, self.max_frame());
                let _ = self.tx.send(Outgoing::Unsubscribed(bytes, permit, kinds));
            }
            Request::SubscribeScripthashes(list) | Request::UnsubscribeScripthashes(list) => {
                let adding = k == kind::SUBSCRIBE_SCRIPTHASHES;
                let result = self
                    .needs(FEATURE_SCRIPTHASH_SUBSCRIPTIONS, "SCRIPTHASH_SUBSCRIPTIONS")
                    .and_then(|_| self.change_watched(adding, &list));
                match result {
                    Ok(resp) => self.send(seq, k, resp, Some(permit)),
                    Err(e) => self.send_error(seq, k, e, Some(permit)),
                }
            }
            other => self.execute(seq, k, other, permit),
        }
        true
    }

    fn change_watched(&self, adding: bool, list: &[[u8; 32]]) -> Result<Response, ErrorReply> {
        if list.len() > MAX_SCRIPTHASHES_PER_REQUEST as usize {
            return Err(error(
                Status::LimitExceeded,
                MAX_SCRIPTHASHES_PER_REQUEST,
                format!(
                    "{} scripthashes in one request; at most {MAX_SCRIPTHASHES_PER_REQUEST}",
                    list.len()
                ),
            ));
        }
        let mut w = self.watched.write().unwrap_or_else(|p| p.into_inner());
        let changed = if adding {
            let new: HashSet<&[u8; 32]> = list.iter().filter(|s| !w.contains(*s)).collect();
            let max = self.shared.config.max_scripthashes;
            if w.len() + new.len() > max {
                return Err(error(
                    Status::LimitExceeded,
                    max as u32,
                    format!("a connection may watch at most {max} scripthashes"),
                ));
            }
            let n = new.len();
            for s in new {
                w.insert(*s);
            }
            n
        } else {
            list.iter().filter(|s| w.remove(*s)).count()
        };
        let (changed, total) = (changed as u32, w.len() as u32);
        Ok(if adding {
            Response::ScripthashesSubscribed { changed, total }
        } else {
            Response::ScripthashesUnsubscribed { changed, total }
        })
    }

    /// Requests that read the index or the chain source. Index queries run inline
    /// when no write holds the index or waits for it, and none can start before
    /// they finish (`IndexStore::read_now`; no thread hop: the common case);
    /// otherwise, and for anything that reads the chain source, on the blocking pool.
    fn execute(&self, seq: u32, k: u8, request: Request, permit: OwnedSemaphorePermit) {
        let Some(n) = self.negotiated else { return };
        let node = self.shared.node.clone();
        let handle = move || handler::read_request(&node, &n, &request);
        // A panic in a handler (a bug) answers this request INTERNAL, inline or
        // on the blocking pool alike; the connection and the server carry on.
        let run = move || {
            catch_unwind(AssertUnwindSafe(&handle)).unwrap_or_else(|panic| {
                let msg = crate::sync::live::panic_message(panic.as_ref());
                tracing::error!(panic = %msg, "a request handler panicked; answered INTERNAL");
                Err(error(Status::Internal, 0, "the request handler panicked"))
            })
        };
        let finish = move |result: Result<Response, ErrorReply>| {
            let resp = result.unwrap_or_else(|e| Response::Error {
                request_kind: k,
                error: e,
            });
            Outgoing::Frame(encode_response(seq, k, &resp, n.max_frame), Some(permit))
        };
        let store = matches!(k, kind::QUERY_UTXOS | kind::QUERY_UTXOS_PAGINATED)
            .then(|| self.shared.node.index())
            .flatten()
            .map(|v| v.store);
        // Inline only if no write can take the index before the query is done.
        if let Some(result) = store.and_then(|store| store.read_now(&run)) {
            let _ = self.tx.send(finish(result));
        } else {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let result = tokio::task::spawn_blocking(run).await.unwrap_or_else(|_| {
                    Err(error(Status::Internal, 0, "the request handler panicked"))
                });
                let _ = tx.send(finish(result));
            });
        }
    }
}

/// Encodes the part of `activity` this connection watches, split to fit frames.
fn encode_activity(
    out: &mut BytesMut,
    seq: u64,
    activity: &super::hub::Activity,
    watched: &Watched,
    max_frame: u32,
) {
    let entries: Vec<protocol::ActivityEntry> = {
        let w = watched.read().unwrap_or_else(|p| p.into_inner());
        if w.is_empty() {
            return;
        }
        activity
            .entries
            .iter()
            .filter(|e| w.contains(&e.scripthash))
            .cloned()
            .collect()
    };
    if entries.is_empty() {
        return;
    }
    let per_part = ((max_frame as usize).saturating_sub(256) / ACTIVITY_ENTRY_LEN).max(1);
    let parts = entries.len().div_ceil(per_part);
    for (i, chunk) in entries.chunks(per_part).enumerate() {
        let event = Event::ScripthashActivity {
            seq,
            cause: activity.cause,
            block: activity.block,
            txid: activity.txid,
            final_part: i + 1 == parts,
            entries: chunk.to_vec(),
        };
        out.extend_from_slice(&encode_event(&event));
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
    watched: Watched,
) {
    let hub = &shared.node.hub;
    let mut events = hub.watch();
    let mut sub: Option<(u8, Position)> = None;
    let mut max_frame = DEFAULT_MAX_FRAME;
    let mut out = BytesMut::with_capacity(64 << 10);
    let mut permits: Vec<OwnedSemaphorePermit> = Vec::new();
    let mut closing = false;
    let take = |msg: Outgoing,
                out: &mut BytesMut,
                permits: &mut Vec<OwnedSemaphorePermit>,
                sub: &mut Option<(u8, Position)>,
                max_frame: &mut u32|
     -> bool {
        match msg {
            Outgoing::Frame(b, p) => {
                out.extend_from_slice(&b);
                permits.extend(p);
            }
            Outgoing::Negotiated(b, p, m) => {
                out.extend_from_slice(&b);
                permits.push(p);
                *max_frame = m;
            }
            Outgoing::Subscribed(b, p, kinds, pos) => {
                out.extend_from_slice(&b);
                permits.push(p);
                *sub = Some((kinds, pos));
            }
            Outgoing::Unsubscribed(b, p, kinds) => {
                out.extend_from_slice(&b);
                permits.push(p);
                if let Some((k, _)) = sub.as_mut() {
                    *k &= !kinds;
                    if *k == 0 {
                        *sub = None;
                    }
                }
            }
            Outgoing::Close(b) => {
                out.extend_from_slice(&b);
                return true;
            }
        }
        false
    };
    loop {
        while !closing {
            match rx.try_recv() {
                Ok(msg) => closing = take(msg, &mut out, &mut permits, &mut sub, &mut max_frame),
                Err(_) => break,
            }
        }
        if !closing && out.len() < WRITE_BATCH_BYTES {
            if let Some((kinds, pos)) = sub.as_mut() {
                events.borrow_and_update();
                for d in hub.read(pos, *kinds, EVENTS_PER_ROUND) {
                    match d {
                        Delivery::Event(e) => out.extend_from_slice(&e.frame),
                        Delivery::Activity { seq, activity } => {
                            encode_activity(&mut out, seq, &activity, &watched, max_frame)
                        }
                        Delivery::Gap { last, next, reason } => {
                            out.extend_from_slice(&encode_event(&Event::Gap {
                                seq: hub.last_seq(),
                                last,
                                next,
                                reason,
                            }))
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            if closing {
                break;
            }
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(m) => closing = take(m, &mut out, &mut permits, &mut sub, &mut max_frame),
                },
                changed = events.changed(), if sub.is_some() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
            continue;
        }
        if wr.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
        permits.clear();
        if closing {
            break;
        }
    }
    let _ = wr.shutdown().await;
}
