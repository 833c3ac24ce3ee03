//! A private copy of a live chainstate to scan while bitcoind keeps running.
//!
//! bitcoind compacts its chainstate (deleting table files) and flushes into it at any
//! time, and a flush is not atomic on disk: its first batch writes `H` (the blocks it
//! moves between) and its last removes `H` and writes `B`. So the scan reads a
//! snapshot: table files are immutable once written, so hard links pin them (their
//! bytes stay readable after bitcoind deletes its name for them); the files bitcoind
//! appends to (`CURRENT`, `MANIFEST-*`, the log) are copied. A snapshot caught in the
//! middle of a flush shows `H` and is refused by [`Chainstate::open`]; it is retaken
//! until one is clean. Nothing is ever written inside the chainstate directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::chainstate::{Chainstate, ChainstateError};

/// How many snapshots are tried before a running flush or compaction is reported.
pub const ATTEMPTS: u32 = 20;

/// Why no snapshot could be taken.
#[derive(Debug)]
pub enum SnapshotError {
    /// Creating or filling the snapshot directory failed.
    Io { path: PathBuf, error: io::Error },
    /// The chainstate (or every snapshot of it) cannot be scanned.
    Chainstate(ChainstateError),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Io { path, error } => {
                write!(
                    f,
                    "taking a chainstate snapshot at {}: {error}",
                    path.display()
                )
            }
            SnapshotError::Chainstate(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// How a snapshot was made (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Table files hard-linked, the rest copied.
    Linked,
    /// Hard links are impossible (another filesystem, no permission): every file
    /// was copied.
    Copied,
}

/// Takes a snapshot of `chainstate` into `into` (replacing whatever is there) and
/// opens it. Retries while a flush or compaction is caught half-way, waiting a
/// little longer each time for bitcoind to finish it.
pub fn open_snapshot(
    chainstate: &Path,
    into: &Path,
) -> Result<(Chainstate, SnapshotKind), SnapshotError> {
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // bitcoind's flushes take from milliseconds to a few seconds.
            std::thread::sleep(Duration::from_millis(50 << attempt.min(6)));
        }
        let kind = take(chainstate, into)?;
        match Chainstate::open(into) {
            Ok(c) => return Ok((c, kind)),
            // Mid-flush, or a table deleted between reading the MANIFEST and linking.
            Err(
                e @ ChainstateError::PartialFlush { .. }
                | e @ ChainstateError::Db(crate::leveldb::LdbError::MissingFile { .. }),
            ) => {
                tracing::debug!(attempt, error = %e, "chainstate snapshot not consistent; retaking");
                last = Some(e);
            }
            Err(e) => return Err(SnapshotError::Chainstate(e)),
        }
    }
    Err(SnapshotError::Chainstate(last.unwrap_or(
        ChainstateError::NoBestBlock(chainstate.to_path_buf()),
    )))
}

/// Removes a snapshot directory (after the scan, or one a crash left behind).
pub fn remove(into: &Path) -> Result<(), SnapshotError> {
    match fs::remove_dir_all(into) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SnapshotError::Io {
            path: into.to_path_buf(),
            error,
        }),
    }
}

fn take(chainstate: &Path, into: &Path) -> Result<SnapshotKind, SnapshotError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| SnapshotError::Io { path, error }
    };
    remove(into)?;
    fs::create_dir_all(into).map_err(io_err(into))?;
    let entries = fs::read_dir(chainstate).map_err(|e| {
        SnapshotError::Chainstate(ChainstateError::Db(crate::leveldb::LdbError::MissingFile {
            path: chainstate.to_path_buf(),
            msg: e.to_string(),
        }))
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(chainstate))?;
        names.push(entry.file_name());
    }
    // Appended files first: a MANIFEST copied before the tables are linked names
    // only tables that existed then (a later compaction's output is not needed).
    names.sort_by_key(|n| is_table(n.to_str().unwrap_or("")));
    let mut kind = SnapshotKind::Linked;
    for name in names {
        let Some(text) = name.to_str() else { continue };
        if text == "LOCK" || text.starts_with("LOG") {
            continue;
        }
        let from = chainstate.join(&name);
        let to = into.join(&name);
        if is_table(text) {
            match fs::hard_link(&from, &to) {
                Ok(()) => continue,
                // Deleted by a compaction since it was listed: the MANIFEST we copied
                // may still name it; opening the snapshot will tell.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => kind = SnapshotKind::Copied,
            }
        }
        match fs::copy(&from, &to) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(SnapshotError::Io { path: from, error }),
        }
    }
    Ok(kind)
}

fn is_table(name: &str) -> bool {
    name.ends_with(".ldb") || name.ends_with(".sst")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_chainstate() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/regtest-small/datadir-A/chainstate")
    }

    #[test]
    fn a_snapshot_reads_the_same_best_block_and_leaves_the_source_alone() {
        let source = fixture_chainstate();
        let before: Vec<_> = fs::read_dir(&source)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.clone(), fs::read(&p).unwrap())
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("snap");
        let direct = Chainstate::open(&source).unwrap().best_block();
        let (snap, _) = open_snapshot(&source, &into).unwrap();
        assert_eq!(snap.best_block(), direct);
        assert!(!into.join("LOCK").exists(), "the lock file is never copied");
        drop(snap);
        // A second snapshot replaces the first.
        let (again, _) = open_snapshot(&source, &into).unwrap();
        assert_eq!(again.best_block(), direct);
        drop(again);
        remove(&into).unwrap();
        assert!(!into.exists());
        let after: Vec<_> = fs::read_dir(&source)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.clone(), fs::read(&p).unwrap())
            })
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn a_missing_chainstate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_snapshot(&dir.path().join("nope"), &dir.path().join("snap"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
