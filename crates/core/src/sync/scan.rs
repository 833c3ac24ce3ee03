//! The fresh scan: N reader threads decode disjoint key ranges of a chainstate
//! snapshot and hand encoded entries to one writer through a bounded channel, so
//! memory stays bounded whatever the UTXO count.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::bounded;

use super::status::SyncStatus;
use super::SyncError;
use crate::chainstate::{Chainstate, CoinRange};
use crate::index::{script_hash, IndexBatch, IndexMeta, IndexStore, UtxoKey, UtxoValue};

/// Entries a reader packs before handing them over.
const CHUNK_ENTRIES: usize = 4096;
/// Entries the writer gathers into one LevelDB write.
const BATCH_ENTRIES: usize = 100_000;
/// Key ranges per reader: small ranges balance the readers' load.
const RANGES_PER_READER: usize = 16;

/// Totals of a finished scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanTotals {
    pub utxos: u64,
    pub amount: u64,
}

/// Encoded entries from one reader: `key (69) | value length (u32 LE) | value`.
struct Chunk {
    bytes: Vec<u8>,
    entries: usize,
    amount: u64,
}

/// Reads every coin of `chainstate` with `readers` threads and writes the index
/// entries into `store`, committing `meta` (state `Scanning`) with each write.
pub fn scan_chainstate(
    chainstate: &Chainstate,
    store: &IndexStore,
    meta: &IndexMeta,
    readers: usize,
    status: &SyncStatus,
    cancel: &AtomicBool,
) -> Result<ScanTotals, SyncError> {
    let readers = readers.max(1);
    let ranges = Chainstate::key_ranges(readers * RANGES_PER_READER);
    let next_range = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<SyncError>> = Mutex::new(None);
    let (tx, rx) = bounded::<Chunk>(readers * 4);
    status.begin_scan(chainstate.approximate_size());
    let started = Instant::now();

    let result = std::thread::scope(|scope| {
        for _ in 0..readers {
            let tx = tx.clone();
            let (ranges, next_range, stop, failure) = (&ranges, &next_range, &stop, &failure);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
                    let i = next_range.fetch_add(1, Ordering::Relaxed);
                    let Some(range) = ranges.get(i) else { break };
                    if let Err(e) = read_range(chainstate, range, &tx, stop, cancel, status) {
                        stop.store(true, Ordering::Relaxed);
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
        drop(tx);
        write_chunks(rx.into_iter(), store, meta, &stop)
    });
    if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let totals = result?;
    if cancel.load(Ordering::Relaxed) {
        return Err(SyncError::Cancelled);
    }
    tracing::info!(
        utxos = totals.utxos,
        amount = totals.amount,
        secs = started.elapsed().as_secs_f64(),
        "chainstate scan finished"
    );
    Ok(totals)
}

fn read_range(
    chainstate: &Chainstate,
    range: &CoinRange,
    tx: &crossbeam_channel::Sender<Chunk>,
    stop: &AtomicBool,
    cancel: &AtomicBool,
    status: &SyncStatus,
) -> Result<(), SyncError> {
    let mut chunk = new_chunk();
    let mut bytes_read = 0u64;
    let mut value = Vec::new();
    chainstate.scan(range, |txid, vout, coin, record_len| {
        bytes_read += record_len as u64;
        if crate::sync::delta::is_unspendable(&coin.script) {
            // Bitcoin Core never stores these; a chainstate holding one is not Core's.
            return Ok(true);
        }
        let key = UtxoKey {
            script_hash: script_hash(&coin.script),
            txid: *txid,
            vout,
        };
        let v = UtxoValue {
            amount: coin.amount,
            height: coin.height,
            coinbase: coin.coinbase,
            script: coin.script,
        };
        value.clear();
        v.encode(&mut value);
        chunk.bytes.extend_from_slice(&key.encode());
        chunk
            .bytes
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        chunk.bytes.extend_from_slice(&value);
        chunk.entries += 1;
        chunk.amount += v.amount;
        if chunk.entries == CHUNK_ENTRIES {
            status.add_scanned(chunk.entries as u64, bytes_read);
            bytes_read = 0;
            let full = std::mem::replace(&mut chunk, new_chunk());
            if tx.send(full).is_err()
                || stop.load(Ordering::Relaxed)
                || cancel.load(Ordering::Relaxed)
            {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    status.add_scanned(chunk.entries as u64, bytes_read);
    if chunk.entries > 0 {
        let _ = tx.send(chunk);
    }
    Ok(())
}

fn new_chunk() -> Chunk {
    Chunk {
        bytes: Vec::with_capacity(CHUNK_ENTRIES * 110),
        entries: 0,
        amount: 0,
    }
}

fn write_chunks(
    chunks: impl Iterator<Item = Chunk>,
    store: &IndexStore,
    meta: &IndexMeta,
    stop: &AtomicBool,
) -> Result<ScanTotals, SyncError> {
    let mut totals = ScanTotals::default();
    let mut batch = IndexBatch::new();
    for chunk in chunks {
        let mut buf = chunk.bytes.as_slice();
        while !buf.is_empty() {
            let (key, rest) = buf.split_at(69);
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let (value, rest) = rest[4..].split_at(len);
            batch.put_utxo_raw(key, value);
            buf = rest;
        }
        totals.utxos += chunk.entries as u64;
        totals.amount += chunk.amount;
        if batch.len() >= BATCH_ENTRIES {
            if let Err(e) = store.commit(std::mem::take(&mut batch), meta) {
                stop.store(true, Ordering::Relaxed);
                return Err(e.into());
            }
        }
    }
    if !batch.is_empty() {
        store.commit(batch, meta)?;
    }
    Ok(totals)
}
