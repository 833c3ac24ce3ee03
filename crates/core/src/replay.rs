//! A scripted chain: blocks known in advance, connected and disconnected one step
//! at a time. It is the chain source of the loader's replay mode and of the tests
//! that replay the fixture's recorded connect/disconnect sequence, reorg included.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bitcoin::{Block, BlockHash, Transaction, Txid};

use crate::format::undo::BlockSpent;
use crate::network::Network;
use crate::source::{ChainSource, ChainTip, HeaderInfo, SourceError};
use crate::sync::ChainEvent;

/// A block the script may connect, with the outputs it spends.
#[derive(Clone, Debug)]
pub struct ReplayBlock {
    pub block: Block,
    pub height: u32,
    pub spent: BlockSpent,
}

/// One step of the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayStep {
    Connect(BlockHash),
    Disconnect(BlockHash),
}

/// Why a step cannot be taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    UnknownBlock(BlockHash),
    /// A connect whose parent is not the tip, or a disconnect of a non-tip block.
    NotOnTip(BlockHash),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::UnknownBlock(h) => write!(f, "the script names unknown block {h}"),
            ReplayError::NotOnTip(h) => {
                write!(f, "block {h} does not fit the scripted chain's tip")
            }
        }
    }
}

impl std::error::Error for ReplayError {}

/// The scripted chain and its active branch. Steps take `&self` so the chain can be
/// shared with the sync thread that reads it as its source.
pub struct ReplayChain {
    network: Network,
    blocks: HashMap<BlockHash, ReplayBlock>,
    active: RwLock<Vec<BlockHash>>,
}

impl ReplayChain {
    /// A chain holding only `network`'s genesis block, able to connect `blocks`.
    pub fn new(network: Network, blocks: Vec<ReplayBlock>) -> ReplayChain {
        let genesis = bitcoin::constants::genesis_block(network.to_bitcoin());
        let genesis_hash = genesis.block_hash();
        let mut map: HashMap<BlockHash, ReplayBlock> = blocks
            .into_iter()
            .map(|b| (b.block.block_hash(), b))
            .collect();
        map.insert(
            genesis_hash,
            ReplayBlock {
                block: genesis,
                height: 0,
                spent: vec![Vec::new()],
            },
        );
        ReplayChain {
            network,
            blocks: map,
            active: RwLock::new(vec![genesis_hash]),
        }
    }

    // A poisoned lock can only come from a panic in these few lines; the vector is
    // still valid, so keep using it.
    fn active(&self) -> RwLockReadGuard<'_, Vec<BlockHash>> {
        self.active.read().unwrap_or_else(|e| e.into_inner())
    }

    fn active_mut(&self) -> RwLockWriteGuard<'_, Vec<BlockHash>> {
        self.active.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one step to the active chain and returns the event a host would send.
    pub fn step(&self, step: ReplayStep) -> Result<ChainEvent, ReplayError> {
        let mut active = self.active_mut();
        match step {
            ReplayStep::Connect(hash) => {
                let b = self
                    .blocks
                    .get(&hash)
                    .ok_or(ReplayError::UnknownBlock(hash))?;
                let tip = active.last().copied();
                if Some(b.block.header.prev_blockhash) != tip || b.height as usize != active.len() {
                    return Err(ReplayError::NotOnTip(hash));
                }
                active.push(hash);
                Ok(ChainEvent::Connected {
                    block: Arc::new(b.block.clone()),
                    height: b.height,
                    spent: Arc::new(b.spent.clone()),
                })
            }
            ReplayStep::Disconnect(hash) => {
                if active.len() < 2 || active.last() != Some(&hash) {
                    return Err(ReplayError::NotOnTip(hash));
                }
                active.pop();
                Ok(ChainEvent::Disconnected {
                    hash,
                    height: active.len() as u32,
                })
            }
        }
    }
}

impl ChainSource for ReplayChain {
    fn network(&self) -> Network {
        self.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        let active = self.active();
        let height = active.len() - 1;
        Ok(ChainTip {
            height: height as u32,
            hash: active[height],
        })
    }

    fn hash_at_height(&self, height: u32) -> Result<Option<BlockHash>, SourceError> {
        Ok(self.active().get(height as usize).copied())
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        self.blocks
            .get(hash)
            .map(|b| b.block.clone())
            .ok_or_else(|| SourceError::NotFound(format!("block {hash}")))
    }

    fn spent_outputs(&self, hash: &BlockHash) -> Result<BlockSpent, SourceError> {
        self.blocks
            .get(hash)
            .map(|b| b.spent.clone())
            .ok_or_else(|| SourceError::NotFound(format!("block {hash}")))
    }

    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError> {
        Ok(self.blocks.get(hash).map(|b| HeaderInfo {
            header: b.block.header,
            height: b.height,
        }))
    }

    fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, SourceError> {
        // Scripted chains are small: a scan of the active branch is enough.
        Ok(self
            .active()
            .iter()
            .filter_map(|h| self.blocks.get(h))
            .flat_map(|b| b.block.txdata.iter())
            .find(|tx| tx.compute_txid() == *txid)
            .cloned())
    }
}
