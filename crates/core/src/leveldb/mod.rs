//! A strictly read-only LevelDB reader for Bitcoin Core's databases (`chainstate/`,
//! `blocks/index/`), and (in [`writer`], a separate path used only on our own index
//! directory) a bulk writer that builds a new LevelDB from sorted entries.
//!
//! Bitcoin Core's LevelDBs must never be opened with a writer: opening a LevelDB for
//! writing replays its log into a new table, writes a new MANIFEST and may compact, and
//! a writer's `flock` does not see bitcoind's `fcntl` lock. This reader only ever opens
//! files for reading: it creates, writes, renames, deletes and locks nothing. Nothing
//! outside [`writer`] writes, and the writer refuses a directory that is not empty.
//!
//! [`ReadOnlyDb::open`] reads `CURRENT` and the MANIFEST it names, checks that every live
//! table file exists, and replays the logs that still hold data not in a table into an
//! in-memory map. Tables are opened lazily (footer and index block, kept in a small
//! cache). [`ReadOnlyDb::range`] merges the memtable with every level and returns the
//! newest live version of each key; scans read each table's data blocks sequentially in
//! chunks of up to 1 MiB, and every block's CRC32C is checked.
//!
//! Formats (LevelDB's `doc/log_format.md`, `doc/table_format.md`, `db/dbformat.h`):
//! an internal key is the user key followed by a fixed64 tag `seq << 8 | type` (type 1 =
//! value, 0 = deletion), ordered by user key ascending then sequence descending. Only the
//! `leveldb.BytewiseComparator` is supported (Bitcoin Core uses it).

mod block;
mod checked_file;
mod coding;
mod log_reader;
mod manifest;
mod merge;
mod table;
mod write_batch;
pub mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub use checked_file::CheckedTableFile;
pub use merge::RangeIter;

use coding::{cmp_internal, seek_key, user_key};
use log_reader::LogReader;
use manifest::FileMeta;
use table::Table;
use write_batch::MemTable;

/// LevelDB's number of levels (`config::kNumLevels`).
pub(crate) const NUM_LEVELS: usize = 7;
/// How many opened tables (file handle + index block) are kept.
const TABLE_CACHE_CAPACITY: usize = 128;

/// Why a LevelDB could not be read.
#[derive(Debug)]
pub enum LdbError {
    /// Reading `path` failed (at `offset`, when known).
    Io {
        path: PathBuf,
        offset: Option<u64>,
        source: io::Error,
    },
    /// A file the database needs does not exist (a table the MANIFEST lists, CURRENT, ...).
    MissingFile { path: PathBuf, msg: String },
    /// The bytes of `path` at `offset` are not what LevelDB writes.
    Corruption {
        path: PathBuf,
        offset: u64,
        msg: String,
    },
    /// A well-formed database this reader does not read (another comparator, an unknown
    /// block compression).
    Unsupported { path: PathBuf, msg: String },
    /// A [`RangeIter`] was advanced again after it returned an error.
    IteratorFailed,
}

impl LdbError {
    pub(crate) fn io(path: &Path, offset: Option<u64>, source: io::Error) -> Self {
        LdbError::Io {
            path: path.to_path_buf(),
            offset,
            source,
        }
    }

    /// An error opening `path`: `MissingFile` when it does not exist.
    pub(crate) fn open_err(path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            LdbError::MissingFile {
                path: path.to_path_buf(),
                msg: source.to_string(),
            }
        } else {
            LdbError::io(path, None, source)
        }
    }

    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            LdbError::Io { path, .. }
            | LdbError::MissingFile { path, .. }
            | LdbError::Corruption { path, .. }
            | LdbError::Unsupported { path, .. } => Some(path),
            LdbError::IteratorFailed => None,
        }
    }
}

impl fmt::Display for LdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LdbError::Io {
                path,
                offset: Some(o),
                source,
            } => {
                write!(
                    f,
                    "LevelDB: I/O error reading {} at offset {o}: {source}",
                    path.display()
                )
            }
            LdbError::Io {
                path,
                offset: None,
                source,
            } => {
                write!(f, "LevelDB: I/O error on {}: {source}", path.display())
            }
            LdbError::MissingFile { path, msg } => {
                write!(f, "LevelDB: missing file {}: {msg}", path.display())
            }
            LdbError::Corruption { path, offset, msg } => {
                write!(
                    f,
                    "LevelDB: corruption in {} at offset {offset}: {msg}",
                    path.display()
                )
            }
            LdbError::Unsupported { path, msg } => write!(
                f,
                "LevelDB: unsupported database ({}): {msg}",
                path.display()
            ),
            LdbError::IteratorFailed => {
                f.write_str("LevelDB: range iterator advanced after it failed")
            }
        }
    }
}

