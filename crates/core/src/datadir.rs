//! A Bitcoin Core datadir as a [`ChainSource`]: the block index (`blocks/index`), the
//! block and undo files, read strictly read-only. Used by the loader's datadir mode
//! and by every test that checks the index against the fixtures.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bitcoin::pow::Work;
use bitcoin::{Block, BlockHash, Transaction, Txid};

use crate::format::block_index::{decode_block_index, DiskBlockIndex};
use crate::format::blockfile::BlockFiles;
use crate::format::undo::{decode_block_undo, BlockSpent};
use crate::format::FormatError;
use crate::leveldb::{LdbError, ReadOnlyDb};
use crate::network::Network;
use crate::source::{ChainSource, ChainTip, HeaderInfo, SourceError};

/// Why a datadir cannot be used as a chain source.
#[derive(Debug)]
pub enum DatadirError {
    /// A directory the datadir must have is missing.
    Missing(PathBuf),
    /// The block index LevelDB could not be read.
    Db(LdbError),
    /// A record in the block index or block files is malformed.
    Format(FormatError),
    /// The datadir's genesis block is another network's.
    WrongNetwork {
        expected: Network,
        found: Option<Network>,
        dir: PathBuf,
    },
    /// The block index has no fully validated block with data and undo.
    NoChain(PathBuf),
}

impl fmt::Display for DatadirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatadirError::Missing(p) => write!(
                f,
                "{} does not exist (is this a Bitcoin Core datadir?)",
                p.display()
            ),
            DatadirError::Db(e) => write!(f, "reading the block index: {e}"),
            DatadirError::Format(e) => write!(f, "{e}"),
            DatadirError::WrongNetwork {
                expected,
                found,
                dir,
            } => match found {
                Some(n) => write!(f, "{} holds a {n} chain, not {expected}", dir.display()),
                None => write!(
                    f,
                    "{} holds a chain of no known network (expected {expected})",
                    dir.display()
                ),
            },
            DatadirError::NoChain(p) => write!(f, "{} has no validated blocks yet", p.display()),
        }
    }
}

impl std::error::Error for DatadirError {}

impl From<LdbError> for DatadirError {
    fn from(e: LdbError) -> Self {
        DatadirError::Db(e)
    }
}

impl From<FormatError> for DatadirError {
    fn from(e: FormatError) -> Self {
        DatadirError::Format(e)
    }
}

/// Finds the directory holding `blocks/` and `chainstate/`: `dir` itself, or, given
/// bitcoind's top-level datadir, the network's subdirectory (`regtest/`, ...).
pub fn resolve_datadir(dir: &Path, network: Network) -> Result<PathBuf, DatadirError> {
    if dir.join("blocks").is_dir() {
        return Ok(dir.to_path_buf());
    }
    if let Some(sub) = network.datadir_subdir() {
        let candidate = dir.join(sub);
        if candidate.join("blocks").is_dir() {
            return Ok(candidate);
        }
    }
    Err(DatadirError::Missing(dir.join("blocks")))
}

/// The block index loaded in memory, the active chain and the block files.
pub struct DatadirSource {
    network: Network,
    dir: PathBuf,
    files: BlockFiles,
    entries: HashMap<BlockHash, DiskBlockIndex>,
    active: Vec<BlockHash>,
}

impl DatadirSource {
    /// Loads the block index of `dir` (the directory holding `blocks/`) and picks the
    /// active chain: the most-work block that Bitcoin Core fully validated and
    /// connected (scripts checked, data and undo on disk, not marked failed).
    pub fn open(dir: &Path, network: Network) -> Result<DatadirSource, DatadirError> {
        let blocks = dir.join("blocks");
        let index_dir = blocks.join("index");
        if !index_dir.is_dir() {
            return Err(DatadirError::Missing(index_dir));
        }
        let db = ReadOnlyDb::open(&index_dir)?;
        let mut entries = HashMap::new();
        let mut it = db.range(b"b", Some(b"c"))?;
        while it.advance()? {
            let e = decode_block_index(it.key(), it.value())?;
            entries.insert(e.hash, e);
        }
        drop(it);
        let files = BlockFiles::open(&blocks, network.magic())?;
        let active =
            active_chain(&entries).ok_or_else(|| DatadirError::NoChain(dir.to_path_buf()))?;
        let genesis = active[0];
        if genesis != network.genesis_hash() {
            let found = Network::ALL
                .into_iter()
                .find(|n| n.genesis_hash() == genesis);
            return Err(DatadirError::WrongNetwork {
                expected: network,
                found,
                dir: dir.to_path_buf(),
            });
        }
        tracing::info!(
            dir = %dir.display(),
            blocks = entries.len(),
            tip_height = active.len() - 1,
            tip = %active[active.len() - 1],
            "loaded block index"
        );
        Ok(DatadirSource {
            network,
            dir: dir.to_path_buf(),
            files,
            entries,
            active,
        })
    }

