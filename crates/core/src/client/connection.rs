//! One connection to `opnet.sock`: the HELLO handshake, then one background task
//! that owns both socket halves, numbers requests, matches responses to them by
//! sequence number (so any number can be in flight, answered in any order) and
//! hands events to the subscription's channel.
//!
//! Everything the server sends is checked: a frame or body that breaks the protocol
//! ends the connection with [`ClientError::Protocol`], because nothing after it can
//! be trusted. Memory stays bounded: the task stops taking requests while a
//! megabyte waits to be written, reads one frame of at most the negotiated size at
//! a time, and stops queueing events for a consumer that does not keep up (the
//! event stream then resubscribes, see `events`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::events::{Item, Sink};
use super::{ClientError, ClientOptions};
use crate::protocol::wire::Reader;
use crate::protocol::{
    encode, kind, request_frame, response_kind, DecodeError, ErrorReply, Event, Frame,
    FrameDecoder, Hello, HelloReply, Request, Response, Status, PROTOCOL_VERSION,
};

/// Requests queued for the task before callers wait for room.
const COMMAND_QUEUE: usize = 256;
/// The task takes no more requests while this much is waiting to be written, so a
/// caller sending faster than the server reads waits instead of growing memory.
const OUT_HIGH_WATER: usize = 1 << 20;
/// Room kept free in the read buffer before each read.
const READ_CHUNK: usize = 64 << 10;
/// The sequence number of HELLO; the task numbers later requests after it.
const HELLO_SEQ: u32 = 1;

type Reply = oneshot::Sender<Result<Response, ClientError>>;

/// What a request does to the connection's event sink once it succeeds.
pub(crate) enum SinkChange {
    /// Nothing (every request but SUBSCRIBE and UNSUBSCRIBE).
    Keep,
    /// SUBSCRIBE: events after its answer go to this sink.
    Set(Sink),
    /// UNSUBSCRIBE of every kind: events stop being forwarded.
    Clear,
}

/// A request handed to the connection task.
struct Command {
    req: Request,
    reply: Reply,
    sink: SinkChange,
}

/// A request sent and not answered yet.
struct Pending {
    kind: u8,
    reply: Reply,
    sink: SinkChange,
}

/// A cheap handle to a live (or ended) connection.
#[derive(Clone)]
pub(crate) struct Conn {
    cmds: mpsc::Sender<Command>,
    /// Why the task ended, set once before it fails what was waiting.
    ended: Arc<OnceLock<ClientError>>,
    /// The server's HELLO answer on this connection.
    pub(crate) hello: HelloReply,
}

/// An answer still to come.
pub(crate) struct PendingReply {
    rx: oneshot::Receiver<Result<Response, ClientError>>,
    ended: Arc<OnceLock<ClientError>>,
}

impl PendingReply {
    /// Waits for the answer; a connection that ended first gives its reason.
    pub(crate) async fn wait(self) -> Result<Response, ClientError> {
        match self.rx.await {
            Ok(result) => result,
            Err(_) => Err(self
                .ended
                .get()
                .cloned()
                .unwrap_or_else(ClientError::closed)),
        }
    }
}

impl Conn {
    fn ended_error(&self) -> ClientError {
        self.ended
            .get()
            .cloned()
            .unwrap_or_else(ClientError::closed)
    }

    /// Queues a request and returns without waiting for the answer, so a caller can
    /// keep several in flight (the page stream's prefetch, pipelined pings).
    pub(crate) async fn start(
        &self,
        req: Request,
        sink: SinkChange,
    ) -> Result<PendingReply, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Command { req, reply, sink })
            .await
            .map_err(|_| self.ended_error())?;
        Ok(PendingReply {
            rx,
            ended: self.ended.clone(),
        })
    }

    /// Sends a request and waits for its answer.
    pub(crate) async fn call(
        &self,
        req: Request,
        sink: SinkChange,
    ) -> Result<Response, ClientError> {
        self.start(req, sink).await?.wait().await
    }

    /// Queues a request whose answer nobody waits for, without blocking (for `Drop`).
    /// False when the queue is full or the connection has ended.
    pub(crate) fn send_and_forget(&self, req: Request, sink: SinkChange) -> bool {
        let (reply, _) = oneshot::channel();
        self.cmds.try_send(Command { req, reply, sink }).is_ok()
    }
}

