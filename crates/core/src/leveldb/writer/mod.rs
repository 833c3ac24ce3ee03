//! Bulk creation of a new LevelDB from entries in key order, without LevelDB's write path.
//!
//! [`BulkWriter`] takes `(key, value)` pairs in strictly increasing bytewise key order and
//! writes the table files and the MANIFEST of a fresh database directly; the result is a
//! normal LevelDB that `rusty_leveldb::DB::open` (and [`super::ReadOnlyDb`]) open and use
//! as usual (reads, further writes, compactions). It is only ever used on a directory of
//! its own (the index's initial build), never on Bitcoin Core's databases.
//!
//! What it writes:
//! - every entry as the internal key `key + fixed64((1 << 8) | 1)` (sequence 1, type
//!   value): keys are unique, so one sequence number is enough; the MANIFEST records last
//!   sequence 1 (0 for an empty database), so later writes get higher sequences;
//! - tables `NNNNNN.ldb` numbered from 2, each about `table_bytes` (a table ends at the
//!   first block boundary past that size), all in the bottom level (6 of 7): they do not
//!   overlap, and compactions of later small writes only reach them at the bottom;
//! - uncompressed blocks of about `block_bytes`, no filter block (an empty metaindex
//!   block; LevelDB and rusty-leveldb then skip the filter check), index keys strictly
//!   greater than each block's last key (see `table_writer`);
//! - at [`BulkWriter::finish`]: every table synced, then `MANIFEST-000001` holding one
//!   version edit (comparator `leveldb.BytewiseComparator`, log number 0, next file number
//!   past the last table, last sequence, one new-file record per table), synced, then
//!   `CURRENT` through a synced `000001.dbtmp` and a rename, and the directory synced.
//!
//! No log file is written: opening the database creates one.
//!
//! Until `finish` has renamed `CURRENT` into place the directory holds only table files
//! (and perhaps a MANIFEST), never a database: [`super::ReadOnlyDb::open`] and
//! `rusty_leveldb::DB::open` with `create_if_missing: false` refuse it (no `CURRENT`), and
//! `DB::open` with `create_if_missing: true` creates a new, empty database there and
//! deletes the orphaned table files. A writer dropped without `finish` (or whose `finish`
//! failed) leaves such a directory; the caller removes it.
//!
//! Memory: one output buffer (1 MiB plus the current block), the current table's index
//! block, and the smallest and largest keys of each finished table.

mod block_builder;
mod manifest_writer;
mod table_writer;

use std::io;
use std::path::{Path, PathBuf};

use super::coding::{user_key, MAX_SEQUENCE, TYPE_VALUE};
use super::{LdbError, NUM_LEVELS};
use table_writer::{Buffers, FinishedTable, Layout, TableWriter};

/// The sequence number of every entry written.
const BULK_SEQUENCE: u64 = 1;
/// The internal-key tag of every entry written.
const BULK_TAG: [u8; 8] = ((BULK_SEQUENCE << 8) | TYPE_VALUE as u64).to_le_bytes();
/// The MANIFEST's file number; tables are numbered after it.
const MANIFEST_NUMBER: u64 = 1;
/// The level all tables go to: the bottom one.
const LEVEL: usize = NUM_LEVELS - 1;
/// Largest accepted block size (restart offsets are 32-bit).
const MAX_BLOCK_BYTES: usize = 1 << 30;

const _: () = assert!(BULK_SEQUENCE <= MAX_SEQUENCE);
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BulkWriter>();
};

/// Sizes of the tables and blocks a [`BulkWriter`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkWriterOptions {
    /// Target size of a table file; a table ends at the first block boundary at or past
    /// it. Default 32 MiB.
    pub table_bytes: u64,
    /// Target size of an (uncompressed) data block; a block ends with the first entry that
    /// takes it to this size. Default 4096.
    pub block_bytes: usize,
    /// Entries between restart points (full keys) in a data block. Default 16.
    pub restart_interval: usize,
}

