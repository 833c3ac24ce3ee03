//! Keeping the index equal to the chain: the fresh chainstate scan, catch-up with
//! rollback, live connect/disconnect, and their progress.

pub mod clock;
pub mod delta;
pub mod engine;
pub mod event_floor;
pub mod live;
pub mod scan;
pub mod status;

use std::fmt;

pub use clock::{ClockGuard, EventClock};
pub use engine::{
    default_readers, BlockEvent, BlockEventKind, CatchUp, ChainEvent, Engine, EngineConfig,
    EventUtxo, DEFAULT_UNDO_RETENTION,
};
pub use live::LiveSync;
pub use status::{SyncPhase, SyncProgress, SyncStatus};

use crate::chainstate::ChainstateError;
use crate::index::IndexError;
use crate::network::Network;
use crate::source::SourceError;

/// Why the engine could not proceed.
#[derive(Debug)]
pub enum SyncError {
    Index(IndexError),
    Source(SourceError),
    Chainstate(ChainstateError),
    Io(String),
    /// The chain source serves another network than the index's.
    WrongNetwork {
        index: Network,
        source: Network,
    },
    /// The chainstate's best block is not in the source's block index.
    SnapshotUnknown(String),
    /// A block that does not extend the index's tip.
    NotOnTip {
        block: String,
        height: u32,
        tip_height: u32,
    },
    /// The index is not ready (no scan yet, stale).
    NotReady(String),
    /// A reorg deeper than the undo log: the index was marked stale.
    NeedsResync(String),
    /// The chain and the index disagree (a spent output the index lacks, ...).
    Inconsistent(String),
    /// Shutdown was requested while a scan ran; the partial scan is discarded.
    Cancelled,
    /// The source's tip is below the index's and older than its undo log, so
    /// whether it is on the index's chain cannot be checked.
    SourceTooFarBehind {
        index_height: u32,
        source_height: u32,
    },
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Index(e) => write!(f, "{e}"),
            SyncError::Source(e) => write!(f, "{e}"),
            SyncError::Chainstate(e) => write!(f, "{e}"),
            SyncError::Io(m) => write!(f, "I/O error: {m}"),
            SyncError::WrongNetwork { index, source } => {
                write!(f, "the index is for {index} but the chain source serves {source}")
            }
            SyncError::SnapshotUnknown(h) => {
                write!(f, "the chainstate's best block {h} is not in the block index")
            }
            SyncError::NotOnTip { block, height, tip_height } => write!(
                f,
                "block {block} at height {height} does not extend the index tip at height {tip_height}"
            ),
            SyncError::NotReady(m) => write!(f, "index not ready: {m}"),
            SyncError::NeedsResync(m) => write!(f, "index needs a resync: {m}"),
            SyncError::Inconsistent(m) => write!(f, "index and chain disagree: {m}"),
            SyncError::Cancelled => write!(f, "cancelled by shutdown"),
            SyncError::SourceTooFarBehind { index_height, source_height } => write!(
                f,
                "the chain source is at height {source_height}, {} blocks behind the index at \
                 {index_height} and beyond its undo log: is it an old copy of the datadir? Use an \
                 up-to-date source, or delete the index to rebuild it from this one",
                index_height - source_height
            ),
        }
    }
}

impl std::error::Error for SyncError {}

impl From<IndexError> for SyncError {
    fn from(e: IndexError) -> Self {
        SyncError::Index(e)
    }
}

impl From<SourceError> for SyncError {
    fn from(e: SourceError) -> Self {
        SyncError::Source(e)
    }
}

impl From<ChainstateError> for SyncError {
    fn from(e: ChainstateError) -> Self {
        SyncError::Chainstate(e)
    }
}