/// Reads the answer of a request of response type `kind`: `Ok(Err)` for a failure
/// the server reported (including a status this client does not know, which §3 says
/// fails only that request), `Err` for a body that breaks the protocol.
fn decode_response(kind: u8, body: &[u8]) -> Result<Result<Response, ClientError>, ClientError> {
    if let Some(&code) = body.first() {
        if code != Status::Ok as u8 && Status::from_u8(code).is_none() {
            let mut r = Reader::new(&body[1..]);
            let detail = r.u32().unwrap_or(0);
            let message = r.str16("message").unwrap_or_default();
            return Ok(Err(ClientError::UnknownStatus {
                code,
                detail,
                message,
            }));
        }
    }
    match Response::decode(kind, body) {
        Ok(Response::Error { error, .. }) => Ok(Err(ClientError::Server {
            status: error.status,
            detail: error.detail,
            message: error.message,
        })),
        Ok(resp) => Ok(Ok(resp)),
        Err(e) => Err(ClientError::Protocol(format!(
            "answer of type {kind:#04x}: {e}"
        ))),
    }
}

/// The reason in a CLOSING body, or the protocol error it is.
fn closing_reason(body: &[u8]) -> ClientError {
    match Event::decode(kind::CLOSING, body) {
        Ok(Event::Closing {
            status,
            detail,
            message,
            ..
        }) => ClientError::Closed {
            closing: Some(ErrorReply {
                status,
                detail,
                message,
            }),
        },
        Ok(_) => ClientError::Protocol("CLOSING decoded as another event".into()),
        Err(e) => ClientError::Protocol(format!("CLOSING: {e}")),
    }
}

/// Connects, says HELLO and starts the connection task. The returned handle ends
/// when the connection does.
pub(crate) async fn open(
    path: &Path,
    options: &ClientOptions,
) -> Result<(Conn, JoinHandle<()>), ClientError> {
    let shake = tokio::time::timeout(options.connect_timeout, handshake(path, options))
        .await
        .map_err(|_| ClientError::Timeout)??;
    let (cmds_tx, cmds) = mpsc::channel(COMMAND_QUEUE);
    let ended = Arc::new(OnceLock::new());
    let task = Task {
        rd: shake.rd,
        wr: shake.wr,
        decoder: shake.decoder,
        inbuf: shake.inbuf,
        out: BytesMut::new(),
        max_frame: shake.reply.max_frame,
        closing: None,
        ended: ended.clone(),
        cmds,
        cmds_open: true,
        pending: HashMap::new(),
        next_seq: HELLO_SEQ.wrapping_add(1),
        sink: None,
        discarding: false,
        event_buffer: options.event_buffer,
    };
    let handle = tokio::spawn(task.run());
    Ok((
        Conn {
            cmds: cmds_tx,
            ended,
            hello: shake.reply,
        },
        handle,
    ))
}

/// A connection that has said HELLO: the socket, what was read past the answer,
/// and the answer.
struct Handshake {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    decoder: FrameDecoder,
    inbuf: BytesMut,
    reply: HelloReply,
}

/// Connects and exchanges HELLO.
async fn handshake(path: &Path, options: &ClientOptions) -> Result<Handshake, ClientError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| ClientError::Connect {
            path: path.to_path_buf(),
            error: Arc::new(e),
        })?;
    let (mut rd, mut wr) = stream.into_split();
    let hello = Request::Hello(Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        max_frame: options.max_frame,
        features: options.features,
        client_name: options.client_name.clone(),
    });
    let mut out = BytesMut::new();
    encode(
        &request_frame(HELLO_SEQ, &hello),
        crate::protocol::DEFAULT_MAX_FRAME,
        &mut out,
    )
    .map_err(|e| ClientError::Invalid(e.to_string()))?;
    wr.write_all(&out)
        .await
        .map_err(|_| ClientError::closed())?;

    let mut decoder = FrameDecoder::new(options.max_frame);
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    let frame = loop {
        match decoder.decode(&mut inbuf) {
            Ok(Some(frame)) => break frame,
            Ok(None) => {}
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        }
        match rd.read_buf(&mut inbuf).await {
            Ok(0) | Err(_) => return Err(ClientError::closed()),
            Ok(_) => {}
        }
    };
    let reply = hello_reply(&frame, options)?;
    decoder.set_max_frame(reply.max_frame);
    Ok(Handshake {
        rd,
        wr,
        decoder,
        inbuf,
        reply,
    })
}

