//! The indexes the measurements serve from.
//!
//! - [`Served`]: built by writing entries straight into an index (`IndexBatch`), so
//!   it holds exactly what the queries need: a scripthash with 10 UTXOs, one with
//!   1M (the stream), and coins that small blocks spend (the fan-out).
//! - [`Busy`]: a synthetic mainnet-like chainstate of a few million coins scanned
//!   with `Engine::fresh_scan` (the real build path, so the tables look like a real
//!   index), plus the same 10-UTXO scripthash, and mainnet-shaped blocks to connect.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, Transaction, Txid};
use opnet::chainstate::Chainstate;
use opnet::format::coin::Coin;
use opnet::format::undo::BlockSpent;
use opnet::index::{
    BlockRef, IndexBatch, IndexMeta, IndexStore, StoreOptions, SyncState, UtxoKey, UtxoValue,
};
use opnet::server::{Node, DEFAULT_MEMPOOL_LOG_BYTES};
use opnet::source::{ChainSource, ChainTip, HeaderInfo, SourceError};
use opnet::sync::{Engine, EngineConfig};
use opnet::synth::{coins, make_block, write_chainstate, SynthSpec};
use opnet::Network;
use sha2::{Digest, Sha256};

/// Height of the snapshot both indexes start at (mainnet-like).
const SNAPSHOT_HEIGHT: u32 = 850_000;
/// UTXOs of the scripthash the latency and throughput measurements query.
pub const TARGET_UTXOS: usize = 10;

/// A chain source that knows the snapshot block only: the engine connects the
/// benchmark's blocks itself and never asks the source for them.
pub struct BenchSource {
    pub best: BlockHash,
    pub height: u32,
}

impl ChainSource for BenchSource {
    fn network(&self) -> Network {
        Network::Regtest
    }
    fn tip(&self) -> Result<ChainTip, SourceError> {
        Ok(ChainTip {
            height: self.height,
            hash: self.best,
        })
    }
    fn hash_at_height(&self, h: u32) -> Result<Option<BlockHash>, SourceError> {
        Ok((h == self.height).then_some(self.best))
    }
    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        Err(SourceError::NotFound(hash.to_string()))
    }
    fn spent_outputs(&self, hash: &BlockHash) -> Result<BlockSpent, SourceError> {
        Err(SourceError::NotFound(hash.to_string()))
    }
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError> {
        if *hash != self.best {
            return Ok(None);
        }
        let mut header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        header.prev_blockhash = BlockHash::all_zeros();
        Ok(Some(HeaderInfo {
            header,
            height: self.height,
        }))
    }
    fn transaction(&self, _: &Txid) -> Result<Option<Transaction>, SourceError> {
        Err(SourceError::Unsupported("benchmark source".into()))
    }
}

/// 32 deterministic pseudo-random bytes for `(tag, n)`.
fn hash_of(tag: &str, n: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update(n.to_le_bytes());
    h.finalize().into()
}

/// A P2WPKH scriptPubKey (22 bytes, the most common script on mainnet).
fn p2wpkh(tag: &str, n: u64) -> Vec<u8> {
    let mut s = vec![0x00, 0x14];
    s.extend_from_slice(&hash_of(tag, n)[..20]);
    s
}

/// `count` UTXOs paying `script`, with txids in key order.
fn entries_for(script: &[u8], tag: &str, count: u64) -> Vec<(UtxoKey, UtxoValue)> {
    let sh = opnet::index::script_hash(script);
    let mut out: Vec<(UtxoKey, UtxoValue)> = (0..count)
        .map(|i| {
            let r = hash_of(tag, i);
            let key = UtxoKey {
                script_hash: sh,
                txid: hash_of(&format!("{tag}-txid"), i),
                vout: u32::from(r[0] % 4),
            };
            let value = UtxoValue {
                amount: 546 + u64::from_le_bytes(r[8..16].try_into().unwrap()) % 100_000_000,
                height: 1 + u32::from_le_bytes(r[16..20].try_into().unwrap()) % SNAPSHOT_HEIGHT,
                coinbase: false,
                script: script.to_vec(),
            };
            (key, value)
        })
        .collect();
    out.sort_by_key(|a| a.0);
    out
}

