//! The sync engine: fresh scan, catch-up (with rollback to the fork point) and live
//! connect/disconnect, keeping the index equal to the chain source's UTXO set.
//!
//! Crash safety rests on two rules. Every block is one atomic commit (entries, undo
//! record and metadata together), so a killed process restarts at block N or N+1.
//! A scan is built in `index.scan/` and only renamed to `index/` once complete, so a
//! killed scan leaves the previous index (or none) untouched; the next start deletes
//! the partial scan and scans again from scratch. We restart rather than resume
//! because the chainstate a restarted scan sees may be at another block than the
//! one the partial entries came from: merging the two would be wrong, and a scan
//! takes minutes.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};

use super::clock::{ClockGuard, EventClock};
use super::delta::{block_delta, keys_to_look_up};
use super::event_floor::EventFloor;
use super::scan::{scan_chainstate, ScanTarget};
use super::status::{SyncPhase, SyncStatus};
use super::SyncError;
use crate::chainstate::{Chainstate, ChainstateError};
use crate::format::undo::BlockSpent;
use crate::index::{
    BlockRef, EventKind, EventRecord, IndexBatch, IndexMeta, IndexStore, StoreOptions, SyncState,
    UndoRecord, UtxoKey, UtxoValue,
};
use crate::network::Network;
use crate::source::{ChainSource, SourceError};

/// Default number of blocks whose undo records are kept (OIP §7.2).
pub const DEFAULT_UNDO_RETENTION: u32 = 200;
/// Default number of block events kept for replay to clients that were away.
pub const DEFAULT_EVENT_RETENTION: usize = 10_000;

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Directory owned by OPNet (`<datadir>/opnet` by default); the index lives in
    /// `index/` below it.
    pub opnet_dir: PathBuf,
    pub network: Network,
    pub store: StoreOptions,
    /// Blocks of undo history kept; a reorg deeper than this forces a resync.
    pub undo_retention: u32,
    /// Chainstate reader threads for a fresh scan.
    pub readers: usize,
    /// Memory for sorting a fresh scan's entries before spilling to disk.
    pub scan_memory_bytes: usize,
    /// Block events kept in the index's event log (at least 1).
    pub event_retention: usize,
}

impl EngineConfig {
    /// Defaults: OIP cache sizes, 200 blocks of undo, max(2, cores − 2) readers.
    pub fn new(opnet_dir: &Path, network: Network) -> EngineConfig {
        EngineConfig {
            opnet_dir: opnet_dir.to_path_buf(),
            network,
            store: StoreOptions::default(),
            undo_retention: DEFAULT_UNDO_RETENTION,
            readers: default_readers(),
            scan_memory_bytes: 256 << 20,
            event_retention: DEFAULT_EVENT_RETENTION,
        }
    }

    /// The index directory: what a reindex deletes.
    pub fn index_dir(&self) -> PathBuf {
        self.opnet_dir.join("index")
    }

    fn scan_dir(&self) -> PathBuf {
        self.opnet_dir.join("index.scan")
    }

    fn sort_dir(&self) -> PathBuf {
        self.opnet_dir.join("index.sort")
    }
}

/// max(2, cores − 2): leave cores to bitcoind, but always read in parallel.
pub fn default_readers() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    cores.saturating_sub(2).max(2)
}

/// What happened to the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockEventKind {
    Connected,
    Disconnected,
    /// The index was rebuilt from a chainstate (a reorg deeper than the undo log):
    /// everything a subscriber derived from earlier events must be fetched again.
    Rebuilt,
}

/// A UTXO that appeared or disappeared, with what a scripthash subscriber is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventUtxo {
    pub key: UtxoKey,
    pub amount: u64,
    /// Height of the block that created it.
    pub height: u32,
}

/// A change of the index, as subscribers are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEvent {
    pub kind: BlockEventKind,
    /// Event number from the shared [`EventClock`]: persisted, never reused.
    pub seq: u64,
    pub height: u32,
    pub hash: [u8; 32],
    pub prev_hash: [u8; 32],
    /// Header timestamp and transaction count (connects; 0 otherwise).
    pub time: u32,
    pub tx_count: u32,
    /// Txids of the block's transactions (connects; empty otherwise).
    pub txids: Vec<[u8; 32]>,
    /// UTXOs that appeared and disappeared.
    pub added: Vec<EventUtxo>,
    pub removed: Vec<EventUtxo>,
}

