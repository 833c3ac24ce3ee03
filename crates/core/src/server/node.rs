//! What the server serves from: the current index (store and metadata), the sync
//! progress, the chain source, the mempool view and the event hub. The engine
//! updates it through its observers; the host feeds it mempool notifications.

use std::sync::{Arc, RwLock};

use bitcoin::hashes::Hash;
use bitcoin::Transaction;

use super::hub::{encode_event, Activity, Hub, HubEvent};
use crate::format::undo::SpentOutput;
use crate::index::{EventKind, EventRecord, IndexMeta, IndexStore, UtxoKey};
use crate::mempool::{MempoolError, MempoolView, Removed};
use crate::network::Network;
use crate::protocol::{
    ActivityCause, ActivityChange, ActivityEntry, BlockRef, Event, MempoolChange, RemovalReason,
    KIND_BLOCKS, KIND_MEMPOOL,
};
use crate::source::ChainSource;
use crate::sync::{
    BlockEvent, BlockEventKind, ClockGuard, Engine, EventClock, EventUtxo, SyncStatus,
};

/// Default memory for the mempool event log (events and their activity).
pub const DEFAULT_MEMPOOL_LOG_BYTES: usize = 64 << 20;

/// The index as last committed.
#[derive(Clone)]
pub struct IndexView {
    pub store: Arc<IndexStore>,
    pub meta: IndexMeta,
}

/// Shared state behind the socket (see the module doc).
pub struct Node {
    pub network: Network,
    index: RwLock<Option<IndexView>>,
    pub status: Arc<SyncStatus>,
    pub clock: Arc<EventClock>,
    pub source: Arc<dyn ChainSource>,
    pub mempool: RwLock<MempoolView>,
    pub hub: Hub,
}

/// Why a mempool notification was not applied.
#[derive(Debug)]
pub enum NodeError {
    Mempool(MempoolError),
    Index(crate::index::IndexError),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Mempool(e) => write!(f, "{e}"),
            NodeError::Index(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NodeError {}

fn block_ref(height: u32, hash: [u8; 32]) -> BlockRef {
    BlockRef { height, hash }
}

/// The protocol event of a logged block event.
fn record_event(r: &EventRecord) -> Event {
    match r.kind {
        EventKind::Connected => Event::BlockConnected {
            seq: r.seq,
            block: block_ref(r.height, r.hash),
            prev_hash: r.prev_hash,
            time: r.time,
            tx_count: r.tx_count,
            outputs_added: r.added,
            outputs_removed: r.removed,
        },
        EventKind::Disconnected => Event::BlockDisconnected {
            seq: r.seq,
            block: block_ref(r.height, r.hash),
            prev_hash: r.prev_hash,
            outputs_added: r.added,
            outputs_removed: r.removed,
        },
        EventKind::Rebuilt => Event::IndexRebuilt {
            seq: r.seq,
            tip: block_ref(r.height, r.hash),
        },
    }
}

fn hub_block_event(r: &EventRecord) -> HubEvent {
    HubEvent {
        seq: r.seq,
        class: KIND_BLOCKS,
        frame: encode_event(&record_event(r)),
        connected: (r.kind == EventKind::Connected).then(|| block_ref(r.height, r.hash)),
        activity: None,
    }
}

fn entries(
    utxos: &[EventUtxo],
    change: ActivityChange,
) -> impl Iterator<Item = ActivityEntry> + '_ {
    utxos.iter().map(move |u| ActivityEntry {
        scripthash: u.key.script_hash,
        txid: u.key.txid,
        vout: u.key.vout,
        change,
        value: u.amount,
        height: u.height,
    })
}

fn mempool_activity(
    cause: ActivityCause,
    txid: [u8; 32],
    list: &[crate::mempool::Activity],
) -> Arc<Activity> {
    Arc::new(Activity {
        cause,
        block: BlockRef::default(),
        txid,
        entries: list
            .iter()
            .map(|a| ActivityEntry {
                scripthash: a.script_hash,
                txid: a.outpoint.0,
                vout: a.outpoint.1,
                change: a.change,
                value: a.amount,
                height: a.height,
            })
            .collect(),
    })
}

impl Node {
    /// Creates the node for `engine`'s index and installs the engine's observers.
    /// `event_retention` should equal the engine's (the persisted log's length).
    pub fn attach(
        engine: &mut Engine,
        source: Arc<dyn ChainSource>,
        mempool_log_bytes: usize,
    ) -> Result<Arc<Node>, crate::index::IndexError> {
        let logged = match engine.store() {
            Some(store) => store.events_after(0)?,
            None => Vec::new(),
        };
        let clock = engine.event_clock();
        let hub = Hub::new(
            clock.last(),
            logged
                .iter()
                .map(|r| Arc::new(hub_block_event(r)))
                .collect(),
            engine.config().event_retention,
            mempool_log_bytes,
        );
        let node = Arc::new(Node {
            network: engine.config().network,
            index: RwLock::new(None),
            status: engine.status(),
            clock,
            source,
            mempool: RwLock::new(MempoolView::new()),
            hub,
        });
        let n = node.clone();
        engine.set_index_observer(move |store, meta| {
            let mut index = n.index.write().unwrap_or_else(|p| p.into_inner());
            *index = Some(IndexView {
                store: store.clone(),
                meta: meta.clone(),
            });
        });
        let n = node.clone();
        engine.set_observer(move |event, clock| n.on_block(event, clock));
        Ok(node)
    }

