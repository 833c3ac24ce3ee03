//! Live progress of the sync engine, shared with whoever reports it (the CLI's
//! progress bar, GET_SYNC_STATUS). Lock-free counters, so readers never slow a scan.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// What the engine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPhase {
    /// Opening the index, nothing done yet.
    Starting,
    /// Building the index from a chainstate snapshot.
    Scanning,
    /// Connecting (or rolling back) blocks to reach the source's tip.
    CatchingUp,
    /// At the source's tip, following new blocks.
    Live,
    /// The engine's thread ended, on a panic or a damaged index: nothing follows
    /// the chain any more.
    Failed,
}

impl SyncPhase {
    fn from_u8(v: u8) -> SyncPhase {
        match v {
            1 => SyncPhase::Scanning,
            2 => SyncPhase::CatchingUp,
            3 => SyncPhase::Live,
            4 => SyncPhase::Failed,
            _ => SyncPhase::Starting,
        }
    }

    /// Lower-case name for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            SyncPhase::Starting => "starting",
            SyncPhase::Scanning => "scanning",
            SyncPhase::CatchingUp => "catching_up",
            SyncPhase::Live => "live",
            SyncPhase::Failed => "failed",
        }
    }
}

/// A consistent-enough copy of the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncProgress {
    pub phase: SyncPhase,
    /// Coins read from the chainstate by the running scan.
    pub scanned_utxos: u64,
    /// Entries of the running scan written to the new index, in key order.
    pub written_utxos: u64,
    /// Chainstate bytes read by the running scan, and the total to read.
    pub scanned_bytes: u64,
    pub total_bytes: u64,
    /// Height the index is at, and the height it is heading for.
    pub height: u32,
    pub target_height: u32,
}

/// Shared counters; cheap to update from many threads.
#[derive(Debug, Default)]
pub struct SyncStatus {
    phase: AtomicU8,
    scanned_utxos: AtomicU64,
    written_utxos: AtomicU64,
    scanned_bytes: AtomicU64,
    total_bytes: AtomicU64,
    height: AtomicU32,
    target_height: AtomicU32,
}

impl SyncStatus {
    /// Fresh status in the `Starting` phase.
    pub fn new() -> SyncStatus {
        SyncStatus::default()
    }

    pub fn set_phase(&self, phase: SyncPhase) {
        let v = match phase {
            SyncPhase::Starting => 0,
            SyncPhase::Scanning => 1,
            SyncPhase::CatchingUp => 2,
            SyncPhase::Live => 3,
            SyncPhase::Failed => 4,
        };
        self.phase.store(v, Ordering::Relaxed);
    }

    /// Starts a scan of `total_bytes` of chainstate.
    pub fn begin_scan(&self, total_bytes: u64) {
        self.scanned_utxos.store(0, Ordering::Relaxed);
        self.written_utxos.store(0, Ordering::Relaxed);
        self.scanned_bytes.store(0, Ordering::Relaxed);
        self.total_bytes.store(total_bytes, Ordering::Relaxed);
        self.set_phase(SyncPhase::Scanning);
    }

    /// Adds a reader's progress.
    pub fn add_scanned(&self, utxos: u64, bytes: u64) {
        self.scanned_utxos.fetch_add(utxos, Ordering::Relaxed);
        self.scanned_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds sorted entries written to the new index.
    pub fn add_written(&self, utxos: u64) {
        self.written_utxos.fetch_add(utxos, Ordering::Relaxed);
    }

    /// Records the index height and where it is heading.
    pub fn set_heights(&self, height: u32, target: u32) {
        self.height.store(height, Ordering::Relaxed);
        self.target_height.store(target, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> SyncProgress {
        SyncProgress {
            phase: SyncPhase::from_u8(self.phase.load(Ordering::Relaxed)),
            scanned_utxos: self.scanned_utxos.load(Ordering::Relaxed),
            written_utxos: self.written_utxos.load(Ordering::Relaxed),
            scanned_bytes: self.scanned_bytes.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            height: self.height.load(Ordering::Relaxed),
            target_height: self.target_height.load(Ordering::Relaxed),
        }
    }
}