impl BlockEvent {
    /// The event as logged for replay.
    pub fn record(&self) -> EventRecord {
        EventRecord {
            kind: match self.kind {
                BlockEventKind::Connected => EventKind::Connected,
                BlockEventKind::Disconnected => EventKind::Disconnected,
                BlockEventKind::Rebuilt => EventKind::Rebuilt,
            },
            seq: self.seq,
            height: self.height,
            hash: self.hash,
            prev_hash: self.prev_hash,
            time: self.time,
            tx_count: self.tx_count,
            added: self.added.len() as u32,
            removed: self.removed.len() as u32,
        }
    }
}

/// A chain notification from the host (bitcoind's callbacks, a follower, a replay).
#[derive(Clone, Debug)]
pub enum ChainEvent {
    Connected {
        block: Arc<Block>,
        height: u32,
        spent: Arc<BlockSpent>,
    },
    Disconnected {
        hash: BlockHash,
        height: u32,
    },
}

/// Where a catch-up ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// The index equals the source's tip.
    AtTip {
        height: u32,
        disconnected: u32,
        connected: u32,
    },
    /// The source's tip is an ancestor of the index's tip: nothing to do until it
    /// catches up (the index never rolls back to a lagging source).
    SourceBehind {
        index_height: u32,
        source_height: u32,
    },
}

/// Opens a chainstate snapshot to scan.
pub type ChainstateOpener<'a> = &'a dyn Fn() -> Result<Chainstate, ChainstateError>;