/// Writes `entries` into the index at `index_dir` in batches of 100,000, then
/// commits the metadata: a new index at the snapshot (`create`), or the existing
/// metadata with the totals raised.
fn write_entries(index_dir: &Path, entries: &[(UtxoKey, UtxoValue)], create: Option<BlockRef>) {
    let (store, meta) =
        IndexStore::open(index_dir, Network::Regtest, &StoreOptions::default()).expect("index");
    let mut meta = match (meta, create) {
        (Some(m), None) => m,
        (None, Some(at)) => IndexMeta {
            network: Network::Regtest,
            state: SyncState::Ready,
            tip: at,
            snapshot: at,
            utxo_count: 0,
            total_amount: 0,
            event_seq: 0,
        },
        _ => panic!("write_entries: create exactly when the index is new"),
    };
    for chunk in entries.chunks(100_000) {
        let mut batch = IndexBatch::new();
        for (k, v) in chunk {
            batch.put_utxo(k, v);
            meta.utxo_count += 1;
            meta.total_amount += v.amount;
        }
        store.write(batch).expect("write entries");
    }
    store
        .commit(IndexBatch::new(), &meta)
        .expect("commit metadata");
}

/// The index of the latency, throughput, fan-out and stream measurements.
pub struct Served {
    pub engine: Engine,
    pub node: Arc<Node>,
    /// The scripthash with [`TARGET_UTXOS`] UTXOs.
    pub target: [u8; 32],
    /// The scripthash with `whale_utxos` UTXOs.
    pub whale: [u8; 32],
    pub whale_utxos: u64,
    /// Coins in the index that the fan-out's blocks spend.
    pub spendable: Vec<([u8; 32], u32, Coin)>,
}

pub fn build_served(opnet_dir: &Path, whale_utxos: u64, spendable: usize) -> Served {
    let t = Instant::now();
    let target_script = p2wpkh("target", 0);
    let whale_script = p2wpkh("whale", 0);
    let mut entries = entries_for(&target_script, "target", TARGET_UTXOS as u64);
    entries.extend(entries_for(&whale_script, "whale", whale_utxos));
    let spend: Vec<([u8; 32], u32, Coin)> = (0..spendable as u64)
        .map(|i| {
            let script = p2wpkh("spendable", i);
            let (k, v) = entries_for(&script, &format!("spendable{i}"), 1).remove(0);
            entries.push((k, v.clone()));
            (
                k.txid,
                k.vout,
                Coin {
                    amount: v.amount,
                    height: v.height,
                    coinbase: false,
                    script,
                },
            )
        })
        .collect();
    entries.sort_by_key(|a| a.0);
    let snapshot = BlockRef {
        height: SNAPSHOT_HEIGHT,
        hash: hash_of("served-snapshot", 0),
    };
    write_entries(&opnet_dir.join("index"), &entries, Some(snapshot));
    let mut engine =
        Engine::open(EngineConfig::new(opnet_dir, Network::Regtest)).expect("open engine");
    let source = Arc::new(BenchSource {
        best: BlockHash::from_byte_array(snapshot.hash),
        height: snapshot.height,
    });
    let node = Node::attach(&mut engine, source, DEFAULT_MEMPOOL_LOG_BYTES).expect("attach");
    eprintln!(
        "served index: {} UTXOs written in {:.1} s",
        entries.len(),
        t.elapsed().as_secs_f64()
    );
    Served {
        engine,
        node,
        target: opnet::index::script_hash(&target_script),
        whale: opnet::index::script_hash(&whale_script),
        whale_utxos,
        spendable: spend,
    }
}