/// Checks the first frame a server sends: the answer to HELLO (or CLOSING).
fn hello_reply(frame: &Frame, options: &ClientOptions) -> Result<HelloReply, ClientError> {
    if frame.kind == kind::CLOSING {
        return Err(closing_reason(&frame.body));
    }
    if frame.kind != response_kind(kind::HELLO) || frame.seq != HELLO_SEQ {
        return Err(ClientError::Protocol(format!(
            "expected the answer to HELLO, got type {:#04x} sequence {}",
            frame.kind, frame.seq
        )));
    }
    let reply = match decode_response(frame.kind, &frame.body)?? {
        Response::Hello(reply) => reply,
        other => {
            return Err(ClientError::Protocol(format!(
                "HELLO answered with {other:?}"
            )))
        }
    };
    if reply.version != PROTOCOL_VERSION {
        return Err(ClientError::Protocol(format!(
            "the server chose protocol version {}, this client speaks {PROTOCOL_VERSION}",
            reply.version
        )));
    }
    if reply.features & !options.features != 0 {
        return Err(ClientError::Protocol(format!(
            "the server granted features {:#x} that were not asked for ({:#x})",
            reply.features, options.features
        )));
    }
    if reply.max_frame > options.max_frame || reply.max_frame < crate::protocol::MIN_MAX_FRAME {
        return Err(ClientError::Protocol(format!(
            "the server's max_frame {} is outside {}..={}",
            reply.max_frame,
            crate::protocol::MIN_MAX_FRAME,
            options.max_frame
        )));
    }
    if let Some(expected) = options.network {
        if reply.network != expected.id() {
            return Err(ClientError::WrongNetwork {
                expected,
                got: reply.network,
            });
        }
    }
    Ok(reply)
}

/// The background task of one connection (see the module doc).
struct Task {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    decoder: FrameDecoder,
    inbuf: BytesMut,
    /// Encoded requests not yet taken by the socket.
    out: BytesMut,
    /// The largest frame the server accepts from us.
    max_frame: u32,
    /// The server's CLOSING, once received.
    closing: Option<ErrorReply>,
    ended: Arc<OnceLock<ClientError>>,
    cmds: mpsc::Receiver<Command>,
    /// False once every handle is gone.
    cmds_open: bool,
    pending: HashMap<u32, Pending>,
    next_seq: u32,
    /// Where events go (set by a successful SUBSCRIBE).
    sink: Option<Sink>,
    /// The sink's consumer fell behind: drop events until the next SUBSCRIBE.
    discarding: bool,
    /// Events queued for the consumer before `discarding` starts.
    event_buffer: usize,
}