type Observer = Box<dyn FnMut(&BlockEvent, &mut ClockGuard<'_>) + Send>;
type IndexObserver = Box<dyn FnMut(&Arc<IndexStore>, &IndexMeta) + Send>;

/// The index and the logic that keeps it in step with the chain.
pub struct Engine {
    config: EngineConfig,
    store: Option<Arc<IndexStore>>,
    meta: Option<IndexMeta>,
    status: Arc<SyncStatus>,
    cancel: Arc<AtomicBool>,
    observer: Option<Observer>,
    index_observer: Option<IndexObserver>,
    clock: Arc<EventClock>,
    /// Numbers of the events in the index's log, oldest first.
    logged: VecDeque<u64>,
}

impl Engine {
    /// Opens the index under `config.opnet_dir`, finishing or discarding a scan an
    /// earlier process left behind. Refuses an index of another network or schema.
    pub fn open(config: EngineConfig) -> Result<Engine, SyncError> {
        std::fs::create_dir_all(&config.opnet_dir)
            .map_err(|e| SyncError::Io(format!("creating {}: {e}", config.opnet_dir.display())))?;
        recover_scan_dir(&config)?;
        let floor = EventFloor::open(&config.opnet_dir).map_err(SyncError::Io)?;
        // A new index numbers its events after every earlier index's.
        let new_index_base = floor.value();
        let mut engine = Engine {
            config,
            store: None,
            meta: None,
            status: Arc::new(SyncStatus::new()),
            cancel: Arc::new(AtomicBool::new(false)),
            observer: None,
            index_observer: None,
            clock: Arc::new(EventClock::with_floor(new_index_base, 0, floor)),
            logged: VecDeque::new(),
        };
        if engine.config.index_dir().exists() {
            let (store, meta) = IndexStore::open(
                &engine.config.index_dir(),
                engine.config.network,
                &engine.config.store,
            )?;
            let last = meta.as_ref().map(|m| m.event_seq).unwrap_or(new_index_base);
            engine.clock.reset(last, store.seq_reservation()?);
            engine.logged = store.events_after(0)?.iter().map(|e| e.seq).collect();
            engine.store = Some(Arc::new(store));
            engine.meta = meta;
            engine.prune_undo_below_retention()?;
        }
        if let Some(m) = &engine.meta {
            engine.status.set_heights(m.tip.height, m.tip.height);
            tracing::info!(height = m.tip.height, state = ?m.state, utxos = m.utxo_count, "opened index");
        }
        Ok(engine)
    }

    /// Calls `f` after every block the index connects or disconnects.
    /// The observer runs on the engine's thread while the event clock is held, after
    /// the block is committed: events it publishes are in number order, and it can
    /// number follow-up events (mempool transactions the block confirmed) itself.
    pub fn set_observer(
        &mut self,
        f: impl FnMut(&BlockEvent, &mut ClockGuard<'_>) + Send + 'static,
    ) {
        self.observer = Some(Box::new(f));
    }

    /// Calls `f` whenever the index's store or metadata changes (and once now, if an
    /// index exists), before the matching block event: whoever serves queries always
    /// holds the current store, and a query issued after an event sees its block.
    pub fn set_index_observer(
        &mut self,
        f: impl FnMut(&Arc<IndexStore>, &IndexMeta) + Send + 'static,
    ) {
        self.index_observer = Some(Box::new(f));
        self.index_changed();
    }

    fn index_changed(&mut self) {
        if let (Some(f), Some(store), Some(meta)) =
            (self.index_observer.as_mut(), &self.store, &self.meta)
        {
            f(store, meta);
        }
    }

    /// The counter that numbers every event; the mempool side takes its numbers
    /// from it too, so block and mempool events share one ordered sequence.
    pub fn event_clock(&self) -> Arc<EventClock> {
        self.clock.clone()
    }

    /// The metadata of the current index, `None` before the first scan completes.
    pub fn meta(&self) -> Option<&IndexMeta> {
        self.meta.as_ref()
    }

    /// The index store, for queries. `None` before the first scan completes.
    pub fn store(&self) -> Option<Arc<IndexStore>> {
        self.store.clone()
    }

    /// Shared progress counters.
    pub fn status(&self) -> Arc<SyncStatus> {
        self.status.clone()
    }

    /// Set to true to stop a running scan (shutdown); the scan returns `Cancelled`.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// True when the index must be (re)built from a chainstate.
    pub fn needs_scan(&self) -> bool {
        !matches!(&self.meta, Some(m) if m.state == SyncState::Ready)
    }

    /// Brings the index to the source's tip: a fresh scan when there is no usable
    /// index (none yet, or stale after a too-deep reorg), then catch-up.
    pub fn sync(
        &mut self,
        source: &dyn ChainSource,
        chainstate: ChainstateOpener,
    ) -> Result<CatchUp, SyncError> {
        self.check_network(source)?;
        // A reorg deeper than the undo log right after a scan would loop forever;
        // two rounds are enough for any real chain.
        for _ in 0..3 {
            if self.needs_scan() {
                self.fresh_scan(source, chainstate)?;
            }
            match self.catch_up(source) {
                Err(SyncError::NeedsResync(why)) => {
                    tracing::warn!(%why, "index must be rebuilt");
                    continue;
                }
                other => return other,
            }
        }
        Err(SyncError::NeedsResync(
            "the chain keeps reorganizing deeper than the undo log".into(),
        ))
    }

    fn check_network(&self, source: &dyn ChainSource) -> Result<(), SyncError> {
        if source.network() != self.config.network {
            return Err(SyncError::WrongNetwork {
                index: self.config.network,
                source: source.network(),
            });
        }
        Ok(())
    }

    /// Starts an empty index at the network's genesis block, for a chain replayed
    /// from its start (the genesis coinbase is unspendable, so the set is empty).
    pub fn init_at_genesis(&mut self) -> Result<(), SyncError> {
        if self.meta.is_some() {
            return Err(SyncError::NotReady("an index already exists here".into()));
        }
        // A run killed before its first commit leaves an open, empty store: reuse it.
        let store = match self.store.take() {
            Some(store) => store,
            None => Arc::new(
                IndexStore::open(
                    &self.config.index_dir(),
                    self.config.network,
                    &self.config.store,
                )?
                .0,
            ),
        };
        let genesis = BlockRef {
            height: 0,
            hash: self.config.network.genesis_hash().to_byte_array(),
        };
        let meta = IndexMeta {
            network: self.config.network,
            state: SyncState::Ready,
            tip: genesis,
            snapshot: genesis,
            utxo_count: 0,
            total_amount: 0,
            // After the numbers of an index deleted before this one, if any.
            event_seq: self.clock.last(),
        };
        store.commit(IndexBatch::new(), &meta)?;
        self.store = Some(store);
        self.meta = Some(meta);
        self.index_changed();
        Ok(())
    }

    /// Builds a new index from a chainstate snapshot at its best block, with undo
    /// records for the blocks below it (from the source's undo data) so a reorg
    /// across the snapshot is still undone exactly. Replaces the current index only
    /// once complete.
    pub fn fresh_scan(
        &mut self,
        source: &dyn ChainSource,
        chainstate: ChainstateOpener,
    ) -> Result<(), SyncError> {
        self.check_network(source)?;
        let cs = chainstate()?;
        let best = cs.best_block();
        let info = source
            .header(&best)?
            .ok_or_else(|| SyncError::SnapshotUnknown(best.to_string()))?;
        tracing::info!(dir = %cs.dir().display(), height = info.height, block = %best, "scanning chainstate");
        let (scan_dir, sort_dir) = (self.config.scan_dir(), self.config.sort_dir());
        IndexStore::destroy(&scan_dir)?;
        IndexStore::destroy(&sort_dir)?;
        let target = ScanTarget {
            dir: &scan_dir,
            spill_dir: &sort_dir,
            memory_bytes: self.config.scan_memory_bytes,
        };
        let scanned = scan_chainstate(
            &cs,
            &target,
            self.config.readers,
            &self.status,
            &self.cancel,
        );
        // Spill files are scratch whatever happened; a failed scan's tables too.
        IndexStore::destroy(&sort_dir)?;
        let totals = match scanned {
            Ok(t) => t,
            Err(e) => {
                IndexStore::destroy(&scan_dir)?;
                return Err(e);
            }
        };
        drop(cs);
        let (store, _) = IndexStore::open(&scan_dir, self.config.network, &self.config.store)?;
        let at = BlockRef {
            height: info.height,
            hash: best.to_byte_array(),
        };
        let meta = IndexMeta {
            network: self.config.network,
            state: SyncState::Ready,
            tip: at,
            snapshot: at,
            utxo_count: totals.utxos,
            total_amount: totals.amount,
            event_seq: 0,
        };
        // Also a rebuild: a new index after one that was deleted (its numbers are
        // below the floor the clock starts from).
        let rebuilt = self.meta.is_some() || self.clock.last() > 0;
        synthesize_undo(
            &store,
            source,
            best,
            info.height,
            self.config.undo_retention,
        )?;
        // Numbered and published under the clock, like every event.
        let clock = self.clock.clone();
        let mut clock = clock.lock();
        // A rebuild is an event of its own, so subscribers see the break.
        let event = BlockEvent {
            kind: BlockEventKind::Rebuilt,
            seq: if rebuilt {
                clock.reserve_next()?
            } else {
                clock.last()
            },
            height: info.height,
            hash: at.hash,
            prev_hash: info.header.prev_blockhash.to_byte_array(),
            time: 0,
            tx_count: 0,
            txids: Vec::new(),
            added: Vec::new(),
            removed: Vec::new(),
        };
        let meta = IndexMeta {
            event_seq: event.seq,
            ..meta
        };
        let mut batch = IndexBatch::new();
        if rebuilt {
            batch.put_event(&event.record());
        }
        // The Ready metadata last: until it is written the directory is discarded.
        store.commit(batch, &meta)?;
        drop(store);
        // Swap the finished scan in; handles to the old index stop answering.
        if let Some(old) = self.store.take() {
            old.retire();
        }
        install_scan_dir(&self.config)?;
        let (store, reopened) = IndexStore::open(
            &self.config.index_dir(),
            self.config.network,
            &self.config.store,
        )?;
        self.store = Some(Arc::new(store));
        self.meta = reopened;
        self.status.set_heights(info.height, info.height);
        self.logged.clear();
        self.index_changed();
        if rebuilt {
            clock.commit(event.seq);
            self.logged.push_back(event.seq);
            self.notify(&event, &mut clock);
        }
        Ok(())
    }

    /// Rolls back to the fork point with the source's chain (through the undo log),
    /// then connects the source's blocks up to its tip.
    pub fn catch_up(&mut self, source: &dyn ChainSource) -> Result<CatchUp, SyncError> {
        self.check_network(source)?;
        self.status.set_phase(SyncPhase::CatchingUp);
        let mut disconnected = 0;
        let mut connected = 0;
        // The source may move while we work (a follower's node mines on); start
        // over when a block no longer fits, a bounded number of times.
        for _ in 0..16 {
            let tip = source.tip()?;
            loop {
                let ours = self.ready_meta()?.tip;
                let on_source = source
                    .hash_at_height(ours.height)?
                    .map(|h| h.to_byte_array());
                if on_source == Some(ours.hash) {
                    break;
                }
                if ours.height > tip.height {
                    match self.our_hash_at(tip.height)? {
                        Some(h) if h == tip.hash.to_byte_array() => {
                            self.status.set_phase(SyncPhase::Live);
                            return Ok(CatchUp::SourceBehind {
                                index_height: ours.height,
                                source_height: tip.height,
                            });
                        }
                        // A fork: roll back below.
                        Some(_) => {}
                        // Beyond the undo log we cannot tell a lagging source (an old
                        // copy of a datadir) from a fork; never destroy the index on a
                        // guess.
                        None => {
                            return Err(SyncError::SourceTooFarBehind {
                                index_height: ours.height,
                                source_height: tip.height,
                            })
                        }
                    }
                }
                self.disconnect_tip()?;
                disconnected += 1;
            }
            let from = self.ready_meta()?.tip.height + 1;
            self.status.set_heights(from - 1, tip.height);
            let mut moved = false;
            for height in from..=tip.height {
                let Some(hash) = source.hash_at_height(height)? else {
                    moved = true;
                    break;
                };
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(SyncError::Cancelled);
                }
                let block = source.block(&hash)?;
                let spent = source.spent_outputs(&hash)?;
                match self.connect(&block, height, &spent) {
                    Ok(()) => connected += 1,
                    Err(SyncError::NotOnTip { .. }) => {
                        moved = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
                if height % 1000 == 0 {
                    tracing::info!(height, target = tip.height, "catching up");
                }
            }
            if !moved {
                let height = self.ready_meta()?.tip.height;
                self.status.set_heights(height, height);
                self.status.set_phase(SyncPhase::Live);
                return Ok(CatchUp::AtTip {
                    height,
                    disconnected,
                    connected,
                });
            }
        }
        Err(SyncError::Source(SourceError::Unavailable(
            "the source's chain kept changing during catch-up".into(),
        )))
    }

    /// Applies a host notification. Idempotent: a block already applied is skipped,
    /// and anything that does not fit the index's tip is resolved by a catch-up
    /// against the source, which is the truth.
    pub fn handle_event(
        &mut self,
        event: &ChainEvent,
        source: &dyn ChainSource,
    ) -> Result<(), SyncError> {
        let tip = self.ready_meta()?.tip;
        match event {
            ChainEvent::Connected {
                block,
                height,
                spent,
            } => {
                let hash = block.block_hash().to_byte_array();
                if *height == tip.height + 1
                    && block.header.prev_blockhash.to_byte_array() == tip.hash
                {
                    self.connect(block, *height, spent)?;
                    // The host's own notifications arrive as its tip moves: the index
                    // is following it.
                    self.status.set_phase(SyncPhase::Live);
                    return Ok(());
                }
                if *height <= tip.height && self.our_hash_at(*height)? == Some(hash) {
                    return Ok(());
                }
            }
            ChainEvent::Disconnected { hash, height } => {
                let hash = hash.to_byte_array();
                if *height == tip.height && hash == tip.hash {
                    self.disconnect_tip()?;
                    self.status.set_phase(SyncPhase::Live);
                    return Ok(());
                }
                if *height > tip.height || self.our_hash_at(*height)? != Some(hash) {
                    return Ok(());
                }
            }
        }
        self.catch_up(source).map(|_| ())
    }

    /// Connects `block` at `height` on top of the index's tip, in one atomic commit.
    pub fn connect(
        &mut self,
        block: &Block,
        height: u32,
        spent: &BlockSpent,
    ) -> Result<(), SyncError> {
        let meta = self.ready_meta()?.clone();
        let store = self.ready_store()?;
        let prev = block.header.prev_blockhash.to_byte_array();
        if height != meta.tip.height + 1 || prev != meta.tip.hash {
            return Err(SyncError::NotOnTip {
                block: block.block_hash().to_string(),
                height,
                tip_height: meta.tip.height,
            });
        }
        // Entries the source gave no height for are read in one pass, up front.
        let wanted = keys_to_look_up(block, spent);
        let found: HashMap<UtxoKey, UtxoValue> = if wanted.is_empty() {
            HashMap::new()
        } else {
            let values = store.get_utxos(&wanted)?;
            wanted
                .into_iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect()
        };
        let delta = block_delta(block, height, spent, &mut |k| Ok(found.get(k).cloned()))?;
        let mut batch = IndexBatch::new();
        for (k, _) in &delta.undo.spent {
            batch.delete_utxo(k);
        }
        for (k, v) in &delta.created {
            batch.put_utxo(k, v);
        }
        let retention = self.config.undo_retention;
        if retention > 0 {
            batch.put_undo(&delta.undo);
            if height >= retention {
                batch.delete_undo(height - retention);
            }
        }
        let utxo_count = (meta.utxo_count + delta.created.len() as u64)
            .checked_sub(delta.undo.spent.len() as u64)
            .ok_or_else(|| {
                SyncError::Inconsistent(format!(
                    "block {height} spends more UTXOs than the index holds"
                ))
            })?;
        let total_amount = (meta.total_amount + delta.created_amount)
            .checked_sub(delta.spent_amount)
            .ok_or_else(|| {
                SyncError::Inconsistent(format!(
                    "block {height} spends more sats than the index holds"
                ))
            })?;
        let clock = self.clock.clone();
        let mut clock = clock.lock();
        let event = BlockEvent {
            kind: BlockEventKind::Connected,
            seq: clock.reserve_next()?,
            height,
            hash: delta.undo.block_hash,
            prev_hash: prev,
            time: block.header.time,
            tx_count: block.txdata.len() as u32,
            txids: delta.txids,
            added: created_utxos(&delta.undo, height),
            removed: spent_utxos(&delta.undo),
        };
        let new_meta = IndexMeta {
            tip: BlockRef {
                height,
                hash: delta.undo.block_hash,
            },
            utxo_count,
            total_amount,
            event_seq: event.seq,
            ..meta
        };
        let pruned = self.log_event(&mut batch, &event);
        store.commit(batch, &new_meta)?;
        clock.commit(event.seq);
        self.logged_committed(&event, pruned);
        self.meta = Some(new_meta);
        self.status
            .set_heights(height, height.max(self.status.snapshot().target_height));
        self.index_changed();
        self.notify(&event, &mut clock);
        Ok(())
    }

    /// Disconnects the index's tip block using its undo record. Without one (a reorg
    /// deeper than the retention) the index is marked stale and `NeedsResync` returned.
    pub fn disconnect_tip(&mut self) -> Result<(), SyncError> {
        let meta = self.ready_meta()?.clone();
        let store = self.ready_store()?;
        let Some(undo) = store.get_undo(meta.tip.height)? else {
            let stale = IndexMeta {
                state: SyncState::Stale,
                ..meta.clone()
            };
            store.commit(IndexBatch::new(), &stale)?;
            self.meta = Some(stale);
            self.index_changed();
            return Err(SyncError::NeedsResync(format!(
                "no undo record for height {} (retention {} blocks)",
                meta.tip.height, self.config.undo_retention
            )));
        };
        if undo.block_hash != meta.tip.hash {
            return Err(SyncError::Index(crate::index::IndexError::Corrupt(
                format!(
                    "undo record at height {} is for another block",
                    meta.tip.height
                ),
            )));
        }
        let mut batch = IndexBatch::new();
        let mut created_amount = 0u64;
        for (k, amount) in &undo.created {
            created_amount += amount;
            batch.delete_utxo(k);
        }
        let mut spent_amount = 0u64;
        for (k, v) in &undo.spent {
            spent_amount += v.amount;
            batch.put_utxo(k, v);
        }
        batch.delete_undo(meta.tip.height);
        let utxo_count = (meta.utxo_count + undo.spent.len() as u64)
            .checked_sub(undo.created.len() as u64)
            .ok_or_else(|| SyncError::Inconsistent("UTXO count underflow on disconnect".into()))?;
        let total_amount = (meta.total_amount + spent_amount)
            .checked_sub(created_amount)
            .ok_or_else(|| SyncError::Inconsistent("amount underflow on disconnect".into()))?;
        let clock = self.clock.clone();
        let mut clock = clock.lock();
        let height = meta.tip.height;
        let event = BlockEvent {
            kind: BlockEventKind::Disconnected,
            seq: clock.reserve_next()?,
            height,
            hash: undo.block_hash,
            prev_hash: undo.prev_hash,
            time: 0,
            tx_count: 0,
            txids: Vec::new(),
            added: spent_utxos(&undo),
            removed: created_utxos(&undo, height),
        };
        let new_meta = IndexMeta {
            tip: BlockRef {
                height: meta.tip.height - 1,
                hash: undo.prev_hash,
            },
            utxo_count,
            total_amount,
            event_seq: event.seq,
            ..meta.clone()
        };
        let pruned = self.log_event(&mut batch, &event);
        store.commit(batch, &new_meta)?;
        clock.commit(event.seq);
        self.logged_committed(&event, pruned);
        self.meta = Some(new_meta);
        self.status
            .set_heights(meta.tip.height - 1, self.status.snapshot().target_height);
        self.index_changed();
        self.notify(&event, &mut clock);
        Ok(())
    }

    /// Adds `event` to the batch's log and drops the oldest records beyond the
    /// retention; returns how many it dropped (applied to `logged` after the commit).
    fn log_event(&self, batch: &mut IndexBatch, event: &BlockEvent) -> usize {
        batch.put_event(&event.record());
        let keep = self.config.event_retention.max(1);
        let excess = (self.logged.len() + 1).saturating_sub(keep);
        for seq in self.logged.iter().take(excess) {
            batch.delete_event(*seq);
        }
        excess
    }

    fn logged_committed(&mut self, event: &BlockEvent, pruned: usize) {
        self.logged.drain(..pruned.min(self.logged.len()));
        self.logged.push_back(event.seq);
    }

    fn notify(&mut self, event: &BlockEvent, clock: &mut ClockGuard<'_>) {
        tracing::debug!(
            kind = ?event.kind,
            height = event.height,
            seq = event.seq,
            "block applied"
        );
        if let Some(f) = self.observer.as_mut() {
            f(event, clock);
        }
    }

    /// The hash the index has at `height` (known for the tip and the undo window).
    fn our_hash_at(&self, height: u32) -> Result<Option<[u8; 32]>, SyncError> {
        let meta = self.ready_meta()?;
        if height == meta.tip.height {
            return Ok(Some(meta.tip.hash));
        }
        if height > meta.tip.height {
            return Ok(None);
        }
        Ok(self.ready_store()?.get_undo(height)?.map(|u| u.block_hash))
    }

    fn ready_meta(&self) -> Result<&IndexMeta, SyncError> {
        match &self.meta {
            Some(m) if m.state == SyncState::Ready => Ok(m),
            Some(m) => Err(SyncError::NotReady(format!("index is {:?}", m.state))),
            None => Err(SyncError::NotReady("no index yet".into())),
        }
    }

    fn ready_store(&self) -> Result<Arc<IndexStore>, SyncError> {
        self.store
            .clone()
            .ok_or_else(|| SyncError::NotReady("no index yet".into()))
    }

    /// Drops undo records that fell out of the window (e.g. retention was lowered).
    fn prune_undo_below_retention(&mut self) -> Result<(), SyncError> {
        let (Some(store), Some(meta)) = (&self.store, &self.meta) else {
            return Ok(());
        };
        let keep_from = meta.tip.height.saturating_sub(self.config.undo_retention) + 1;
        let mut batch = IndexBatch::new();
        for h in store.undo_heights()? {
            if h < keep_from || self.config.undo_retention == 0 {
                batch.delete_undo(h);
            }
        }
        if !batch.is_empty() {
            store.commit(batch, meta)?;
        }
        Ok(())
    }
}

/// The UTXOs a block created, as events report them.
fn created_utxos(undo: &UndoRecord, height: u32) -> Vec<EventUtxo> {
    undo.created
        .iter()
        .map(|(k, amount)| EventUtxo {
            key: *k,
            amount: *amount,
            height,
        })
        .collect()
}

/// The UTXOs a block spent, as events report them.
fn spent_utxos(undo: &UndoRecord) -> Vec<EventUtxo> {
    undo.spent
        .iter()
        .map(|(k, v)| EventUtxo {
            key: *k,
            amount: v.amount,
            height: v.height,
        })
        .collect()
}

/// Builds undo records for up to `retention` blocks ending at the snapshot block,
/// from the source's undo data (which must carry heights).
fn synthesize_undo(
    store: &IndexStore,
    source: &dyn ChainSource,
    best: BlockHash,
    best_height: u32,
    retention: u32,
) -> Result<(), SyncError> {
    // Records are 1-2 MB each on mainnet: written a few at a time, not in one batch.
    const RECORDS_PER_WRITE: usize = 8;
    let mut batch = IndexBatch::new();
    let (mut hash, mut height) = (best, best_height);
    for _ in 0..retention {
        if height == 0 {
            break;
        }
        let fetched = source
            .block(&hash)
            .and_then(|b| Ok((b, source.spent_outputs(&hash)?)));
        let (block, spent) = match fetched {
            Ok(pair) => pair,
            // A pruned node, or data the source no longer has: history stops here.
            Err(SourceError::NotFound(why)) => {
                tracing::warn!(height, %why, "undo history below the snapshot stops here");
                break;
            }
            Err(e) => return Err(e.into()),
        };
        if spent
            .iter()
            .flatten()
            .any(|s| s.height.is_none() || s.coinbase.is_none())
        {
            tracing::warn!(
                height,
                "source gives no heights for spent outputs; no undo history below the snapshot"
            );
            break;
        }
        let delta = block_delta(&block, height, &spent, &mut |_| Ok(None))?;
        batch.put_undo(&delta.undo);
        if batch.len() >= RECORDS_PER_WRITE {
            store.write(std::mem::take(&mut batch))?;
        }
        hash = block.header.prev_blockhash;
        height -= 1;
    }
    if !batch.is_empty() {
        store.write(batch)?;
    }
    Ok(())
}

/// Deals with what an earlier process's scan left: spill files are deleted, a
/// complete `index.scan/` (killed between finishing and renaming) is installed, a
/// partial one deleted.
fn recover_scan_dir(config: &EngineConfig) -> Result<(), SyncError> {
    IndexStore::destroy(&config.sort_dir())?;
    let scan_dir = config.scan_dir();
    if !scan_dir.exists() {
        return Ok(());
    }
    // Without CURRENT the bulk writer had not finished: not a database yet.
    let complete = scan_dir.join("CURRENT").exists() && {
        let (_, meta) = IndexStore::open(&scan_dir, config.network, &config.store)?;
        matches!(meta, Some(m) if m.state == SyncState::Ready)
    };
    if complete {
        tracing::info!("installing a completed scan left by a previous run");
        install_scan_dir(config)
    } else {
        tracing::warn!(dir = %scan_dir.display(), "discarding an interrupted scan; it will start again");
        Ok(IndexStore::destroy(&scan_dir)?)
    }
}

fn install_scan_dir(config: &EngineConfig) -> Result<(), SyncError> {
    IndexStore::destroy(&config.index_dir())?;
    std::fs::rename(config.scan_dir(), config.index_dir()).map_err(|e| {
        SyncError::Io(format!(
            "renaming {} to {}: {e}",
            config.scan_dir().display(),
            config.index_dir().display()
        ))
    })
}
