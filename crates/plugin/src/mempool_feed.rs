//! The mempool notifications' own thread. The host's callback only copies the bytes
//! into a bounded queue; this thread decodes them and applies them to the node,
//! which takes the event clock (a block commit may hold it for a while).
//!
//! Ordering with blocks: a notification carries how many block notifications came
//! before it, and is applied only after the block thread has applied those, so a
//! transaction never meets an index older than the host's chain when it announced
//! it. One that a later block confirmed is recognised and skipped
//! ([`Node::spends_known_outputs`]). Before the index is live (a scan is running)
//! there is nothing to check a transaction against, so notifications are dropped
//! and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bitcoin::consensus::deserialize;
use bitcoin::{Transaction, Txid};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use opnet::format::undo::{decode_rest_spent_txouts, SpentOutput};
use opnet::protocol::RemovalReason;
use opnet::server::Node;
use opnet::sync::{LiveSync, SyncPhase};

/// One host notification, as copied from the callback.
pub enum Notification {
    Added { tx: Vec<u8>, spent: Vec<u8> },
    Removed { txid: [u8; 32], reason: u32 },
}

struct Queued {
    notification: Notification,
    /// Block notifications the host had made before this one.
    blocks_before: u64,
}

/// Counters for the log and the tests.
#[derive(Default)]
pub struct FeedCounters {
    /// Dropped because the queue was full.
    pub overflowed: AtomicU64,
    /// Dropped because the index was not live yet.
    pub before_live: AtomicU64,
    /// Skipped: confirmed, malformed or inconsistent.
    pub skipped: AtomicU64,
    pub applied: AtomicU64,
}

/// Handle to the feed thread.
pub struct MempoolFeed {
    queue: Option<Sender<Queued>>,
    worker: Option<JoinHandle<()>>,
    pub counters: Arc<FeedCounters>,
}

impl MempoolFeed {
    /// Starts the thread; `capacity` bounds the queued notifications.
    pub fn start(
        node: Arc<Node>,
        live: Arc<LiveSync>,
        capacity: usize,
    ) -> std::io::Result<MempoolFeed> {
        let (tx, rx) = bounded(capacity.max(1));
        let counters = Arc::new(FeedCounters::default());
        let c = counters.clone();
        let worker = std::thread::Builder::new()
            .name("opnet-mempool".into())
            .spawn(move || run(rx, node, live, c))?;
        Ok(MempoolFeed {
            queue: Some(tx),
            worker: Some(worker),
            counters,
        })
    }

    /// Queues a notification without blocking the host; false when the queue is
    /// full (the notification is dropped and counted).
    pub fn push(&self, notification: Notification, blocks_before: u64) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        match queue.try_send(Queued {
            notification,
            blocks_before,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.counters.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "the mempool queue is full; notifications dropped (raise -opnetmempoolqueue)");
                }
                false
            }
        }
    }

    /// Stops the thread after it has drained what is queued.
    pub fn stop(&mut self) {
        self.queue = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for MempoolFeed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Decodes the spent outputs of one transaction (the REST layout of a single
/// transaction: CompactSize(inputs), then a CTxOut per input).
pub fn decode_tx_spent(bytes: &[u8]) -> Result<Vec<SpentOutput>, String> {
    // As a two-transaction block whose first (coinbase) list is empty, it is exactly
    // what the REST decoder reads, with all its bounds checks.
    let mut block = Vec::with_capacity(bytes.len() + 2);
    block.extend_from_slice(&[2, 0]);
    block.extend_from_slice(bytes);
    let mut lists = decode_rest_spent_txouts(&block).map_err(|e| e.to_string())?;
    lists.pop().ok_or_else(|| "no spent outputs".to_string())
}

fn run(rx: Receiver<Queued>, node: Arc<Node>, live: Arc<LiveSync>, counters: Arc<FeedCounters>) {
    let mut blocks_applied = 0u64;
    while let Ok(q) = rx.recv() {
        if node.status.snapshot().phase != SyncPhase::Live {
            counters.before_live.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if q.blocks_before > blocks_applied {
            // Blocks the host announced before this transaction go first.
            match live.wait_applied_for(Some(Duration::from_secs(60))) {
                Some(true) => blocks_applied = q.blocks_before,
                Some(false) => return,
                None => tracing::warn!(
                    "the index is slow to apply blocks; applying a mempool notification anyway"
                ),
            }
        }
        match apply(&node, q.notification) {
            Ok(true) => {
                counters.applied.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {
                counters.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "a mempool notification was not applied");
            }
        }
    }
}

fn apply(node: &Node, notification: Notification) -> Result<bool, String> {
    match notification {
        Notification::Added { tx, spent } => {
            let tx: Transaction =
                deserialize(&tx).map_err(|e| format!("undecodable mempool transaction: {e}"))?;
            let spent = decode_tx_spent(&spent).map_err(|e| {
                format!(
                    "spent outputs of mempool transaction {}: {e}",
                    tx.compute_txid()
                )
            })?;
            if !node
                .spends_known_outputs(&tx, &spent)
                .map_err(|e| e.to_string())?
            {
                tracing::debug!(txid = %tx.compute_txid(), "mempool transaction spends outputs the index no longer has (confirmed or conflicted); skipped");
                return Ok(false);
            }
            node.mempool_added(Arc::new(tx), &spent)
                .map_err(|e| e.to_string())
        }
        Notification::Removed { txid, reason } => {
            let reason = u8::try_from(reason)
                .ok()
                .and_then(RemovalReason::from_u8)
                .unwrap_or(RemovalReason::Unknown);
            use bitcoin::hashes::Hash;
            node.mempool_removed(&Txid::from_byte_array(txid), reason)
                .map_err(|e| e.to_string())
        }
    }
}