/// A small block on the engine's tip spending `spend` (the fan-out's events).
pub fn small_block(
    engine: &Engine,
    spend: &[([u8; 32], u32, Coin)],
    seed: u64,
) -> (Block, BlockSpent, u32) {
    let tip = engine.meta().expect("meta").tip;
    let prev = BlockHash::from_byte_array(tip.hash);
    let (block, spent) = make_block(prev, tip.height + 1, spend, 10, 40, seed);
    (block, spent, tip.height + 1)
}

/// The index of the "queries while blocks connect" measurement.
pub struct Busy {
    pub engine: Engine,
    pub node: Arc<Node>,
    pub target: [u8; 32],
    pub utxos: u64,
    /// Mainnet-shaped blocks, each on the previous one, starting on the index's tip.
    pub blocks: Vec<(Block, BlockSpent, u32)>,
}

/// Generates (or reuses) the synthetic chainstate of `utxos` coins in `data`.
fn chainstate_for(data: &Path, utxos: u64) -> (SynthSpec, PathBuf) {
    let spec = SynthSpec::new(utxos, 42);
    let dir = data.join(format!("chainstate-{utxos}-seed42"));
    let marker = dir.join("COMPLETE");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(data).expect("bench data dir");
        eprintln!("generating {utxos} UTXOs into {}", dir.display());
        let t = Instant::now();
        write_chainstate(&dir, &spec).expect("generate chainstate");
        eprintln!("  generated in {:.1} s", t.elapsed().as_secs_f64());
        std::fs::write(&marker, b"").expect("marker");
    }
    (spec, dir)
}

pub fn build_busy(data: &Path, opnet_dir: &Path, utxos: u64, n_blocks: usize) -> Busy {
    let (spec, cs_dir) = chainstate_for(data, utxos);
    let cs = Chainstate::open(&cs_dir).expect("open chainstate");
    let source = Arc::new(BenchSource {
        best: cs.best_block(),
        height: spec.best_height,
    });
    drop(cs);
    let config = EngineConfig::new(opnet_dir, Network::Regtest);
    let t = Instant::now();
    {
        let mut engine = Engine::open(config.clone()).expect("open engine");
        engine
            .fresh_scan(source.as_ref(), &|| Chainstate::open(&cs_dir))
            .expect("scan");
    }
    eprintln!(
        "busy index: {utxos} UTXOs scanned in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let target_script = p2wpkh("target", 0);
    write_entries(
        &opnet_dir.join("index"),
        &entries_for(&target_script, "target", TARGET_UTXOS as u64),
        None,
    );
    let mut engine = Engine::open(config).expect("reopen engine");
    let node =
        Node::attach(&mut engine, source.clone(), DEFAULT_MEMPOOL_LOG_BYTES).expect("attach");

    // 6,000 distinct coins per block, spread over the whole set and shuffled so a
    // block's inputs are not neighbours in key order (as in scan_and_connect).
    let t = Instant::now();
    let need = n_blocks * 6000;
    let stride = (spec.utxos / need as u64).max(1);
    let mut picked: Vec<([u8; 32], u32, Coin)> = coins(&spec)
        .enumerate()
        .filter(|(i, _)| (*i as u64) % stride == 0)
        .map(|(_, c)| c)
        .take(need)
        .collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..picked.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        picked.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let tip = engine.meta().expect("meta").tip;
    let mut prev = BlockHash::from_byte_array(tip.hash);
    let mut blocks = Vec::with_capacity(n_blocks);
    for (b, spend) in picked.chunks(6000).enumerate() {
        let height = tip.height + 1 + b as u32;
        let (block, spent) = make_block(prev, height, spend, 3000, 7000, b as u64);
        prev = block.block_hash();
        blocks.push((block, spent, height));
    }
    eprintln!(
        "busy blocks: {} made in {:.1} s",
        blocks.len(),
        t.elapsed().as_secs_f64()
    );
    Busy {
        engine,
        node,
        target: opnet::index::script_hash(&target_script),
        utxos,
        blocks,
    }
}