impl std::error::Error for LdbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LdbError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, LdbError>;

/// A live table file.
#[derive(Debug)]
pub(crate) struct TableFile {
    pub(crate) meta: FileMeta,
    pub(crate) path: PathBuf,
}

/// The files of one level. Level 0's files may overlap; a level >= 1 whose files overlap
/// (never written by LevelDB) is read the same way rather than trusted.
#[derive(Debug)]
pub(crate) struct Level {
    /// Level 0: newest (highest number) first. Disjoint levels: by smallest key.
    pub(crate) files: Vec<TableFile>,
    pub(crate) disjoint: bool,
}

/// Opened tables, least recently used evicted past the capacity. Iterators hold their own
/// `Arc`s, so eviction never pulls a table from under a scan.
#[derive(Debug, Default)]
struct TableCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    tick: u64,
    map: HashMap<u64, (Arc<Table>, u64)>,
}

impl TableCache {
    fn get(&self, f: &TableFile) -> Result<Arc<Table>> {
        {
            let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            g.tick += 1;
            let tick = g.tick;
            if let Some(e) = g.map.get_mut(&f.meta.number) {
                e.1 = tick;
                return Ok(Arc::clone(&e.0));
            }
        }
        // Open outside the lock: other threads keep using the cache meanwhile.
        let table = Arc::new(Table::open(&f.path, f.meta.size)?);
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.tick += 1;
        let tick = g.tick;
        let e = g.map.entry(f.meta.number).or_insert((table, tick));
        e.1 = tick;
        let table = Arc::clone(&e.0);
        if g.map.len() > TABLE_CACHE_CAPACITY {
            if let Some(oldest) = g.map.iter().min_by_key(|(_, e)| e.1).map(|(n, _)| *n) {
                g.map.remove(&oldest);
            }
        }
        Ok(table)
    }
}

/// A LevelDB opened read-only; see the module documentation.
#[derive(Debug)]
pub struct ReadOnlyDb {
    dir: PathBuf,
    pub(crate) levels: Vec<Level>,
    /// What the logs hold: the newest version of each key written since the last table.
    pub(crate) mem: MemTable,
    tables: TableCache,
    total_size: u64,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ReadOnlyDb>();
};

