//! Writing a synthetic chainstate as a genuine LevelDB database in Bitcoin Core's
//! format (`txdb.cpp`, `dbwrapper.cpp`).

use std::collections::BTreeMap;
use std::path::Path;

use rusty_leveldb::compressor::NoneCompressor;
use rusty_leveldb::{CompressorId, Options, WriteBatch, DB};

use super::coins::{Generated, Generator};
use super::rng::Rng;
use super::scripts::Kind;
use super::{best_block_hash, SynthError, SynthSpec, SynthSummary};
use crate::format::coin::{deobfuscate, encode_coin, encode_coin_key};
use crate::format::varint::write_compact_size;

/// Key of the obfuscation key record: the serialized `std::string`
/// "\x00obfuscate_key" (CompactSize 14, then the bytes).
pub(crate) const OBFUSCATE_KEY_KEY: &[u8] = b"\x0e\x00obfuscate_key";

/// Key of the best block record (`DB_BEST_BLOCK`).
pub(crate) const BEST_BLOCK_KEY: &[u8] = b"B";

/// LevelDB memtable size. Core uses a quarter of its cache; 64 MiB keeps the level-0
/// tables few without costing much memory.
const WRITE_BUFFER: usize = 64 << 20;

/// Core's `DBWRAPPER_MAX_FILE_SIZE`: the target size of its table files.
const MAX_FILE_SIZE: usize = 32 << 20;

/// Coins per LevelDB write batch.
const BATCH: usize = 10_000;

/// How often (in coins) the progress callback runs.
const PROGRESS_EVERY: u64 = 1_000_000;

const DOMAIN_OBFUSCATION: u64 = 0x6f62;

/// Writes the chainstate of `spec` into `dir` (which must not exist or be empty)
/// and returns what it wrote. Progress is logged with `tracing` every million coins.
///
/// Benchmarks need chainstates of chosen sizes in Core's exact format; the result is
/// a genuine LevelDB (written with rusty-leveldb, uncompressed like Core's, the data
/// in table files across levels and an empty log, as after a restart of Core).
/// Takes about 1.5 µs per coin and ~130 MiB of memory whatever the size. On error
/// the directory may hold a partial database.
pub fn write_chainstate(dir: &Path, spec: &SynthSpec) -> Result<SynthSummary, SynthError> {
    write_chainstate_with_progress(dir, spec, &mut |done, total| {
        tracing::info!(done, total, "synthetic chainstate");
    })
}

/// [`write_chainstate`] that also calls `progress(coins written, total)` every
/// million coins and once when everything is on disk, for command-line tools that
/// report progress.
pub fn write_chainstate_with_progress(
    dir: &Path,
    spec: &SynthSpec,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SynthSummary, SynthError> {
    spec.validate()?;
    prepare_dir(dir)?;

    let mut obfuscation = [0u8; 8];
    Rng::for_item(spec.seed, DOMAIN_OBFUSCATION, spec.utxos).fill(&mut obfuscation);
    if obfuscation == [0; 8] {
        obfuscation[0] = 1;
    }
    let best_block = best_block_hash(spec);

    let mut db = DB::open(dir, options(true)).map_err(leveldb("open"))?;

    // Both records sort before every 'C' key, so all keys go in ascending order.
    let mut batch = WriteBatch::default();
    let mut value = Vec::with_capacity(9);
    write_compact_size(&mut value, obfuscation.len() as u64);
    value.extend_from_slice(&obfuscation);
    batch.put(OBFUSCATE_KEY_KEY, &value);
    let mut best = bitcoin::hashes::Hash::to_byte_array(best_block).to_vec();
    deobfuscate(&mut best, &obfuscation);
    batch.put(BEST_BLOCK_KEY, &best);
    db.write(batch, false).map_err(leveldb("write"))?;

    let generated = Generated::new(Generator::new(spec));
    let whales = generated.generator().whales();
    let total = generated.generator().len();
    let mut kinds: BTreeMap<Kind, u64> = BTreeMap::new();
    let mut total_amount = 0u64;
    let mut written = 0u64;
    let mut batch = WriteBatch::default();
    let mut in_batch = 0usize;
    let mut key = Vec::with_capacity(40);
    for c in generated {
        key.clear();
        encode_coin_key(&c.txid, c.vout, &mut key);
        value.clear();
        encode_coin(&c.coin, &mut value);
        deobfuscate(&mut value, &obfuscation);
        batch.put(&key, &value);
        in_batch += 1;
        *kinds.entry(c.kind).or_default() += 1;
        total_amount = total_amount.saturating_add(c.coin.amount);
        written += 1;
        if in_batch == BATCH {
            db.write(std::mem::take(&mut batch), false)
                .map_err(leveldb("write"))?;
            in_batch = 0;
        }
        if written % PROGRESS_EVERY == 0 && written < total {
            progress(written, total);
        }
    }
    if in_batch > 0 {
        db.write(batch, false).map_err(leveldb("write"))?;
    }
    db.close().map_err(leveldb("close"))?;
    drop(db);

    // Reopening without log reuse turns the last memtable's log into a table, as a
    // Core chainstate looks after a restart: the data sits in tables, the log is
    // (nearly) empty.
    let mut db = DB::open(dir, options(false)).map_err(leveldb("reopen"))?;
    db.close().map_err(leveldb("close"))?;
    drop(db);
    progress(written, total);

    Ok(SynthSummary {
        best_block,
        best_height: spec.best_height,
        utxos: written,
        total_amount,
        kinds: Kind::ALL
            .iter()
            .map(|k| (k.name().to_string(), kinds.get(k).copied().unwrap_or(0)))
            .collect(),
        whales,
        bytes_on_disk: dir_size(dir)?,
    })
}

/// LevelDB options matching Core's chainstate (`dbwrapper.cpp`): no compression,
/// 10-bit Bloom filters (rusty-leveldb's default, as Core's), 4 KiB blocks, 32 MiB
/// table files.
fn options(reuse_logs: bool) -> Options {
    Options {
        create_if_missing: true,
        compressor: NoneCompressor::ID,
        write_buffer_size: WRITE_BUFFER,
        max_file_size: MAX_FILE_SIZE,
        reuse_logs,
        ..Options::default()
    }
}

/// Maps a rusty-leveldb error to [`SynthError::LevelDb`].
fn leveldb(what: &'static str) -> impl Fn(rusty_leveldb::Status) -> SynthError {
    move |status| SynthError::LevelDb {
        what,
        detail: status.to_string(),
    }
}

/// Makes sure `dir` is an empty directory, creating it if needed.
fn prepare_dir(dir: &Path) -> Result<(), SynthError> {
    let io = |source| SynthError::Io {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(SynthError::NotEmpty(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)
        }
        Err(e) if dir.exists() && !dir.is_dir() => {
            let _ = e;
            Err(SynthError::NotEmpty(dir.to_path_buf()))
        }
        Err(e) => Err(io(e)),
    }
}

/// Total size of the regular files directly in `dir`.
fn dir_size(dir: &Path) -> Result<u64, SynthError> {
    let io = |source| SynthError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let meta = entry.and_then(|e| e.metadata()).map_err(io)?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}