    /// The datadir this source reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, hash: &BlockHash) -> Result<&DiskBlockIndex, SourceError> {
        self.entries
            .get(hash)
            .ok_or_else(|| SourceError::NotFound(format!("block {hash}")))
    }
}

/// Follows `prev` links from the best connected block down to genesis.
fn active_chain(entries: &HashMap<BlockHash, DiskBlockIndex>) -> Option<Vec<BlockHash>> {
    // Cumulative work, computed in height order so parents come first.
    let mut by_height: Vec<&DiskBlockIndex> = entries.values().collect();
    by_height.sort_by_key(|e| e.height);
    let mut work: HashMap<BlockHash, Work> = HashMap::with_capacity(by_height.len());
    let mut failed: HashMap<BlockHash, bool> = HashMap::with_capacity(by_height.len());
    let mut best: Option<(&DiskBlockIndex, Work)> = None;
    for e in by_height {
        let own = e.header.target().to_work();
        let parent = e.header.prev_blockhash;
        let (w, parent_failed) = if e.height == 0 {
            (own, false)
        } else {
            match (work.get(&parent), failed.get(&parent)) {
                (Some(pw), Some(pf)) => (*pw + own, *pf),
                // An orphan entry: no known parent, cannot be on a chain.
                _ => continue,
            }
        };
        let is_failed = parent_failed || e.failed();
        work.insert(e.hash, w);
        failed.insert(e.hash, is_failed);
        let connected = e.have_data() && (e.have_undo() || e.height == 0) && e.valid_level() >= 5;
        if is_failed || !connected {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, bw)) => w > *bw || (w == *bw && e.hash < b.hash),
        };
        if better {
            best = Some((e, w));
        }
    }
    let (tip, _) = best?;
    let mut chain = vec![tip.hash; tip.height as usize + 1];
    let mut cur = tip;
    loop {
        chain[cur.height as usize] = cur.hash;
        if cur.height == 0 {
            break;
        }
        cur = entries.get(&cur.header.prev_blockhash)?;
    }
    Some(chain)
}

impl ChainSource for DatadirSource {
    fn network(&self) -> Network {
        self.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        let height = self.active.len() - 1;
        Ok(ChainTip {
            height: height as u32,
            hash: self.active[height],
        })
    }

    fn hash_at_height(&self, height: u32) -> Result<Option<BlockHash>, SourceError> {
        Ok(self.active.get(height as usize).copied())
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        let e = self.entry(hash)?;
        let (Some(file), Some(pos)) = (e.file, e.data_pos) else {
            return Err(SourceError::NotFound(format!(
                "block {hash} has no data on disk"
            )));
        };
        let raw = self.files.read_block(file, pos).map_err(corrupt)?;
        let block: Block = bitcoin::consensus::deserialize(&raw).map_err(|err| {
            SourceError::Corrupt(format!("block {hash} in blk{file:05}.dat at {pos}: {err}"))
        })?;
        if !block.check_merkle_root() || !block.check_witness_commitment() {
            return Err(SourceError::Corrupt(format!(
                "block {hash} in blk{file:05}.dat at {pos}: transactions do not match the header"
            )));
        }
        if block.block_hash() != *hash {
            return Err(SourceError::Corrupt(format!(
                "blk{file:05}.dat at {pos} holds block {}, the index says {hash}",
                block.block_hash()
            )));
        }
        Ok(block)
    }

    fn spent_outputs(&self, hash: &BlockHash) -> Result<BlockSpent, SourceError> {
        let e = self.entry(hash)?;
        if e.height == 0 {
            // The genesis block spends nothing and has no undo record.
            return Ok(vec![Vec::new()]);
        }
        let (Some(file), Some(pos)) = (e.file, e.undo_pos) else {
            return Err(SourceError::NotFound(format!(
                "block {hash} has no undo data on disk"
            )));
        };
        let raw = self
            .files
            .read_undo(file, pos, &e.header.prev_blockhash)
            .map_err(corrupt)?;
        decode_block_undo(&raw).map_err(corrupt)
    }

    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError> {
        Ok(self.entries.get(hash).map(|e| HeaderInfo {
            header: e.header,
            height: e.height,
        }))
    }

    fn transaction(&self, _txid: &Txid) -> Result<Option<Transaction>, SourceError> {
        Err(SourceError::Unsupported(
            "datadir mode does not read bitcoind's transaction index".into(),
        ))
    }
}

fn corrupt(e: FormatError) -> SourceError {
    SourceError::Corrupt(e.to_string())
}
