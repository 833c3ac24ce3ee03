//! The file layer under the index's rusty-leveldb: every table read is checked
//! ([`CheckedTableFile`]), and the first failure marks the index as damaged, in
//! memory and in a `DAMAGED` file, for good.
//!
//! rusty-leveldb goes on past a table block it cannot read (its scans skip the block,
//! point reads skip the table, compactions write what is left into clean new tables),
//! so the error it is handed here may never reach us. The store therefore asks
//! [`Damage::check`] after every operation and before handing out any entry, and
//! refuses to open an index whose marker exists: a compaction may already have made the
//! loss permanent behind valid checksums, so the only safe way back is a rebuild.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rusty_leveldb::env::{Env, FileLock, Logger, RandomAccess};
use rusty_leveldb::{PosixDiskEnv, Status, StatusCode};

use super::IndexError;
use crate::leveldb::{CheckedTableFile, LdbError};

/// Name of the marker a damaged index carries (LevelDB ignores foreign names).
pub const DAMAGE_MARKER: &str = "DAMAGED";

/// Where `CURRENT` is moved when the marker cannot be written (a full disk): a
/// rename needs no free space, and without `CURRENT` the damaged version cannot
/// be opened as it is.
pub const CURRENT_ASIDE: &str = "CURRENT.damaged";

/// Whether a table read of this index has failed, and the first failure.
#[derive(Debug)]
pub struct Damage {
    marker: PathBuf,
    hit: AtomicBool,
    first: Mutex<Option<String>>,
}

impl Damage {
    /// The damage state of the index in `dir`, refusing one that was found damaged
    /// before (by this process or an earlier one).
    pub fn open(dir: &Path) -> Result<Arc<Damage>, IndexError> {
        if dir.join(CURRENT_ASIDE).exists() {
            return Err(IndexError::Corrupt(format!(
                "{} was found damaged earlier (its CURRENT was moved to {CURRENT_ASIDE} because the damage could not be recorded), and what it serves can no longer be trusted",
                dir.display()
            )));
        }
        let marker = dir.join(DAMAGE_MARKER);
        match std::fs::read_to_string(&marker) {
            Ok(what) => Err(IndexError::Corrupt(format!(
                "{} was found damaged earlier ({}), and what it serves can no longer be trusted",
                dir.display(),
                what.trim()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Arc::new(Damage {
                marker,
                hit: AtomicBool::new(false),
                first: Mutex::new(None),
            })),
            Err(e) => Err(IndexError::Io(format!("reading {}: {e}", marker.display()))),
        }
    }

    /// Records a failed table read: the first one is logged and written to the marker
    /// (synced), so that a restart refuses the index too.
    fn record(&self, err: &LdbError) {
        let what = err.to_string();
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        self.hit.store(true, Ordering::Release);
        if first.is_some() {
            return;
        }
        tracing::error!(error = %what, "index table damaged: every read and write of the index now fails; delete the index directory to rebuild it");
        if let Err(e) = write_marker(&self.marker, &what) {
            tracing::error!(marker = %self.marker.display(), error = %e, "could not write the damage marker; moving CURRENT aside instead");
            if let Some(dir) = self.marker.parent() {
                if let Err(e) = std::fs::rename(dir.join("CURRENT"), dir.join(CURRENT_ASIDE)) {
                    tracing::error!(dir = %dir.display(), error = %e, "could not record the index damage on disk: a restart would not know of it");
                }
            }
        }
        *first = Some(what);
    }

    /// `Corrupt` once any table read has failed.
    pub fn check(&self) -> Result<(), IndexError> {
        if !self.hit.load(Ordering::Acquire) {
            return Ok(());
        }
        let first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        Err(IndexError::Corrupt(
            first
                .clone()
                .unwrap_or_else(|| "a table read failed".to_string()),
        ))
    }
}

fn write_marker(path: &Path, what: &str) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(what.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// rusty-leveldb's disk environment with checked table reads.
pub struct CheckedEnv {
    inner: PosixDiskEnv,
    damage: Arc<Damage>,
}

impl CheckedEnv {
    /// An environment reporting failed table reads to `damage`.
    pub fn new(damage: Arc<Damage>) -> CheckedEnv {
        CheckedEnv {
            inner: PosixDiskEnv::new(),
            damage,
        }
    }
}

fn is_table(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "ldb" || e == "sst")
}

fn status(err: &LdbError) -> Status {
    let code = match err {
        LdbError::Io { .. } => StatusCode::IOError,
        LdbError::MissingFile { .. } => StatusCode::NotFound,
        _ => StatusCode::Corruption,
    };
    Status::new(code, &err.to_string())
}

/// A table file handed to rusty-leveldb.
struct CheckedRead {
    table: CheckedTableFile,
    damage: Arc<Damage>,
}

impl RandomAccess for CheckedRead {
    fn read_at(&self, off: usize, dst: &mut [u8]) -> rusty_leveldb::Result<usize> {
        match self.table.read_at(off as u64, dst) {
            Ok(()) => Ok(dst.len()),
            Err(e) => {
                self.damage.record(&e);
                Err(status(&e))
            }
        }
    }
}

impl Env for CheckedEnv {
    fn open_random_access_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn RandomAccess>> {
        if !is_table(p) {
            return self.inner.open_random_access_file(p);
        }
        match CheckedTableFile::open(p) {
            Ok(table) => Ok(Box::new(CheckedRead {
                table,
                damage: Arc::clone(&self.damage),
            })),
            Err(e) => {
                // A live table that cannot be opened is as lost as a damaged block:
                // rusty-leveldb's point reads go on to older tables without it.
                self.damage.record(&e);
                Err(status(&e))
            }
        }
    }

    fn open_sequential_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Read>> {
        self.inner.open_sequential_file(p)
    }
    fn open_writable_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Write>> {
        self.inner.open_writable_file(p)
    }
    fn open_appendable_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Write>> {
        self.inner.open_appendable_file(p)
    }
    fn exists(&self, p: &Path) -> rusty_leveldb::Result<bool> {
        self.inner.exists(p)
    }
    fn children(&self, p: &Path) -> rusty_leveldb::Result<Vec<PathBuf>> {
        self.inner.children(p)
    }
    fn size_of(&self, p: &Path) -> rusty_leveldb::Result<usize> {
        self.inner.size_of(p)
    }
    fn delete(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.delete(p)
    }
    fn mkdir(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.mkdir(p)
    }
    fn rmdir(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.rmdir(p)
    }
    fn rename(&self, old: &Path, new: &Path) -> rusty_leveldb::Result<()> {
        self.inner.rename(old, new)
    }
    fn lock(&self, p: &Path) -> rusty_leveldb::Result<FileLock> {
        self.inner.lock(p)
    }
    fn unlock(&self, l: FileLock) -> rusty_leveldb::Result<()> {
        self.inner.unlock(l)
    }
    fn new_logger(&self, p: &Path) -> rusty_leveldb::Result<Logger> {
        self.inner.new_logger(p)
    }
    fn micros(&self) -> u64 {
        self.inner.micros()
    }
    fn sleep_for(&self, micros: u32) {
        self.inner.sleep_for(micros)
    }
}