    /// The index as last committed; `None` before the first scan.
    pub fn index(&self) -> Option<IndexView> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn on_block(&self, event: &BlockEvent, clock: &mut ClockGuard<'_>) {
        let record = event.record();
        let block = block_ref(event.height, event.hash);
        let activity = match event.kind {
            BlockEventKind::Rebuilt => None,
            kind => {
                let cause = if kind == BlockEventKind::Connected {
                    ActivityCause::BlockConnected
                } else {
                    ActivityCause::BlockDisconnected
                };
                let list: Vec<ActivityEntry> = entries(&event.added, ActivityChange::Added)
                    .chain(entries(&event.removed, ActivityChange::Removed))
                    .collect();
                Some(Arc::new(Activity {
                    cause,
                    block,
                    txid: [0; 32],
                    entries: list,
                }))
            }
        };
        self.hub.publish_block(hub_block_event(&record), activity);
        if event.kind == BlockEventKind::Connected {
            let removed = {
                let mut view = self.mempool.write().unwrap_or_else(|p| p.into_inner());
                view.block_connected(
                    &event.txids,
                    event.removed.iter().map(|u| (u.key.txid, u.key.vout)),
                )
            };
            for r in removed {
                if let Err(e) = self.publish_removed(r, clock) {
                    tracing::error!(error = %e, "numbering a mempool removal failed");
                }
            }
        }
    }

    fn publish_removed(&self, r: Removed, clock: &mut ClockGuard<'_>) -> Result<(), NodeError> {
        let Some(view) = self.index() else {
            return Ok(());
        };
        let seq = clock.next_volatile(&view.store).map_err(NodeError::Index)?;
        let event = Event::MempoolTx {
            seq,
            txid: r.txid,
            change: MempoolChange::Removed { reason: r.reason },
        };
        self.hub.publish_mempool(HubEvent {
            seq,
            class: KIND_MEMPOOL,
            frame: encode_event(&event),
            connected: None,
            activity: Some(mempool_activity(
                ActivityCause::MempoolRemoved,
                r.txid,
                &r.activity,
            )),
        });
        Ok(())
    }

    /// A transaction entered the host's mempool, with the outputs its inputs spend.
    /// Returns false when it was already known or no index exists yet (mempool
    /// events are only numbered once there is an index to persist numbers in).
    pub fn mempool_added(
        &self,
        tx: Arc<Transaction>,
        spent: &[SpentOutput],
    ) -> Result<bool, NodeError> {
        let mut clock = self.clock.lock();
        let Some(view) = self.index() else {
            return Ok(false);
        };
        let store = view.store.clone();
        let heights = |sh: &[u8; 32], op: &([u8; 32], u32)| {
            store
                .get_utxo(&UtxoKey {
                    script_hash: *sh,
                    txid: op.0,
                    vout: op.1,
                })
                .ok()
                .flatten()
                .map_or(0, |v| v.height)
        };
        let added = {
            let mut mempool = self.mempool.write().unwrap_or_else(|p| p.into_inner());
            mempool
                .add(tx, spent, &heights)
                .map_err(NodeError::Mempool)?
        };
        let Some(added) = added else {
            return Ok(false);
        };
        let seq = clock.next_volatile(&view.store).map_err(NodeError::Index)?;
        let event = Event::MempoolTx {
            seq,
            txid: added.txid,
            change: MempoolChange::Added {
                fee: added.fee,
                vsize: added.vsize,
                inputs: added.inputs,
                outputs: added.outputs,
            },
        };
        self.hub.publish_mempool(HubEvent {
            seq,
            class: KIND_MEMPOOL,
            frame: encode_event(&event),
            connected: None,
            activity: Some(mempool_activity(
                ActivityCause::MempoolAdded,
                added.txid,
                &added.activity,
            )),
        });
        Ok(true)
    }

    /// Whether every input of `tx` spends an output that is unspent in the index or
    /// created by a transaction in the mempool view. A host's notifications can lag
    /// the index (they are queued while blocks are applied): a transaction that fails
    /// this check was confirmed or conflicted by a block applied since, and must not
    /// be shown as pending. `spent` is in input order; false if it does not match.
    pub fn spends_known_outputs(
        &self,
        tx: &Transaction,
        spent: &[SpentOutput],
    ) -> Result<bool, NodeError> {
        let Some(view) = self.index() else {
            return Ok(false);
        };
        if spent.len() != tx.input.len() {
            return Ok(false);
        }
        let mempool = self.mempool.read().unwrap_or_else(|p| p.into_inner());
        for (input, out) in tx.input.iter().zip(spent) {
            let key = UtxoKey {
                script_hash: crate::index::script_hash(&out.script),
                txid: input.previous_output.txid.to_byte_array(),
                vout: input.previous_output.vout,
            };
            if mempool.transaction(&key.txid).is_some() {
                continue;
            }
            if view
                .store
                .get_utxo(&key)
                .map_err(NodeError::Index)?
                .is_none()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A transaction left the host's mempool. False when it was not in the view.
    pub fn mempool_removed(
        &self,
        txid: &bitcoin::Txid,
        reason: RemovalReason,
    ) -> Result<bool, NodeError> {
        let mut clock = self.clock.lock();
        let removed = {
            let mut mempool = self.mempool.write().unwrap_or_else(|p| p.into_inner());
            mempool.remove(&txid.to_byte_array(), reason)
        };
        match removed {
            Some(r) => self.publish_removed(r, &mut clock).map(|_| true),
            None => Ok(false),
        }
    }

    /// Transactions in the mempool view.
    pub fn mempool_len(&self) -> usize {
        self.mempool.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}