impl Task {
    async fn run(mut self) {
        let end = self.serve().await;
        if let ClientError::Protocol(m) = &end {
            tracing::warn!(error = %m, "closing the connection to opnet.sock");
        }
        let _ = self.ended.set(end.clone());
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(end.clone()));
        }
        self.cmds.close();
        while let Ok(cmd) = self.cmds.try_recv() {
            let _ = cmd.reply.send(Err(end.clone()));
        }
        if let Some(sink) = self.sink.take() {
            let _ = sink.tx.send(Item::Lost(end));
        }
        let _ = self.wr.shutdown().await;
    }

    /// Runs until the connection ends; returns why.
    async fn serve(&mut self) -> ClientError {
        loop {
            loop {
                match self.decoder.decode(&mut self.inbuf) {
                    Ok(Some(frame)) => {
                        if let Err(e) = self.handle(frame) {
                            return e;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return ClientError::Protocol(e.to_string()),
                }
            }
            if !self.cmds_open && self.pending.is_empty() && self.out.is_empty() {
                // Every handle is gone and nothing is owed to anyone.
                return ClientError::closed();
            }
            if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
                self.inbuf.reserve(READ_CHUNK);
            }
            let accepting = self.cmds_open && self.out.len() < OUT_HIGH_WATER;
            let writing = !self.out.is_empty();
            tokio::select! {
                r = self.rd.read_buf(&mut self.inbuf) => match r {
                    Ok(0) | Err(_) => {
                        return ClientError::Closed { closing: self.closing.take() };
                    }
                    Ok(_) => {}
                },
                cmd = self.cmds.recv(), if accepting => match cmd {
                    Some(cmd) => self.enqueue(cmd),
                    None => self.cmds_open = false,
                },
                r = self.wr.write(&self.out), if writing => match r {
                    Ok(0) | Err(_) => {
                        return ClientError::Closed { closing: self.closing.take() };
                    }
                    Ok(n) => self.out.advance(n),
                },
            }
        }
    }

    /// A sequence number no pending request uses (0 is left to events).
    fn take_seq(&mut self) -> u32 {
        loop {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            if seq != 0 && !self.pending.contains_key(&seq) {
                return seq;
            }
        }
    }

    fn enqueue(&mut self, cmd: Command) {
        let seq = self.take_seq();
        let frame = request_frame(seq, &cmd.req);
        if let Err(e) = encode(&frame, self.max_frame, &mut self.out) {
            let _ = cmd.reply.send(Err(ClientError::Invalid(format!(
                "{e} (the frame size negotiated with the server)"
            ))));
            return;
        }
        self.pending.insert(
            seq,
            Pending {
                kind: cmd.req.kind(),
                reply: cmd.reply,
                sink: cmd.sink,
            },
        );
    }

    /// Handles one frame from the server; an error ends the connection.
    fn handle(&mut self, frame: Frame) -> Result<(), ClientError> {
        if kind::RESPONSES.contains(&frame.kind) {
            let Some(p) = self.pending.remove(&frame.seq) else {
                return Err(ClientError::Protocol(format!(
                    "an answer of type {:#04x} to sequence {}, which no request is waiting for",
                    frame.kind, frame.seq
                )));
            };
            let decoded = if frame.kind == response_kind(p.kind) {
                decode_response(frame.kind, &frame.body)
            } else {
                Err(ClientError::Protocol(format!(
                    "a request of type {:#04x} answered with type {:#04x}",
                    p.kind, frame.kind
                )))
            };
            match decoded {
                Err(e) => {
                    let _ = p.reply.send(Err(e.clone()));
                    return Err(e);
                }
                Ok(Err(failure)) => {
                    let _ = p.reply.send(Err(failure));
                }
                Ok(Ok(resp)) => {
                    self.apply(&resp, p.sink);
                    let _ = p.reply.send(Ok(resp));
                }
            }
            return Ok(());
        }
        if kind::EVENTS.contains(&frame.kind) {
            if frame.seq != 0 {
                return Err(ClientError::Protocol(format!(
                    "event {:#04x} with sequence {} (events use 0)",
                    frame.kind, frame.seq
                )));
            }
            if frame.kind == kind::CLOSING {
                // The server closes right after; nothing that follows matters.
                return Err(closing_reason(&frame.body));
            }
            match Event::decode(frame.kind, &frame.body) {
                Ok(event) => self.forward(event),
                // §2.1: an event type from a newer version; skipping it is safe.
                Err(DecodeError::UnknownType(k)) => {
                    tracing::debug!(kind = k, "skipping an event type this client does not know")
                }
                Err(e) => {
                    return Err(ClientError::Protocol(format!(
                        "event {:#04x}: {e}",
                        frame.kind
                    )))
                }
            }
            return Ok(());
        }
        Err(ClientError::Protocol(format!(
            "a frame of type {:#04x}, which is neither a response nor an event",
            frame.kind
        )))
    }

    /// Switches the event sink when a SUBSCRIBE or UNSUBSCRIBE succeeded. The switch
    /// happens here, in frame order, so the events after the answer go to the new
    /// sink and none before it do.
    fn apply(&mut self, resp: &Response, change: SinkChange) {
        match (resp, change) {
            (
                Response::Subscribed {
                    event_seq,
                    resume_after,
                },
                SinkChange::Set(sink),
            ) => {
                sink.shared.subscribed(sink.epoch, *resume_after);
                if let Some(hello) = &sink.reconnected {
                    let _ = sink.tx.send(Item::Reconnected {
                        hello: hello.clone(),
                        event_seq: *event_seq,
                        resume_after: *resume_after,
                    });
                }
                self.sink = Some(sink);
                self.discarding = false;
            }
            (Response::Unsubscribed, SinkChange::Clear) => self.sink = None,
            _ => {}
        }
    }

    /// Hands an event to the subscription, or notes that its consumer fell behind.
    fn forward(&mut self, event: Event) {
        let Some(sink) = &self.sink else {
            return;
        };
        if self.discarding {
            return;
        }
        if sink.shared.queued.load(Ordering::Acquire) >= self.event_buffer {
            self.discarding = true;
            sink.shared.overflowed(sink.epoch);
            return;
        }
        sink.shared.queued.fetch_add(1, Ordering::AcqRel);
        let item = Item::Event {
            epoch: sink.epoch,
            event,
        };
        if sink.tx.send(item).is_err() {
            // The stream is gone.
            sink.shared.queued.fetch_sub(1, Ordering::AcqRel);
            self.sink = None;
        }
    }
}
