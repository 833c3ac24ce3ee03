//! The engine on its own thread, fed by host notifications through a bounded
//! buffer. Notifying never blocks the host: when the buffer is full (a scan is
//! running, or the writer is behind), the event is dropped and a flag set, and the
//! worker later catches up from the chain source, which can always serve the blocks
//! it missed. Memory stays bounded by the buffer size.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};

use super::engine::{ChainEvent, Engine};
use super::status::SyncPhase;
use super::SyncError;
use crate::chainstate::{Chainstate, ChainstateError};
use crate::index::IndexError;
use crate::source::ChainSource;

/// Opens a chainstate snapshot; shared with the worker thread.
pub type SharedChainstateOpener =
    Arc<dyn Fn() -> Result<Chainstate, ChainstateError> + Send + Sync>;

enum Message {
    Event(ChainEvent),
    /// Answered once everything queued before it has been applied.
    Barrier(Sender<()>),
}

/// Handle to the running engine thread.
pub struct LiveSync {
    messages: Sender<Message>,
    stop: Sender<()>,
    /// Nudges an idle worker after an event was dropped, so it catches up now
    /// rather than at the next block.
    wake: Sender<()>,
    /// Disconnected when the worker thread ends: nothing waits on a dead worker.
    alive: Receiver<()>,
    overflowed: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
    worker: Option<JoinHandle<Result<Engine, SyncError>>>,
}

impl LiveSync {
    /// Starts the worker: sync (scan if needed, catch up), then apply events.
    /// `buffer` bounds the events held while the worker is busy.
    pub fn start(
        engine: Engine,
        source: Arc<dyn ChainSource>,
        chainstate: SharedChainstateOpener,
        buffer: usize,
    ) -> Result<LiveSync, SyncError> {
        let (messages, rx) = bounded(buffer.max(1));
        let (stop, stop_rx) = bounded(1);
        let (wake, wake_rx) = bounded(1);
        let (alive_tx, alive) = bounded::<()>(0);
        let overflowed = Arc::new(AtomicBool::new(false));
        let cancel = engine.cancel_flag();
        // An engine returned by an earlier shutdown still carries its cancel flag.
        cancel.store(false, Ordering::Relaxed);
        let flag = overflowed.clone();
        let status = engine.status();
        let worker = std::thread::Builder::new()
            .name("opnet-sync".into())
            .spawn(move || {
                let _alive = alive_tx;
                // A panic (a bug) ends the thread but never the process: every
                // commit is atomic, so the index stays at its last block, and the
                // status says it no longer follows the chain.
                let ran = catch_unwind(AssertUnwindSafe(|| {
                    run(engine, source, chainstate, rx, stop_rx, wake_rx, flag)
                }));
                ran.unwrap_or_else(|panic| {
                    let msg = panic_message(panic.as_ref());
                    tracing::error!(panic = %msg, "the index thread panicked: the index stays at its last committed block and no longer follows the chain until restarted");
                    status.set_phase(SyncPhase::Failed);
                    Err(SyncError::Io(format!("the sync thread panicked: {msg}")))
                })
            })
            .map_err(|e| SyncError::Io(format!("starting the sync thread: {e}")))?;
        Ok(LiveSync {
            messages,
            stop,
            wake,
            alive,
            overflowed,
            cancel,
            worker: Some(worker),
        })
    }

    /// Hands an event to the worker without blocking. Returns false when the buffer
    /// was full: the event is dropped and the worker will catch up from the source.
    pub fn notify(&self, event: ChainEvent) -> bool {
        match self.messages.try_send(Message::Event(event)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.resync();
                false
            }
        }
    }

    /// Makes the worker catch up from the source, as after a dropped event (e.g. a
    /// notification that could not be decoded).
    pub fn resync(&self) {
        self.overflowed.store(true, Ordering::Relaxed);
        // Set before the wake: a worker that drained the buffer meanwhile sees the
        // flag when it wakes.
        let _ = self.wake.try_send(());
    }

    /// Blocks until every event notified before this call has been applied (or
    /// recovered by a catch-up). For drivers that step a chain on command; never
    /// call it from a host callback. False if the worker has stopped.
    pub fn wait_applied(&self) -> bool {
        self.wait_applied_for(None) == Some(true)
    }

    /// As [`LiveSync::wait_applied`], giving up after `timeout`: `None` when it ran
    /// out (the initial scan may take hours), else whether the worker is alive.
    pub fn wait_applied_for(&self, timeout: Option<Duration>) -> Option<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let never = crossbeam_channel::never();
        let out_of_time = || match deadline {
            Some(d) => crossbeam_channel::at(d),
            None => never.clone(),
        };
        let (tx, rx) = bounded(1);
        // A worker that ended leaves the channel open (we hold a sender), so both
        // the send and the answer are raced against its end.
        select! {
            send(self.messages, Message::Barrier(tx)) -> sent => {
                if sent.is_err() {
                    return Some(false);
                }
            }
            recv(self.alive) -> _ => return Some(false),
            recv(out_of_time()) -> _ => return None,
        }
        select! {
            recv(rx) -> answer => Some(answer.is_ok()),
            recv(self.alive) -> _ => Some(false),
            recv(out_of_time()) -> _ => None,
        }
    }

    /// Queues a barrier without waiting for it: the receiver gets `()` once
    /// everything queued before it is applied, and is closed if the worker stops.
    /// Waits at most `timeout` for room in the queue (`None` when there was none).
    /// For callers that wait in slices and keep one barrier across calls instead
    /// of queueing a new one each time.
    pub fn barrier(&self, timeout: Duration) -> Option<Receiver<()>> {
        let (tx, rx) = bounded(1);
        match self.messages.send_timeout(Message::Barrier(tx), timeout) {
            Ok(()) => Some(rx),
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => None,
            // The worker is gone: a closed receiver says so.
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => Some(rx),
        }
    }

    /// Stops the worker (cancelling a running scan) and returns the engine. Events
    /// still queued are dropped; the next start catches up from the source.
    pub fn shutdown(mut self) -> Result<Engine, SyncError> {
        self.cancel.store(true, Ordering::Relaxed);
        let _ = self.stop.try_send(());
        match self.worker.take() {
            Some(w) => w
                .join()
                .map_err(|_| SyncError::Io("the sync thread panicked".into()))?,
            None => Err(SyncError::Io("the sync thread is gone".into())),
        }
    }
}

