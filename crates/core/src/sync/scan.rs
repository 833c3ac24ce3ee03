//! The fresh scan: N reader threads decode disjoint key ranges of a chainstate
//! snapshot and hand encoded entries to one writer through a bounded channel; the
//! writer sorts them by key with bounded memory and writes sorted tables directly
//! (no memtable, no log, no compactions), so memory stays bounded whatever the UTXO
//! count and each entry is written about twice (spill file, table) instead of the
//! ten-odd times LevelDB's compactions would rewrite randomly inserted keys.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::bounded;

use super::status::SyncStatus;
use super::SyncError;
use crate::chainstate::{Chainstate, CoinRange};
use crate::index::bulk::{BucketSorter, SortError};
use crate::index::{script_hash, IndexError, UtxoKey, UtxoValue};
use crate::leveldb::writer::{BulkWriter, BulkWriterOptions};

/// Entries a reader packs before handing them over.
const CHUNK_ENTRIES: usize = 4096;
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

/// Where the scan writes and how much memory it may hold.
pub struct ScanTarget<'a> {
    /// New database directory (must not exist); a valid LevelDB once the scan ends.
    pub dir: &'a Path,
    /// Directory for sort spill files; the caller deletes it afterwards.
    pub spill_dir: &'a Path,
    /// Bytes of entries held in memory before spilling.
    pub memory_bytes: usize,
}

/// Reads every coin of `chainstate` with `readers` threads and writes the index
/// entries, sorted, as a new LevelDB in `target.dir`.
pub fn scan_chainstate(
    chainstate: &Chainstate,
    target: &ScanTarget,
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

    let result: Result<ScanTotals, SyncError> = std::thread::scope(|scope| {
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
        let mut sorter = BucketSorter::new(target.spill_dir, target.memory_bytes);
        let totals = sort_chunks(rx.into_iter(), &mut sorter, &stop)?;
        if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
            return Ok(totals);
        }
        write_sorted(sorter, target.dir, status, cancel)?;
        Ok(totals)
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

fn sort_chunks(
    chunks: impl Iterator<Item = Chunk>,
    sorter: &mut BucketSorter,
    stop: &AtomicBool,
) -> Result<ScanTotals, SyncError> {
    let mut totals = ScanTotals::default();
    for chunk in chunks {
        // Chunks are built by `read_range`: key (69) | value length (u32 LE) | value.
        let mut buf = chunk.bytes.as_slice();
        while buf.len() >= 73 {
            let (key, rest) = buf.split_at(69);
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let Some(value) = rest.get(4..4 + len) else {
                break;
            };
            if let Err(e) = sorter.push(key, value) {
                stop.store(true, Ordering::Relaxed);
                return Err(sort_error(e));
            }
            buf = &rest[4 + len..];
        }
        totals.utxos += chunk.entries as u64;
        totals.amount += chunk.amount;
    }
    Ok(totals)
}

fn write_sorted(
    sorter: BucketSorter,
    dir: &Path,
    status: &SyncStatus,
    cancel: &AtomicBool,
) -> Result<(), SyncError> {
    let started = Instant::now();
    let mut writer = BulkWriter::create(dir, BulkWriterOptions::default())
        .map_err(|e| IndexError::Db(format!("creating {}: {e}", dir.display())))?;
    let mut written = 0u64;
    sorter
        .finish(|key, value| {
            writer.add(key, value).map_err(|e| e.to_string())?;
            written += 1;
            if written % 65_536 == 0 {
                status.add_written(65_536);
                if cancel.load(Ordering::Relaxed) {
                    return Err("cancelled".into());
                }
            }
            Ok(())
        })
        .map_err(|e| match e {
            SortError::Emit(m) if m == "cancelled" => SyncError::Cancelled,
            other => sort_error(other),
        })?;
    status.add_written(written % 65_536);
    let stats = writer
        .finish()
        .map_err(|e| IndexError::Db(format!("finishing {}: {e}", dir.display())))?;
    tracing::info!(
        entries = stats.entries,
        tables = stats.tables,
        bytes = stats.bytes,
        secs = started.elapsed().as_secs_f64(),
        "index tables written"
    );
    Ok(())
}

fn sort_error(e: SortError) -> SyncError {
    SyncError::Index(IndexError::Io(e.to_string()))
}
