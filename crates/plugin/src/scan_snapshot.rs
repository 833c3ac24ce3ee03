//! The chainstate a fresh scan reads: a snapshot of `<datadir>/chainstate`, taken
//! after the host had its node write the chainstate when it can.
//!
//! bitcoind writes its UTXO set to disk only every 50–70 minutes, when its cache
//! is full and at shutdown, so next to a running node the on-disk chainstate may
//! have no best block at all (a node started minutes ago) or one far behind the
//! tip (a large `-dbcache`). Asking the node to write it first (the context's
//! `flush_chainstate`) makes the scan start at the tip; catching up block by block
//! from an old best block, or from genesis, costs far more (docs/PLUGIN.md has the
//! figures). A host that has a running node but whose node refused is waited on:
//! bitcoind writes the chainstate on its own within the hour.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opnet::chainstate::{Chainstate, ChainstateError};
use opnet::leveldb::LdbError;
use opnet::snapshot::{self, SnapshotError, SnapshotKind};

use crate::host::HostApi;

/// How often a chainstate without a best block is looked at again while waiting.
const RECHECK: Duration = Duration::from_secs(5);
/// How often the wait says it is still waiting.
const REMIND: Duration = Duration::from_secs(60);

/// Where the scan's chainstate comes from and goes.
pub struct ScanSnapshot {
    pub host: Arc<HostApi>,
    /// The node's `chainstate/` (read only).
    pub chainstate_dir: PathBuf,
    /// `<opnetdir>/chainstate-snapshot`.
    pub snapshot_dir: PathBuf,
    /// Set when the plugin shuts down: a wait ends at once.
    pub cancel: Arc<AtomicBool>,
}

impl ScanSnapshot {
    /// Has the node write its chainstate when the host can, then snapshots and
    /// opens it. Without a best block, waits for one when a running node will
    /// write it, else fails as before (a copied datadir never gains one).
    pub fn open(&self) -> Result<Chainstate, ChainstateError> {
        let flushed = self.flush();
        let started = Instant::now();
        let mut next_reminder = Instant::now();
        loop {
            match snapshot::open_snapshot(&self.chainstate_dir, &self.snapshot_dir) {
                Ok((cs, kind)) => {
                    if kind == SnapshotKind::Copied {
                        tracing::warn!(dir = %self.snapshot_dir.display(), "hard links to the chainstate are impossible here (another filesystem?); scanning a full copy");
                    }
                    tracing::info!(best_block = %cs.best_block(), "scanning a snapshot of the chainstate");
                    return Ok(cs);
                }
                Err(SnapshotError::Chainstate(ChainstateError::NoBestBlock(dir)))
                    if self.host.can_flush_chainstate() =>
                {
                    if Instant::now() >= next_reminder {
                        next_reminder = Instant::now() + REMIND;
                        tracing::warn!(
                            dir = %dir.display(),
                            waited_s = started.elapsed().as_secs(),
                            "{}",
                            waiting_message(flushed.as_ref().err())
                        );
                    }
                    if !self.pause(RECHECK) {
                        return Err(ChainstateError::NoBestBlock(dir));
                    }
                }
                Err(e) => return Err(snapshot_error(e)),
            }
        }
    }

    /// Asks the host's node to write its chainstate; Ok(false) when the host
    /// cannot be asked.
    fn flush(&self) -> Result<bool, String> {
        if !self.host.can_flush_chainstate() {
            return Ok(false);
        }
        let started = Instant::now();
        match self.host.flush_chainstate() {
            Ok(()) => {
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "the node wrote its chainstate; the scan starts at its best block"
                );
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the node could not be made to write its chainstate; scanning what it last wrote");
                Err(e.to_string())
            }
        }
    }

    /// Sleeps up to `d`, false as soon as the plugin is shutting down.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.cancel.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        !self.cancel.load(Ordering::Relaxed)
    }
}

fn waiting_message(flush_error: Option<&String>) -> String {
    let why = match flush_error {
        Some(e) => format!("asking it to write one failed ({e})"),
        None => "it was asked to write one and has not yet".to_string(),
    };
    format!(
        "the node's chainstate has no best block yet and {why}: waiting for bitcoind to \
         write it (it does every 50-70 minutes, at shutdown, or when `bitcoin-cli \
         gettxoutsetinfo` runs)"
    )
}

fn snapshot_error(e: SnapshotError) -> ChainstateError {
    match e {
        SnapshotError::Chainstate(e) => e,
        SnapshotError::Io { path, error } => ChainstateError::Db(LdbError::Io {
            path,
            offset: None,
            source: error,
        }),
    }
}

/// The snapshot directory for an opnet dir.
pub fn snapshot_dir(opnet_dir: &Path) -> PathBuf {
    opnet_dir.join("chainstate-snapshot")
}