impl Drop for LiveSync {
    /// A LiveSync dropped without [`LiveSync::shutdown`] (an error path) still
    /// stops its thread: nothing it holds may outlive its owner (in the plugin,
    /// the host's context).
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            self.cancel.store(true, Ordering::Relaxed);
            let _ = self.stop.try_send(());
            let _ = w.join();
        }
    }
}

fn run(
    mut engine: Engine,
    source: Arc<dyn ChainSource>,
    chainstate: SharedChainstateOpener,
    messages: Receiver<Message>,
    stop: Receiver<()>,
    wake: Receiver<()>,
    overflowed: Arc<AtomicBool>,
) -> Result<Engine, SyncError> {
    let opener = || chainstate();
    match engine.sync(source.as_ref(), &opener) {
        Ok(outcome) => tracing::info!(?outcome, "index synced"),
        Err(SyncError::Cancelled) => return Ok(engine),
        Err(e) if is_damaged(&e) => {
            give_up(&engine, &e);
            return Ok(engine);
        }
        Err(e) => {
            tracing::error!(error = %e, "initial sync failed; will retry on the next block");
            overflowed.store(true, Ordering::Relaxed);
        }
    }
    loop {
        let message = select! {
            recv(stop) -> _ => return Ok(engine),
            recv(wake) -> _ => {
                if overflowed.load(Ordering::Relaxed)
                    && recover(&mut engine, source.as_ref(), &opener, &overflowed).is_err()
                {
                    return Ok(engine);
                }
                continue;
            }
            recv(messages) -> m => match m {
                Ok(m) => m,
                Err(_) => return Ok(engine),
            },
        };
        let event = match message {
            Message::Event(ev) => Some(ev),
            Message::Barrier(done) => {
                // Catch up first if events were dropped, so the barrier means "applied".
                if overflowed.load(Ordering::Relaxed)
                    && recover(&mut engine, source.as_ref(), &opener, &overflowed).is_err()
                {
                    return Ok(engine);
                }
                let _ = done.send(());
                None
            }
        };
        let Some(event) = event else { continue };
        if overflowed.load(Ordering::Relaxed) {
            // The dropped events are recovered from the source; this one with them.
            if recover(&mut engine, source.as_ref(), &opener, &overflowed).is_err() {
                return Ok(engine);
            }
            continue;
        }
        crate::failpoint::check("sync");
        let result = match engine.handle_event(&event, source.as_ref()) {
            Err(SyncError::NeedsResync(_)) | Err(SyncError::NotReady(_)) => {
                engine.sync(source.as_ref(), &opener).map(|_| ())
            }
            other => other,
        };
        match result {
            Ok(()) => {}
            Err(SyncError::Cancelled) => return Ok(engine),
            Err(e) if is_damaged(&e) => {
                give_up(&engine, &e);
                return Ok(engine);
            }
            Err(e) => {
                tracing::error!(error = %e, "applying a chain event failed; will catch up on the next one");
                overflowed.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// The text of a panic payload (`&str` or `String`, as `panic!` makes them).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A damaged index (a table failing its checksum, a record that cannot be what was
/// written) fails again at every retry: only a rebuild helps.
fn is_damaged(e: &SyncError) -> bool {
    matches!(e, SyncError::Index(IndexError::Corrupt(_)))
}

/// Stops following the chain on a damaged index, saying so in the log and the
/// status (GET_SYNC_STATUS `failed`) instead of failing at every block.
fn give_up(engine: &Engine, e: &SyncError) {
    tracing::error!(error = %e, "the index is damaged and no longer follows the chain; rebuild it (delete the index directory, or start the plugin with -opnetreindex=1)");
    engine.status().set_phase(SyncPhase::Failed);
}

/// Re-syncs from the source after dropped events or a failure. Returns Err when
/// cancelled or when the index is damaged (the worker then ends); other errors
/// are logged and retried on the next message.
fn recover(
    engine: &mut Engine,
    source: &dyn ChainSource,
    opener: &dyn Fn() -> Result<Chainstate, ChainstateError>,
    overflowed: &AtomicBool,
) -> Result<(), SyncError> {
    overflowed.store(false, Ordering::Relaxed);
    match engine.sync(source, opener) {
        Ok(_) => Ok(()),
        Err(SyncError::Cancelled) => Err(SyncError::Cancelled),
        Err(e) if is_damaged(&e) => {
            give_up(engine, &e);
            Err(e)
        }
        Err(e) => {
            tracing::error!(error = %e, "catching up from the source failed; will retry");
            overflowed.store(true, Ordering::Relaxed);
            Ok(())
        }
    }
}
