//! What the loader needs from whatever holds the chain: the core's [`ChainSource`]
//! plus the raw bytes the plugin ABI carries. Blocks cross the ABI in Bitcoin's
//! consensus serialization and spent outputs in one of two Bitcoin Core
//! serializations, so each source hands over the bytes it already has instead of
//! decoding and re-encoding them.

use bitcoin::{BlockHash, Txid};
use opnet::source::{ChainSource, SourceError};

/// How a block's spent outputs are serialized (docs/PLUGIN.md, `OPNET_SPENT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpentFormat {
    /// Bitcoin Core's `CBlockUndo` (the body of a rev*.dat record): heights and
    /// coinbase flags included, no entry for the coinbase.
    Undo,
    /// Bitcoin Core's `GET /rest/spenttxouts/<hash>.bin`: amounts and scripts only,
    /// an empty list for the coinbase.
    Rest,
}

/// A block's spent outputs as bytes, with their format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentBytes {
    pub format: SpentFormat,
    pub bytes: Vec<u8>,
}

/// A chain the loader can expose to plugins.
pub trait HostChain: ChainSource {
    /// The block in consensus serialization.
    fn block_bytes(&self, hash: &BlockHash) -> Result<Vec<u8>, SourceError>;
    /// The outputs the block spends.
    fn spent_bytes(&self, hash: &BlockHash) -> Result<SpentBytes, SourceError>;
    /// A confirmed transaction in consensus serialization; `Unsupported` without a
    /// transaction index, `None` when unknown.
    fn transaction_bytes(&self, txid: &Txid) -> Result<Option<Vec<u8>>, SourceError>;
    /// Whether [`HostChain::flush_chainstate`] can work: only a running node can
    /// be asked to write its chainstate.
    fn can_flush_chainstate(&self) -> bool {
        false
    }
    /// Has the node write its chainstate to disk now (the ABI's
    /// `flush_chainstate`), so a scan starts at the tip rather than where
    /// bitcoind last happened to write it.
    fn flush_chainstate(&self) -> Result<(), SourceError> {
        Err(SourceError::Unsupported(
            "this host has no running node to ask for its chainstate".into(),
        ))
    }
}

use bitcoin::consensus::serialize;
use opnet::datadir::DatadirSource;
use opnet::format::undo::encode_block_undo;

/// Datadir mode: blocks re-serialized from the block files, spent outputs as the
/// undo records they came from (heights included).
impl HostChain for DatadirSource {
    fn block_bytes(&self, hash: &BlockHash) -> Result<Vec<u8>, SourceError> {
        Ok(serialize(&self.block(hash)?))
    }

    fn spent_bytes(&self, hash: &BlockHash) -> Result<SpentBytes, SourceError> {
        let spent = self.spent_outputs(hash)?;
        let mut bytes = Vec::new();
        encode_block_undo(&spent, &mut bytes);
        Ok(SpentBytes {
            format: SpentFormat::Undo,
            bytes,
        })
    }

    fn transaction_bytes(&self, txid: &Txid) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.transaction(txid)?.map(|tx| serialize(&tx)))
    }
}
