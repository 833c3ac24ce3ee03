//! Replay mode's script: a fixture's `chain.json` (every block with its raw bytes
//! and the spent outputs bitcoind's REST endpoint returned, the connect/disconnect
//! sequence bitcoind performed, mempool transactions) as a [`HostChain`] the host
//! steps on command.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use bitcoin::consensus::deserialize;
use bitcoin::{Block, BlockHash, Transaction, Txid};
use opnet::client::from_hex;
use opnet::format::undo::{decode_rest_spent_txouts, encode_rest_tx_spent, SpentOutput};
use opnet::replay::{ReplayBlock, ReplayChain, ReplayStep};
use opnet::source::{ChainSource, ChainTip, HeaderInfo, SourceError};
use opnet::Network;

use crate::chain::{HostChain, SpentBytes, SpentFormat};

/// The parsed script.
pub struct Script {
    pub network: Network,
    pub blocks: Vec<ReplayBlock>,
    /// The REST bytes of each block's spent outputs, as recorded.
    pub spent_rest: HashMap<BlockHash, Vec<u8>>,
    /// The raw bytes of each block, as recorded.
    pub raw: HashMap<BlockHash, Vec<u8>>,
    pub steps: Vec<ReplayStep>,
    pub mempool: Vec<Transaction>,
}

fn field<'a>(
    v: &'a serde_json::Value,
    name: &str,
    at: &str,
) -> Result<&'a serde_json::Value, String> {
    v.get(name).ok_or_else(|| format!("{at}: no \"{name}\""))
}

fn text<'a>(v: &'a serde_json::Value, name: &str, at: &str) -> Result<&'a str, String> {
    field(v, name, at)?
        .as_str()
        .ok_or_else(|| format!("{at}: \"{name}\" is not a string"))
}

fn hex(s: &str, at: &str) -> Result<Vec<u8>, String> {
    from_hex(s).map_err(|e| format!("{at}: {e}"))
}

impl Script {
    /// Reads and checks `chain.json`.
    pub fn load(path: &Path) -> Result<Script, String> {
        let text_all = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text_all)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let network: Network = text(&v, "network", "chain.json")?
            .parse()
            .map_err(|e| format!("chain.json: {e}"))?;
        let mut blocks = Vec::new();
        let mut spent_rest = HashMap::new();
        let mut raw_map = HashMap::new();
        let list = field(&v, "blocks", "chain.json")?
            .as_array()
            .ok_or("chain.json: \"blocks\" is not a list")?;
        for (i, b) in list.iter().enumerate() {
            let at = format!("chain.json block {i}");
            let raw = hex(text(b, "raw", &at)?, &at)?;
            let block: Block = deserialize(&raw).map_err(|e| format!("{at}: {e}"))?;
            let hash = block.block_hash();
            if hash.to_string() != text(b, "hash", &at)? {
                return Err(format!("{at}: its bytes hash to {hash}, not its \"hash\""));
            }
            let height = field(b, "height", &at)?
                .as_u64()
                .and_then(|h| u32::try_from(h).ok())
                .ok_or_else(|| format!("{at}: bad height"))?;
            let rest = hex(text(b, "spent_outputs_rest_bin", &at)?, &at)?;
            let spent = decode_rest_spent_txouts(&rest).map_err(|e| format!("{at}: {e}"))?;
            spent_rest.insert(hash, rest);
            raw_map.insert(hash, raw);
            blocks.push(ReplayBlock {
                block,
                height,
                spent,
            });
        }
        let mut steps = Vec::new();
        for (i, e) in field(&v, "events", "chain.json")?
            .as_array()
            .ok_or("chain.json: \"events\" is not a list")?
            .iter()
            .enumerate()
        {
            let at = format!("chain.json event {i}");
            let pair = e
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| format!("{at}: not [kind, hash]"))?;
            let hash: BlockHash = pair[1]
                .as_str()
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| format!("{at}: bad block hash"))?;
            if !raw_map.contains_key(&hash) {
                return Err(format!("{at}: block {hash} is not in \"blocks\""));
            }
            steps.push(match pair[0].as_str() {
                Some("connect") => ReplayStep::Connect(hash),
                Some("disconnect") => ReplayStep::Disconnect(hash),
                _ => return Err(format!("{at}: kind is not connect or disconnect")),
            });
        }
        let mut mempool = Vec::new();
        if let Some(m) = v.get("mempool").and_then(|m| m.as_array()) {
            for (i, t) in m.iter().enumerate() {
                let at = format!("chain.json mempool {i}");
                let raw = hex(
                    t.as_str().ok_or_else(|| format!("{at}: not a string"))?,
                    &at,
                )?;
                mempool.push(deserialize(&raw).map_err(|e| format!("{at}: {e}"))?);
            }
        }
        Ok(Script {
            network,
            blocks,
            spent_rest,
            raw: raw_map,
            steps,
            mempool,
        })
    }
}

