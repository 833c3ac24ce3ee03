//! Reorg model check (issue 6, suite 2): random sequences of block connects,
//! shallow and deep disconnects (beyond the undo log too) and reorgs onto new
//! branches, applied to the index and to an in-memory model of the UTXO set; after
//! every step the index must hold exactly the model's UTXOs, with matching
//! counters, and its event numbers must only grow.
//!
//! Steps: `OPNET_MODEL_STEPS` (default 1,500, what CI runs); seed:
//! `OPNET_MODEL_SEED` (printed, so a failure replays).

mod common;

use std::collections::BTreeMap;

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use common::Rng;
use opnet::format::coin::Coin;
use opnet::format::undo::BlockSpent;
use opnet::index::IndexStore;
use opnet::sync::{Engine, EngineConfig, SyncError};
use opnet::synth::make_block;
use opnet::Network;

type Outpoint = ([u8; 32], u32);

/// A block of the model's active chain and what it changed.
struct Applied {
    block: Block,
    spent: BlockSpent,
    height: u32,
    created: Vec<(Outpoint, Coin)>,
    removed: Vec<(Outpoint, Coin)>,
}

/// The UTXO set as the chain defines it.
#[derive(Default)]
struct Model {
    utxos: BTreeMap<Outpoint, Coin>,
    chain: Vec<Applied>,
}

impl Model {
    fn tip(&self) -> (BlockHash, u32) {
        match self.chain.last() {
            Some(a) => (a.block.block_hash(), a.height),
            None => (Network::Regtest.genesis_hash(), 0),
        }
    }

    fn apply(&mut self, block: Block, spent: BlockSpent, height: u32, spend: &[(Outpoint, Coin)]) {
        let mut created = Vec::new();
        for tx in &block.txdata {
            let txid = tx.compute_txid().to_byte_array();
            for (vout, out) in tx.output.iter().enumerate() {
                let script = out.script_pubkey.as_bytes();
                if script.first() == Some(&0x6a) || script.len() > 10_000 {
                    continue;
                }
                created.push((
                    (txid, vout as u32),
                    Coin {
                        amount: out.value.to_sat(),
                        height,
                        coinbase: tx.is_coinbase(),
                        script: script.to_vec(),
                    },
                ));
            }
        }
        for (op, _) in spend {
            self.utxos.remove(op);
        }
        for (op, coin) in &created {
            self.utxos.insert(*op, coin.clone());
        }
        self.chain.push(Applied {
            block,
            spent,
            height,
            created,
            removed: spend.to_vec(),
        });
    }

    fn undo(&mut self) {
        let a = self.chain.pop().expect("a block to undo");
        for (op, _) in &a.created {
            self.utxos.remove(op);
        }
        for (op, coin) in a.removed {
            self.utxos.insert(op, coin);
        }
    }
}

fn index_set(store: &IndexStore) -> BTreeMap<Outpoint, Coin> {
    let mut out = BTreeMap::new();
    store
        .for_each_utxo(|k, v| {
            out.insert(
                (k.txid, k.vout),
                Coin {
                    amount: v.amount,
                    height: v.height,
                    coinbase: v.coinbase,
                    script: v.script.clone(),
                },
            );
            Ok(())
        })
        .unwrap();
    out
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &std::path::Path, retention: u32) -> Engine {
    let mut cfg = EngineConfig::new(dir, Network::Regtest);
    cfg.undo_retention = retention;
    cfg.readers = 1;
    let mut engine = Engine::open(cfg).unwrap();
    if engine.meta().is_none() {
        engine.init_at_genesis().unwrap();
    }
    engine
}

