//! The index LevelDB (rusty-leveldb): opening it with the right options, atomic
//! commits, and the reads the sync engine and the query path need.
//!
//! rusty-leveldb's `DB` is `Send` but not `Sync`, so it lives behind a mutex. Writes
//! are one `WriteBatch` per block (entries + undo record + metadata together), so a
//! crash leaves the index at block N or N+1, never in between.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError};

use rusty_leveldb::{LdbIterator, Options, WriteBatch, DB};

use super::checked_env::{CheckedEnv, Damage};

use super::entry::UtxoValue;
use super::events::{self, EventRecord, EVENT_PREFIX, SEQ_RESERVATION_KEY};
use super::keys::{self, ScriptHash, UtxoKey, META_KEY, UNDO_PREFIX, UTXO_PREFIX};
use super::meta::IndexMeta;
use super::undo::UndoRecord;
use super::IndexError;
use crate::network::Network;

/// Tuning of the index database (OIP §12.1 defaults).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// LevelDB block cache: hot index blocks kept in memory.
    pub block_cache_bytes: usize,
    /// Memtable size before it is flushed to a table file.
    pub write_buffer_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 64 << 20,
        }
    }
}

/// The changes of one atomic commit, in the index's key layout.
#[derive(Default)]
pub struct IndexBatch {
    inner: WriteBatch,
    ops: usize,
}

impl IndexBatch {
    /// An empty batch.
    pub fn new() -> IndexBatch {
        IndexBatch::default()
    }

    /// Adds (or overwrites) a UTXO entry.
    pub fn put_utxo(&mut self, key: &UtxoKey, value: &UtxoValue) {
        self.inner.put(&key.encode(), &value.to_bytes());
        self.ops += 1;
    }

    /// Removes a UTXO entry.
    pub fn delete_utxo(&mut self, key: &UtxoKey) {
        self.inner.delete(&key.encode());
        self.ops += 1;
    }

    /// Stores the undo record of a block.
    pub fn put_undo(&mut self, record: &UndoRecord) {
        self.inner
            .put(&keys::undo_key(record.height), &record.encode());
        self.ops += 1;
    }

    /// Drops the undo record of the block at `height`.
    pub fn delete_undo(&mut self, height: u32) {
        self.inner.delete(&keys::undo_key(height));
        self.ops += 1;
    }

    /// Logs a block event, so it can be replayed to clients after a restart.
    pub fn put_event(&mut self, record: &EventRecord) {
        self.inner
            .put(&events::event_key(record.seq), &record.encode());
        self.ops += 1;
    }

    /// Drops a logged event that fell out of the retention window.
    pub fn delete_event(&mut self, seq: u64) {
        self.inner.delete(&events::event_key(seq));
        self.ops += 1;
    }

    /// Number of operations queued.
    pub fn len(&self) -> usize {
        self.ops
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }
}

/// The open index database.
pub struct IndexStore {
    dir: PathBuf,
    network: Network,
    db: Mutex<DB>,
    /// Whether a table read has failed (rusty-leveldb may have gone on without the
    /// block): checked after every operation, see [`super::checked_env`].
    damage: Arc<Damage>,
    /// Set when a rebuilt index replaced this one: holders of an old handle get
    /// `Superseded` instead of reading a deleted database.
    retired: AtomicBool,
    /// True while a write holds the database or waits for it (it may compact for a
    /// long time): the server then moves queries off its event loop.
    writing: AtomicBool,
    /// Shared by [`IndexStore::read_now`] readers for their whole read, exclusive
    /// for a writer before it takes the database: a write waits for those reads,
    /// and they never wait for a write.
    read_now_gate: RwLock<()>,
}

