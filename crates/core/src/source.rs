//! The chain-source trait: what the index needs from whatever holds the chain. The
//! datadir reader implements it here; the plugin's host context, the follow-mode
//! RPC/REST client and the replay driver implement it in later crates.

use std::fmt;

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Transaction, Txid};

use crate::format::undo::BlockSpent;
use crate::network::Network;

/// A block on the source's active chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainTip {
    pub height: u32,
    pub hash: BlockHash,
}

/// A header with the height it sits at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    pub header: Header,
    pub height: u32,
}

/// Why a source could not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The block or transaction is not known to the source.
    NotFound(String),
    /// The source cannot answer this kind of question (e.g. no transaction index).
    Unsupported(String),
    /// The source is unreachable or failed to read (I/O, network).
    Unavailable(String),
    /// The source's data is malformed.
    Corrupt(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::NotFound(m) => write!(f, "not found: {m}"),
            SourceError::Unsupported(m) => write!(f, "unsupported: {m}"),
            SourceError::Unavailable(m) => write!(f, "chain source unavailable: {m}"),
            SourceError::Corrupt(m) => write!(f, "chain source data corrupt: {m}"),
        }
    }
}

impl std::error::Error for SourceError {}

/// Read access to a chain: the active chain by height, blocks, their spent outputs
/// (Bitcoin Core's undo data), headers and transactions.
pub trait ChainSource: Send + Sync {
    /// The network the source's chain belongs to (checked against the index's).
    fn network(&self) -> Network;
    /// The tip of the source's active chain.
    fn tip(&self) -> Result<ChainTip, SourceError>;
    /// Hash of the active-chain block at `height`, `None` above the tip.
    fn hash_at_height(&self, height: u32) -> Result<Option<BlockHash>, SourceError>;
    /// A block by hash (active chain or stale branch).
    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError>;
    /// The outputs a block spends, one list per transaction (coinbase's empty), in
    /// block order. Heights and coinbase flags are present when the source has them.
    fn spent_outputs(&self, hash: &BlockHash) -> Result<BlockSpent, SourceError>;
    /// A header by hash, `None` if unknown.
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError>;
    /// A confirmed transaction by txid; `Unsupported` when the source has no index.
    fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, SourceError>;
    /// Whether [`ChainSource::transaction`] can answer (the server offers TX_INDEX).
    fn has_tx_index(&self) -> bool {
        false
    }
}