#[test]
fn random_connects_disconnects_and_reorgs_match_an_in_memory_utxo_model() {
    const RETENTION: u32 = 12;
    let steps = env("OPNET_MODEL_STEPS", 1_500);
    let seed = std::env::var("OPNET_MODEL_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x5eed)
        });
    eprintln!("reorg model: {steps} steps, OPNET_MODEL_SEED={seed:x}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut generation = 0;
    let mut engine = open(&tmp.path().join("idx0"), RETENTION);
    let mut model = Model::default();
    let (mut connects, mut disconnects, mut deep, mut rebuilds, mut max_depth) = (0, 0, 0, 0, 0);
    let mut last_seq = 0u64;
    for step in 0..steps {
        let what = format!("seed {seed:x} step {step}");
        let roll = rng.next() % 100;
        if roll < 72 || model.chain.is_empty() {
            // Connect a block spending some of the UTXOs.
            let n = (rng.next() % 7) as usize;
            let mut spend: Vec<(Outpoint, Coin)> = Vec::new();
            let keys: Vec<Outpoint> = model.utxos.keys().copied().collect();
            for _ in 0..n.min(keys.len()) {
                let op = keys[(rng.next() % keys.len() as u64) as usize];
                if !spend.iter().any(|(o, _)| *o == op) {
                    spend.push((op, model.utxos[&op].clone()));
                }
            }
            let (prev, height) = model.tip();
            let coins: Vec<([u8; 32], u32, Coin)> = spend
                .iter()
                .map(|(op, c)| (op.0, op.1, c.clone()))
                .collect();
            let n_tx = 1 + (rng.next() % 4) as usize;
            let n_out = 3 + (rng.next() % 8) as usize;
            let (block, spent) = make_block(prev, height + 1, &coins, n_tx, n_out, rng.next());
            engine
                .connect(&block, height + 1, &spent)
                .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
            model.apply(block, spent, height + 1, &spend);
            connects += 1;
        } else {
            // Disconnect 1–3 blocks (a reorg when connects follow), now and then
            // deeper than the undo log.
            let depth = if roll >= 97 {
                RETENTION as usize + 1 + (rng.next() % 5) as usize
            } else {
                1 + (rng.next() % 3) as usize
            };
            let depth = depth.min(model.chain.len());
            max_depth = max_depth.max(depth);
            let mut needs_rebuild = false;
            for _ in 0..depth {
                match engine.disconnect_tip() {
                    Ok(()) => {
                        model.undo();
                        disconnects += 1;
                    }
                    Err(SyncError::NeedsResync(_)) => {
                        needs_rebuild = true;
                        break;
                    }
                    Err(e) => panic!("{what}: disconnect: {e}"),
                }
            }
            if needs_rebuild {
                // Deeper than the undo log: the engine marks the index stale; a new
                // index is built from the chain (here: replaying the model's chain).
                deep += 1;
                let left = depth.min(model.chain.len());
                let keep = model.chain.len() - left;
                while model.chain.len() > keep {
                    model.undo();
                }
                generation += 1;
                rebuilds += 1;
                drop(engine);
                engine = open(&tmp.path().join(format!("idx{generation}")), RETENTION);
                for a in &model.chain {
                    engine.connect(&a.block, a.height, &a.spent).unwrap();
                }
                last_seq = 0;
            }
        }
        let meta = engine.meta().unwrap().clone();
        let (tip_hash, tip_height) = model.tip();
        assert_eq!(
            (meta.tip.height, meta.tip.hash),
            (tip_height, tip_hash.to_byte_array()),
            "{what}"
        );
        let got = index_set(&engine.store().unwrap());
        assert_eq!(got.len(), model.utxos.len(), "{what}: UTXO count");
        assert!(
            got == model.utxos,
            "{what}: the index differs from the model"
        );
        assert_eq!(meta.utxo_count, model.utxos.len() as u64, "{what}");
        assert_eq!(
            meta.total_amount,
            model.utxos.values().map(|c| c.amount).sum::<u64>(),
            "{what}"
        );
        assert!(
            meta.event_seq >= last_seq,
            "{what}: event numbers went back"
        );
        last_seq = meta.event_seq;
    }
    eprintln!(
        "reorg model: {steps} steps: {connects} connects, {disconnects} disconnects, {deep} deeper than the undo log ({rebuilds} rebuilds), deepest {max_depth}, final height {}, {} UTXOs",
        model.tip().1,
        model.utxos.len()
    );
    assert!(
        connects > 0 && disconnects > 0 && deep > 0,
        "every kind of step ran"
    );
}
