//! The scripthash → UTXO index: key layout, stored values, undo records, metadata
//! and the LevelDB that holds them (`<opnet dir>/index/`).

pub mod bulk;
pub mod checked_env;
pub mod entry;
pub mod events;
pub mod keys;
pub mod meta;
pub mod store;
pub mod undo;

use std::fmt;

pub use entry::UtxoValue;
pub use events::{EventKind, EventRecord};
pub use keys::{script_hash, ScriptHash, UtxoKey};
pub use meta::{BlockRef, IndexMeta, SyncState, SCHEMA_VERSION};
pub use store::{IndexBatch, IndexStore, StoreOptions};
pub use undo::UndoRecord;

use crate::network::Network;

/// Why an index operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexError {
    /// Stored data that cannot be what we wrote: resync.
    Corrupt(String),
    /// The index was written by another schema version.
    SchemaMismatch { found: u32, expected: u32 },
    /// The index belongs to another network.
    NetworkMismatch { found: Network, expected: Network },
    /// LevelDB reported an error.
    Db(String),
    /// A filesystem operation failed.
    Io(String),
    /// A pagination cursor that does not belong to the queried script.
    BadCursor,
    /// This handle belongs to an index that a rebuild replaced.
    Superseded,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Corrupt(m) => write!(f, "index corrupt: {m} (delete the index directory to rebuild it)"),
            IndexError::SchemaMismatch { found, expected } => write!(
                f,
                "index has schema version {found}, this build uses {expected}: delete the index directory to rebuild it"
            ),
            IndexError::NetworkMismatch { found, expected } => write!(
                f,
                "index belongs to network {found}, not {expected}: use another --opnet-dir or delete the index"
            ),
            IndexError::Db(m) => write!(f, "index database error: {m}"),
            IndexError::Io(m) => write!(f, "index I/O error: {m}"),
            IndexError::BadCursor => write!(f, "cursor does not belong to the queried script"),
            IndexError::Superseded => write!(f, "the index was rebuilt; this handle is no longer valid"),
        }
    }
}

impl std::error::Error for IndexError {}
