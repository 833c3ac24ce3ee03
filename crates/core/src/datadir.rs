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
    /// connected (scripts checked, data and undo on disk, not marked failed). Among
    /// equal-work tips it keeps the chain of the chainstate's best block, as Bitcoin
    /// Core does on restart, so `dir/chainstate` is read (read-only) for that hint.
    pub fn open(dir: &Path, network: Network) -> Result<DatadirSource, DatadirError> {
        let hint = crate::chainstate::Chainstate::open(&dir.join("chainstate"))
            .map(|c| c.best_block())
            .ok();
        DatadirSource::open_with_hint(dir, network, hint)
    }

    /// As [`DatadirSource::open`], with the block whose chain wins a tie given
    /// explicitly (e.g. the best block of a chainstate snapshot taken elsewhere).
    pub fn open_with_hint(
        dir: &Path,
        network: Network,
        hint: Option<BlockHash>,
    ) -> Result<DatadirSource, DatadirError> {
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
            active_chain(&entries, hint).ok_or_else(|| DatadirError::NoChain(dir.to_path_buf()))?;
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

/// Follows `prev` links from the best connected block down to genesis. Entries
/// whose height does not follow their parent's are ignored (with their
/// descendants): a corrupt record must not derail the chain.
fn active_chain(
    entries: &HashMap<BlockHash, DiskBlockIndex>,
    hint: Option<BlockHash>,
) -> Option<Vec<BlockHash>> {
    // Cumulative work, computed in height order so parents come first.
    let mut by_height: Vec<&DiskBlockIndex> = entries.values().collect();
    by_height.sort_by_key(|e| e.height);
    let mut work: HashMap<BlockHash, Work> = HashMap::with_capacity(by_height.len());
    let mut failed: HashMap<BlockHash, bool> = HashMap::with_capacity(by_height.len());
    let mut candidates: Vec<(&DiskBlockIndex, Work)> = Vec::new();
    for e in by_height {
        let own = e.header.target().to_work();
        let parent = e.header.prev_blockhash;
        let (w, parent_failed) = if e.height == 0 {
            (own, false)
        } else {
            match (work.get(&parent), failed.get(&parent), entries.get(&parent)) {
                (Some(pw), Some(pf), Some(p)) if p.height + 1 == e.height => (*pw + own, *pf),
                // An orphan or inconsistent entry: it cannot be on a chain.
                _ => continue,
            }
        };
        let is_failed = parent_failed || e.failed();
        work.insert(e.hash, w);
        failed.insert(e.hash, is_failed);
        // Bitcoin Core never raises genesis to script-validated; it is connected
        // by definition once its data is on disk.
        let connected = e.have_data() && (e.height == 0 || (e.have_undo() && e.valid_level() >= 5));
        if !is_failed && connected {
            candidates.push((e, w));
        }
    }
    let max = candidates.iter().map(|(_, w)| *w).max()?;
    // Among equal-work tips: the chain holding the chainstate's best block, then
    // (no hint, or none holds it) the lowest hash, so the choice is deterministic.
    let hint_height = hint.and_then(|h| entries.get(&h)).map(|e| e.height);
    let tip = candidates
        .iter()
        .filter(|(_, w)| *w == max)
        .map(|(e, _)| *e)
        .min_by_key(|e| {
            let on_hint = match (hint, hint_height) {
                (Some(h), Some(hh)) => ancestor_at(entries, e, hh) == Some(h),
                _ => false,
            };
            (!on_hint, e.hash)
        })?;
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

/// The hash of `from`'s ancestor at `height` (itself included).
fn ancestor_at(
    entries: &HashMap<BlockHash, DiskBlockIndex>,
    from: &DiskBlockIndex,
    height: u32,
) -> Option<BlockHash> {
    let mut cur = from;
    while cur.height > height {
        cur = entries.get(&cur.header.prev_blockhash)?;
    }
    (cur.height == height).then_some(cur.hash)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::block_index::{
        BLOCK_HAVE_DATA, BLOCK_HAVE_UNDO, BLOCK_VALID_SCRIPTS, BLOCK_VALID_TREE,
    };

    fn entry(header: bitcoin::block::Header, height: u32, status: u32) -> DiskBlockIndex {
        DiskBlockIndex {
            hash: header.block_hash(),
            height,
            status,
            n_tx: 1,
            file: Some(0),
            data_pos: Some(8),
            undo_pos: Some(8),
            header,
        }
    }

    fn child(parent: &DiskBlockIndex, nonce: u32) -> DiskBlockIndex {
        let mut h = parent.header;
        h.prev_blockhash = parent.hash;
        h.nonce = nonce;
        entry(
            h,
            parent.height + 1,
            BLOCK_HAVE_DATA | BLOCK_HAVE_UNDO | BLOCK_VALID_SCRIPTS,
        )
    }

    fn genesis() -> DiskBlockIndex {
        let g = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        // As Bitcoin Core leaves it: data on disk, validated only to TREE.
        entry(g, 0, BLOCK_HAVE_DATA | BLOCK_VALID_TREE)
    }

    fn index(list: &[&DiskBlockIndex]) -> HashMap<BlockHash, DiskBlockIndex> {
        list.iter().map(|e| (e.hash, (*e).clone())).collect()
    }

    #[test]
    fn equal_work_tips_follow_the_chainstate_best_block() {
        let g = genesis();
        let (x, y) = (child(&g, 1), child(&g, 2));
        let all = index(&[&g, &x, &y]);
        assert_eq!(active_chain(&all, Some(x.hash)), Some(vec![g.hash, x.hash]));
        assert_eq!(active_chain(&all, Some(y.hash)), Some(vec![g.hash, y.hash]));
        // The hint's descendant wins a tie too; strictly more work always wins.
        let x2 = child(&x, 3);
        let y2 = child(&y, 4);
        let y3 = child(&y2, 5);
        let all = index(&[&g, &x, &y, &x2, &y2]);
        assert_eq!(
            active_chain(&all, Some(x.hash)),
            Some(vec![g.hash, x.hash, x2.hash])
        );
        let all = index(&[&g, &x, &y, &x2, &y2, &y3]);
        assert_eq!(
            active_chain(&all, Some(x.hash)).map(|c| c[3]),
            Some(y3.hash)
        );
    }

    #[test]
    fn a_datadir_holding_only_genesis_has_a_chain() {
        let g = genesis();
        assert_eq!(active_chain(&index(&[&g]), None), Some(vec![g.hash]));
    }

    #[test]
    fn a_record_whose_height_does_not_follow_its_parent_is_ignored() {
        let g = genesis();
        let x = child(&g, 1);
        let mut bad = child(&x, 2);
        bad.height = 7;
        assert_eq!(
            active_chain(&index(&[&g, &x, &bad]), None),
            Some(vec![g.hash, x.hash])
        );
    }
}