impl IndexStore {
    /// Opens (creating if missing) the index in `dir` and reads its metadata, refusing
    /// an index of another network or schema. `None` metadata means a new, empty index.
    pub fn open(
        dir: &Path,
        network: Network,
        options: &StoreOptions,
    ) -> Result<(IndexStore, Option<IndexMeta>), IndexError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| IndexError::Io(format!("creating {}: {e}", dir.display())))?;
        let damage = Damage::open(dir)?;
        let opt = Options {
            env: Rc::new(Box::new(CheckedEnv::new(Arc::clone(&damage)))),
            create_if_missing: true,
            paranoid_checks: true,
            block_cache_capacity_bytes: options.block_cache_bytes,
            write_buffer_size: options.write_buffer_bytes,
            // rusty-leveldb would append to a log whose tail a crash tore, and the
            // next recovery then splices the torn bytes into a record and panics
            // (found by tests/crash_restart.rs). A fresh log after every open
            // keeps a torn tail at the very end, where recovery drops it.
            reuse_logs: false,
            reuse_manifest: false,
            ..Options::default()
        };
        // Any other panic in rusty-leveldb's recovery is reported as corruption
        // rather than taking the host process down.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| DB::open(dir, opt)));
        // Recovery may have read (and compacted) tables: a damaged one fails the open.
        damage.check()?;
        let db = match opened {
            Ok(result) => result.map_err(|e| db_error("opening", dir, e))?,
            Err(_) => {
                return Err(IndexError::Corrupt(format!(
                    "LevelDB recovery of {} failed",
                    dir.display()
                )))
            }
        };
        let store = IndexStore {
            dir: dir.to_path_buf(),
            network,
            db: Mutex::new(db),
            damage,
            retired: AtomicBool::new(false),
            writing: AtomicBool::new(false),
            read_now_gate: RwLock::new(()),
        };
        let meta = store.read_meta()?;
        Ok((store, meta))
    }

    /// Deletes an index directory and everything in it (a resync starts from nothing).
    pub fn destroy(dir: &Path) -> Result<(), IndexError> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IndexError::Io(format!("removing {}: {e}", dir.display()))),
        }
    }

    /// Directory of the database.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Marks this handle as replaced by a rebuilt index; every later call fails
    /// with `Superseded` (the caller should ask the engine for the new store).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    fn lock(&self) -> Result<MutexGuard<'_, DB>, IndexError> {
        if self.retired.load(Ordering::Acquire) {
            return Err(IndexError::Superseded);
        }
        self.damage.check()?;
        // A poisoned lock means a thread panicked mid-operation; what is on disk is
        // consistent (one atomic batch per block), but we refuse to guess about
        // the in-memory state: a restart reopens it.
        self.db.lock().map_err(|_| {
            IndexError::Db(
                "an index operation panicked earlier; restart to reopen the index (what is on disk is consistent)"
                    .into(),
            )
        })
    }

    /// A point read through a seek of the merging iterator. rusty-leveldb's own
    /// `get` misses keys its iterator returns once compactions have rewritten
    /// neighbouring keys (tests/index_store.rs reproduces it), and it turns read
    /// errors into "absent"; the iterator merges memtable and levels correctly.
    /// A damaged table read on the way fails the read instead of the iterator's
    /// answer from the tables it could read.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, IndexError> {
        let mut db = self.lock()?;
        let mut it = db
            .new_iter()
            .map_err(|e| IndexError::Db(format!("reading index: {e}")))?;
        it.seek(key);
        let found = match it.current() {
            Some((k, v)) if k.as_ref() == key => Some(v.to_vec()),
            _ => None,
        };
        self.damage.check()?;
        Ok(found)
    }

    /// Reads the metadata record.
    pub fn read_meta(&self) -> Result<Option<IndexMeta>, IndexError> {
        match self.get(META_KEY)? {
            None => Ok(None),
            Some(bytes) => IndexMeta::decode(&bytes, self.network).map(Some),
        }
    }

    /// Looks up one UTXO entry.
    pub fn get_utxo(&self, key: &UtxoKey) -> Result<Option<UtxoValue>, IndexError> {
        match self.get(&key.encode())? {
            None => Ok(None),
            Some(bytes) => UtxoValue::decode(&bytes).map(Some),
        }
    }

    /// Looks up many UTXO entries with one iterator, seeking them in key order
    /// (a spent-output check of a whole block costs one iterator, not thousands).
    /// Results are in the order of `keys`.
    pub fn get_utxos(&self, keys: &[UtxoKey]) -> Result<Vec<Option<UtxoValue>>, IndexError> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
        let mut out = vec![None; keys.len()];
        let mut db = self.lock()?;
        let mut it = db
            .new_iter()
            .map_err(|e| IndexError::Db(format!("reading index: {e}")))?;
        for i in order {
            let key = keys[i].encode();
            it.seek(&key);
            if let Some((k, v)) = it.current() {
                if k.as_ref() == key {
                    out[i] = Some(UtxoValue::decode(&v)?);
                }
            }
        }
        self.damage.check()?;
        Ok(out)
    }

    /// Reads the undo record of the block at `height`, if still retained.
    pub fn get_undo(&self, height: u32) -> Result<Option<UndoRecord>, IndexError> {
        match self.get(&keys::undo_key(height))? {
            None => Ok(None),
            Some(bytes) => {
                let rec = UndoRecord::decode(&bytes)?;
                if rec.height != height {
                    return Err(IndexError::Corrupt(format!(
                        "undo record under height {height} says height {}",
                        rec.height
                    )));
                }
                Ok(Some(rec))
            }
        }
    }

    /// Applies `batch` and the new metadata atomically, flushed to the OS before it
    /// returns (a killed process loses nothing that was committed).
    pub fn commit(&self, mut batch: IndexBatch, meta: &IndexMeta) -> Result<(), IndexError> {
        batch.inner.put(META_KEY, &meta.encode());
        self.write_batch(batch.inner)
    }

    /// True while a write is in progress or waiting (a reader would wait for it).
    pub fn is_writing(&self) -> bool {
        self.writing.load(Ordering::Relaxed)
    }

    /// Runs `f` now, on this thread, if no write holds the index or waits for it,
    /// and keeps writes out until `f` returns: reads inside `f` never wait for a
    /// write, however long it compacts. `None`, without running `f`, when a write is
    /// in progress or waiting: read from a thread that may block instead. For short
    /// reads (the server runs small queries on its event loop this way); a write
    /// waits for `f` as it would for any reader.
    ///
    /// Checking [`IndexStore::is_writing`] and then reading is not enough: a write
    /// that starts between the two takes the database first and the read waits for
    /// all of it.
    pub fn read_now<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        if self.writing.load(Ordering::Relaxed) {
            return None;
        }
        let _gate = match self.read_now_gate.try_read() {
            Ok(gate) => gate,
            // The gate guards nothing but its own state: a panic cannot corrupt it.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(f())
    }

    fn write_batch(&self, batch: WriteBatch) -> Result<(), IndexError> {
        self.writing.store(true, Ordering::Relaxed);
        let gate = self
            .read_now_gate
            .write()
            .unwrap_or_else(|p| p.into_inner());
        // A compaction inside the write may have met a damaged table.
        let result = self.lock().and_then(|mut db| {
            let written = db
                .write(batch, true)
                .map_err(|e| db_error("writing", &self.dir, e));
            self.damage.check().and(written)
        });
        drop(gate);
        self.writing.store(false, Ordering::Relaxed);
        result
    }

    /// Applies `batch` without touching the metadata: only for building a new index
    /// (a scan's undo history), which is discarded unless its metadata is written
    /// last. Every other change goes through [`IndexStore::commit`].
    pub fn write(&self, batch: IndexBatch) -> Result<(), IndexError> {
        self.write_batch(batch.inner)
    }

    /// Up to `limit` UTXOs of a script, in key order, starting after `after` (a cursor:
    /// the last key of the previous page). The flag says whether more remain.
    pub fn script_utxos(
        &self,
        script_hash: &ScriptHash,
        after: Option<&UtxoKey>,
        limit: usize,
    ) -> Result<(Vec<(UtxoKey, UtxoValue)>, bool), IndexError> {
        let mut out = Vec::new();
        let mut more = false;
        self.visit_script(script_hash, after, |key, value| {
            if out.len() == limit {
                more = true;
                return Ok(false);
            }
            out.push((key, value));
            Ok(true)
        })?;
        Ok((out, more))
    }

    /// Calls `f` for every UTXO entry in key order (verification and statistics).
    pub fn for_each_utxo(
        &self,
        mut f: impl FnMut(UtxoKey, UtxoValue) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        self.scan_range(&[UTXO_PREFIX], &[UTXO_PREFIX + 1], |k, v| {
            let key = UtxoKey::decode(k)
                .ok_or_else(|| IndexError::Corrupt("malformed UTXO key".into()))?;
            f(key, UtxoValue::decode(v)?)?;
            Ok(true)
        })
    }

    /// Visits the UTXOs of a script in key order, starting after `after`, until `f`
    /// returns false. The query path filters and sorts on top of it.
    pub fn visit_script(
        &self,
        script_hash: &ScriptHash,
        after: Option<&UtxoKey>,
        mut f: impl FnMut(UtxoKey, UtxoValue) -> Result<bool, IndexError>,
    ) -> Result<(), IndexError> {
        let start = match after {
            Some(k) => {
                if &k.script_hash != script_hash {
                    return Err(IndexError::BadCursor);
                }
                k.encode().to_vec()
            }
            None => keys::script_range_start(script_hash).to_vec(),
        };
        let end = keys::script_range_end(script_hash);
        self.scan_range(&start, &end, |k, v| {
            if after.is_some() && k == start.as_slice() {
                return Ok(true);
            }
            let key = UtxoKey::decode(k)
                .ok_or_else(|| IndexError::Corrupt("malformed UTXO key".into()))?;
            f(key, UtxoValue::decode(v)?)
        })
    }

    /// Logged block events with a number above `after`, ascending.
    pub fn events_after(&self, after: u64) -> Result<Vec<EventRecord>, IndexError> {
        let mut out = Vec::new();
        let start = events::event_key(after.saturating_add(1));
        self.scan_range(&start, &[EVENT_PREFIX + 1], |k, v| {
            let seq = events::event_key_seq(k)
                .ok_or_else(|| IndexError::Corrupt("malformed event key".into()))?;
            let record = EventRecord::decode(v)?;
            if record.seq != seq {
                return Err(IndexError::Corrupt(format!(
                    "event record under number {seq} says {}",
                    record.seq
                )));
            }
            out.push(record);
            Ok(true)
        })?;
        Ok(out)
    }

    /// The highest event number reserved for mempool events (0 when none).
    pub fn seq_reservation(&self) -> Result<u64, IndexError> {
        match self.get(SEQ_RESERVATION_KEY)? {
            None => Ok(0),
            Some(bytes) => {
                let arr: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    IndexError::Corrupt(format!("event reservation of {} bytes", bytes.len()))
                })?;
                Ok(u64::from_le_bytes(arr))
            }
        }
    }

    /// Records that event numbers up to `through` may have been handed out, durably,
    /// before any of them is.
    pub fn reserve_seq(&self, through: u64) -> Result<(), IndexError> {
        let mut batch = WriteBatch::default();
        batch.put(SEQ_RESERVATION_KEY, &through.to_le_bytes());
        self.write_batch(batch)
    }

    /// Heights that have an undo record, ascending.
    pub fn undo_heights(&self) -> Result<Vec<u32>, IndexError> {
        let mut heights = Vec::new();
        self.scan_range(&[UNDO_PREFIX], &[UNDO_PREFIX + 1], |k, _| {
            heights.push(
                keys::undo_key_height(k)
                    .ok_or_else(|| IndexError::Corrupt("malformed undo key".into()))?,
            );
            Ok(true)
        })?;
        Ok(heights)
    }

    /// Visits keys in `[start, end)` under one snapshot until `f` returns false.
    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool, IndexError>,
    ) -> Result<(), IndexError> {
        let mut db = self.lock()?;
        let mut it = db
            .new_iter()
            .map_err(|e| IndexError::Db(format!("iterating index: {e}")))?;
        it.seek(start);
        while it.valid() {
            let Some((k, v)) = it.current() else { break };
            if k.as_ref() >= end {
                break;
            }
            // Checked before every entry: past a damaged block, the next entry
            // may come after keys the iterator left out.
            self.damage.check()?;
            if !f(&k, &v)? {
                break;
            }
            if !it.advance() {
                break;
            }
        }
        self.damage.check()
    }
}

fn db_error(action: &str, dir: &Path, e: rusty_leveldb::Status) -> IndexError {
    IndexError::Db(format!("{action} index {}: {e}", dir.display()))
}