impl Default for BulkWriterOptions {
    fn default() -> Self {
        BulkWriterOptions {
            table_bytes: 32 << 20,
            block_bytes: 4096,
            restart_interval: 16,
        }
    }
}

/// What [`BulkWriter::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkStats {
    /// Entries written.
    pub entries: u64,
    /// Table files written.
    pub tables: u32,
    /// Total size of the table files.
    pub bytes: u64,
}

/// Writes a new LevelDB from entries in strictly increasing key order; see the module
/// documentation.
#[derive(Debug)]
pub struct BulkWriter {
    dir: PathBuf,
    layout: Layout,
    table: Option<TableWriter>,
    /// Buffers of the last finished table, for the next one.
    spare: Option<Buffers>,
    next_number: u64,
    finished: Vec<FinishedTable>,
    /// The internal key being added (reused).
    ikey: Vec<u8>,
    /// The last internal key of the last finished table (for the order check while no
    /// table is open).
    last_closed: Vec<u8>,
    entries: u64,
    bytes: u64,
    /// Set by a failed write: the tables on disk are no longer consistent.
    failed: bool,
    /// True when `create` made the directory (its parent is synced at the end).
    created_dir: bool,
}

fn invalid_input(path: &Path, msg: String) -> LdbError {
    LdbError::io(path, None, io::Error::new(io::ErrorKind::InvalidInput, msg))
}

/// A short printable form of a key for error messages.
fn show_key(k: &[u8]) -> String {
    let hex: String = k.iter().take(80).map(|b| format!("{b:02x}")).collect();
    if k.len() > 80 {
        format!("{hex}... ({} bytes)", k.len())
    } else {
        hex
    }
}