/// Finds table file `number` in `dir` (`NNNNNN.ldb`, or the older `NNNNNN.sst`) and
/// returns its path and length.
fn locate_table(dir: &Path, number: u64) -> Result<(PathBuf, u64)> {
    let ldb = dir.join(format!("{number:06}.ldb"));
    let first_err = match std::fs::metadata(&ldb) {
        Ok(m) => return Ok((ldb, m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => e,
        Err(e) => return Err(LdbError::io(&ldb, None, e)),
    };
    let sst = dir.join(format!("{number:06}.sst"));
    match std::fs::metadata(&sst) {
        Ok(m) => Ok((sst, m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(LdbError::MissingFile {
            path: ldb,
            msg: format!("table {number} is listed in the MANIFEST but neither .ldb nor .sst exists ({first_err})"),
        }),
        Err(e) => Err(LdbError::io(&sst, None, e)),
    }
}

/// The log files (`NNNNNN.log`) in `dir`, by number.
fn list_logs(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LdbError::io(dir, None, e))? {
        let entry = entry.map_err(|e| LdbError::io(dir, None, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = stem.parse::<u64>() {
            logs.push((n, entry.path()));
        }
    }
    logs.sort();
    Ok(logs)
}

/// Replays the write batches of one log into `mem`; returns the bytes read.
fn replay_log(path: &Path, mem: &mut MemTable) -> Result<u64> {
    let file = File::open(path).map_err(|e| LdbError::open_err(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| LdbError::io(path, None, e))?
        .len();
    let mut reader = LogReader::new(&file, path, len);
    let mut record = Vec::new();
    while let Some(offset) = reader.read_record(&mut record)? {
        write_batch::apply(&record, mem, path, offset)?;
    }
    if reader.torn_tail() {
        tracing::warn!(log = %path.display(), "LevelDB log ends with an incomplete record (a write in progress or a crash); ignored");
    }
    Ok(len)
}

impl ReadOnlyDb {
    /// Opens the database in `dir` without writing anything: reads CURRENT and the MANIFEST,
    /// opens the live table files, replays every log file numbered >= the manifest's log
    /// number (and its prev log number) into an in-memory sorted map.
    ///
    /// The table files are checked (they exist and are at least as long as the MANIFEST
    /// says) but their contents are only read when a lookup or scan needs them.
    pub fn open(dir: &Path) -> Result<ReadOnlyDb> {
        let version = manifest::recover(dir)?;
        let mut total_size = 0u64;
        let mut levels = Vec::with_capacity(NUM_LEVELS);
        for (level, files) in version.levels.into_iter().enumerate() {
            let mut v = Vec::with_capacity(files.len());
            for meta in files.into_values() {
                let (path, len) = locate_table(dir, meta.number)?;
                if len < meta.size {
                    return Err(LdbError::Corruption {
                        offset: len,
                        msg: format!(
                            "table file has {len} bytes, the MANIFEST says {}",
                            meta.size
                        ),
                        path,
                    });
                }
                total_size = total_size.saturating_add(meta.size);
                v.push(TableFile { meta, path });
            }
            let disjoint = if level == 0 {
                v.sort_by_key(|f| std::cmp::Reverse(f.meta.number));
                false
            } else {
                v.sort_by(|a, b| cmp_internal(&a.meta.smallest, &b.meta.smallest));
                let ok = v.windows(2).all(|w| {
                    cmp_internal(&w[0].meta.largest, &w[1].meta.smallest)
                        == std::cmp::Ordering::Less
                });
                if !ok {
                    tracing::warn!(dir = %dir.display(), level, "LevelDB level has overlapping tables; reading them as level 0");
                }
                ok
            };
            levels.push(Level { files: v, disjoint });
        }

        let mut mem = MemTable::new();
        let mut logs_read = 0;
        for (number, path) in list_logs(dir)? {
            let live = number >= version.log_number
                || (version.prev_log_number != 0 && number == version.prev_log_number);
            if live {
                total_size = total_size.saturating_add(replay_log(&path, &mut mem)?);
                logs_read += 1;
            }
        }
        tracing::debug!(
            dir = %dir.display(),
            manifest = %version.manifest.display(),
            tables = levels.iter().map(|l| l.files.len()).sum::<usize>(),
            logs = logs_read,
            log_entries = mem.len(),
            last_sequence = version.last_sequence,
            next_file = version.next_file,
            "opened LevelDB read-only"
        );
        Ok(ReadOnlyDb {
            dir: dir.to_path_buf(),
            levels,
            mem,
            tables: TableCache::default(),
            total_size,
        })
    }

    /// The number of live table files in each level (for diagnostics).
    pub fn table_counts(&self) -> Vec<usize> {
        self.levels.iter().map(|l| l.files.len()).collect()
    }

    /// The number of distinct keys recovered from the logs (live or deleted).
    pub fn log_key_count(&self) -> usize {
        self.mem.len()
    }

    /// The directory the database was opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn table(&self, f: &TableFile) -> Result<Arc<Table>> {
        self.tables.get(f)
    }

    /// The newest value of `key`, or `None` if it is absent or deleted.
    ///
    /// Looks in the logs, then level by level (newest data first, as LevelDB does), reading
    /// at most one data block per table it consults.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(e) = self.mem.get(key) {
            return Ok(e.value.as_ref().map(|v| v.to_vec()));
        }
        let target = seek_key(key);
        for level in &self.levels {
            if level.disjoint {
                let i = level.files.partition_point(|f| {
                    cmp_internal(&f.meta.largest, &target) == std::cmp::Ordering::Less
                });
                if let Some(f) = level.files.get(i) {
                    if user_key(&f.meta.smallest) <= key {
                        if let Some((_, v)) = self.table(f)?.get(&target)? {
                            return Ok(v);
                        }
                    }
                }
            } else {
                let mut best: Option<(u64, Option<Vec<u8>>)> = None;
                for f in &level.files {
                    if user_key(&f.meta.smallest) <= key && key <= user_key(&f.meta.largest) {
                        if let Some((tag, v)) = self.table(f)?.get(&target)? {
                            if best.as_ref().is_none_or(|b| tag > b.0) {
                                best = Some((tag, v));
                            }
                        }
                    }
                }
                if let Some((_, v)) = best {
                    return Ok(v);
                }
            }
        }
        Ok(None)
    }

    /// Iterates user keys in [start, end) (end None = to the end), newest version only,
    /// deleted keys hidden, in bytewise order.
    pub fn range(&self, start: &[u8], end: Option<&[u8]>) -> Result<RangeIter<'_>> {
        RangeIter::new(self, start, end)
    }

    /// Total bytes of live table files + logs (for progress estimates).
    pub fn approximate_size(&self) -> u64 {
        self.total_size
    }
}