/// The scripted chain as the host's chain: the active branch moves as steps are
/// applied; block and spent bytes are the recorded ones.
pub struct ReplayHost {
    chain: ReplayChain,
    raw: HashMap<BlockHash, Vec<u8>>,
    spent_rest: HashMap<BlockHash, Vec<u8>>,
    /// Transactions announced to the mempool, for the spent outputs of children.
    mempool: Mutex<HashMap<Txid, Transaction>>,
}

impl ReplayHost {
    /// A chain at genesis able to apply `script`'s steps.
    pub fn new(script: &Script) -> ReplayHost {
        ReplayHost {
            chain: ReplayChain::new(script.network, script.blocks.clone()),
            raw: script.raw.clone(),
            spent_rest: script.spent_rest.clone(),
            mempool: Mutex::new(HashMap::new()),
        }
    }

    /// The scripted chain, to step.
    pub fn chain(&self) -> &ReplayChain {
        &self.chain
    }

    /// The outputs `tx` spends, from the active chain or earlier mempool
    /// transactions, in the ABI's single-transaction layout; remembers `tx`.
    pub fn mempool_spent(&self, tx: &Transaction) -> Result<Vec<u8>, String> {
        let mut pool = self.mempool.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let prev = input.previous_output;
            let parent = match pool.get(&prev.txid) {
                Some(t) => t.clone(),
                None => self
                    .chain
                    .transaction(&prev.txid)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("input {prev} of {} is unknown", tx.compute_txid()))?,
            };
            let out = parent
                .output
                .get(prev.vout as usize)
                .ok_or_else(|| format!("input {prev} points past its transaction's outputs"))?;
            list.push(SpentOutput {
                amount: out.value.to_sat(),
                script: out.script_pubkey.to_bytes(),
                height: None,
                coinbase: None,
            });
        }
        pool.insert(tx.compute_txid(), tx.clone());
        let mut bytes = Vec::new();
        encode_rest_tx_spent(&list, &mut bytes);
        Ok(bytes)
    }
}

impl ChainSource for ReplayHost {
    fn network(&self) -> Network {
        self.chain.network()
    }
    fn tip(&self) -> Result<ChainTip, SourceError> {
        self.chain.tip()
    }
    fn hash_at_height(&self, height: u32) -> Result<Option<BlockHash>, SourceError> {
        self.chain.hash_at_height(height)
    }
    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        self.chain.block(hash)
    }
    fn spent_outputs(
        &self,
        hash: &BlockHash,
    ) -> Result<opnet::format::undo::BlockSpent, SourceError> {
        self.chain.spent_outputs(hash)
    }
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError> {
        self.chain.header(hash)
    }
    fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, SourceError> {
        self.chain.transaction(txid)
    }
    fn has_tx_index(&self) -> bool {
        true
    }
}

impl HostChain for ReplayHost {
    fn block_bytes(&self, hash: &BlockHash) -> Result<Vec<u8>, SourceError> {
        match self.raw.get(hash) {
            Some(b) => Ok(b.clone()),
            // The genesis block is not in the script.
            None => Ok(bitcoin::consensus::serialize(&self.chain.block(hash)?)),
        }
    }

    fn spent_bytes(&self, hash: &BlockHash) -> Result<SpentBytes, SourceError> {
        let bytes = match self.spent_rest.get(hash) {
            Some(b) => b.clone(),
            None => {
                let spent = self.chain.spent_outputs(hash)?;
                let mut out = Vec::new();
                opnet::format::undo::encode_rest_spent_txouts(&spent, &mut out);
                out
            }
        };
        Ok(SpentBytes {
            format: SpentFormat::Rest,
            bytes,
        })
    }

    fn transaction_bytes(&self, txid: &Txid) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self
            .chain
            .transaction(txid)?
            .map(|t| bitcoin::consensus::serialize(&t)))
    }
}