impl BulkWriter {
    /// Starts a database in `dir`, which must not exist (it is created, with its parents)
    /// or be an empty directory. Nothing in it is a valid database until
    /// [`finish`](Self::finish).
    pub fn create(dir: &Path, options: BulkWriterOptions) -> Result<BulkWriter, LdbError> {
        if options.table_bytes == 0
            || options.block_bytes == 0
            || options.block_bytes > MAX_BLOCK_BYTES
            || options.restart_interval == 0
        {
            return Err(invalid_input(
                dir,
                format!("bulk writer options out of range: {options:?} (table_bytes, block_bytes <= 1 GiB and restart_interval must be > 0)"),
            ));
        }
        let mut created_dir = false;
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if let Some(entry) = entries.next() {
                    let name = entry
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .unwrap_or_default();
                    return Err(LdbError::io(
                        dir,
                        None,
                        io::Error::new(
                            io::ErrorKind::DirectoryNotEmpty,
                            format!("a new database needs an empty directory (found {name:?})"),
                        ),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| LdbError::io(dir, None, e))?;
                created_dir = true;
            }
            Err(e) => return Err(LdbError::io(dir, None, e)),
        }
        Ok(BulkWriter {
            dir: dir.to_path_buf(),
            layout: Layout {
                table_bytes: options.table_bytes,
                block_bytes: options.block_bytes,
                restart_interval: options.restart_interval,
            },
            table: None,
            spare: Some(Buffers::default()),
            next_number: MANIFEST_NUMBER + 1,
            finished: Vec::new(),
            ikey: Vec::with_capacity(128),
            last_closed: Vec::new(),
            entries: 0,
            bytes: 0,
            failed: false,
            created_dir,
        })
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Bytes of table data produced so far (finished tables plus the current one).
    pub fn bytes_written(&self) -> u64 {
        self.bytes + self.table.as_ref().map_or(0, |t| t.size())
    }

    /// The directory being written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds an entry. `key` must be greater (bytewise) than the previous key (the first
    /// key may be anything, the empty key included): an out-of-order, repeated or
    /// oversized (4 GiB) key or value is rejected with an `InvalidInput` I/O error, is not
    /// written, and the writer stays usable. After any other error (a failed write) the
    /// writer refuses everything.
    #[inline]
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), LdbError> {
        if self.failed {
            return Err(self.failed_err());
        }
        let last = match &self.table {
            Some(t) => t.last_key(),
            None => &self.last_closed,
        };
        if self.entries > 0 && key <= user_key(last) {
            return Err(self.order_err(key));
        }
        if key.len() > u32::MAX as usize - 8 || value.len() > u32::MAX as usize {
            return Err(invalid_input(
                &self.dir,
                format!(
                    "entry {} too large: {}-byte key, {}-byte value",
                    self.entries,
                    key.len(),
                    value.len()
                ),
            ));
        }
        self.ikey.clear();
        self.ikey.extend_from_slice(key);
        self.ikey.extend_from_slice(&BULK_TAG);
        let r = self.add_internal(key, value);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    #[cold]
    fn order_err(&self, key: &[u8]) -> LdbError {
        let last = match &self.table {
            Some(t) => t.last_key(),
            None => &self.last_closed,
        };
        let last = user_key(last);
        let what = if key == last {
            "repeats"
        } else {
            "sorts before"
        };
        invalid_input(
            &self.dir,
            format!(
                "key {} {what} the previous key {} (entry {}): keys must be strictly increasing",
                show_key(key),
                show_key(last),
                self.entries
            ),
        )
    }

    #[cold]
    fn failed_err(&self) -> LdbError {
        LdbError::io(
            &self.dir,
            None,
            io::Error::other("the bulk writer failed earlier; the directory is not a database"),
        )
    }

    #[inline]
    fn add_internal(&mut self, key: &[u8], value: &[u8]) -> Result<(), LdbError> {
        if self.table.as_ref().is_some_and(|t| t.is_full()) {
            self.close_table(Some(key))?;
        }
        let table = match &mut self.table {
            Some(t) => t,
            None => {
                let bufs = self.spare.take().unwrap_or_default();
                let t = TableWriter::create(&self.dir, self.next_number, self.layout, bufs)?;
                self.next_number += 1;
                self.table.insert(t)
            }
        };
        table.add(&self.ikey, value)?;
        self.entries += 1;
        Ok(())
    }

    fn close_table(&mut self, next_user: Option<&[u8]>) -> Result<(), LdbError> {
        let Some(t) = self.table.take() else {
            return Ok(());
        };
        let (done, bufs) = t.finish(next_user)?;
        tracing::debug!(
            table = %done.path.display(),
            entries = done.entries,
            bytes = done.size,
            "bulk writer: table written"
        );
        self.last_closed.clear();
        self.last_closed.extend_from_slice(&done.largest);
        self.bytes += done.size;
        self.finished.push(done);
        self.spare = Some(bufs);
        Ok(())
    }

    /// Writes the last table, syncs every table, writes and syncs the MANIFEST, then
    /// `CURRENT` (through a temporary file and a rename) and syncs the directory. Only
    /// then is the directory a database.
    pub fn finish(mut self) -> Result<BulkStats, LdbError> {
        if self.failed {
            return Err(self.failed_err());
        }
        self.close_table(None)?;
        for t in &self.finished {
            manifest_writer::sync_path(&t.path)?;
        }
        let last_sequence = if self.entries > 0 { BULK_SEQUENCE } else { 0 };
        let edit =
            manifest_writer::encode_edit(LEVEL, &self.finished, self.next_number, last_sequence);
        manifest_writer::install(&self.dir, MANIFEST_NUMBER, &edit)?;
        if self.created_dir {
            // The directory's own entry, so the database survives a crash right after.
            let parent = match self.dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            manifest_writer::sync_path(parent)?;
        }
        let stats = BulkStats {
            entries: self.entries,
            tables: u32::try_from(self.finished.len()).unwrap_or(u32::MAX),
            bytes: self.bytes,
        };
        tracing::info!(
            dir = %self.dir.display(),
            entries = stats.entries,
            tables = stats.tables,
            bytes = stats.bytes,
            "bulk writer: database written"
        );
        Ok(stats)
    }
}
