//! Helpers shared by the integration tests: fixture paths, byte fingerprints of
//! read-only directories, the oracles and the recorded chain.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bitcoin::hashes::Hash;
use opnet::format::undo::decode_rest_spent_txouts;
use opnet::index::IndexStore;
use opnet::replay::{ReplayBlock, ReplayStep};
use sha2::{Digest, Sha256};

/// A path under the repository's `testdata/regtest-small/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/regtest-small")
        .join(rel)
}

/// Every file under `dir` with its size and SHA-256: equal before and after proves
/// nothing was written, created or deleted.
pub fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u64, [u8; 32])> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path, (bytes.len() as u64, Sha256::digest(&bytes).into()));
            }
        }
    }
    out
}

/// One UTXO as the oracle lists it: (script hex, txid RPC hex, vout, sats, height, coinbase).
pub type Utxo = (String, String, u32, u64, u32, bool);

/// Bitcoin Core's own view of the UTXO set at a tip.
pub struct Oracle {
    pub tip_hash: String,
    pub tip_height: u32,
    pub txouts: u64,
    pub total_amount: u64,
    pub utxos: BTreeSet<Utxo>,
}

pub fn load_oracle(name: &str) -> Oracle {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["complete"], true, "oracle must list every UTXO");
    let mut utxos = BTreeSet::new();
    for (script, list) in v["by_script"].as_object().unwrap() {
        for u in list.as_array().unwrap() {
            utxos.insert((
                script.clone(),
                u["txid"].as_str().unwrap().to_string(),
                u["vout"].as_u64().unwrap() as u32,
                u["sats"].as_u64().unwrap(),
                u["height"].as_u64().unwrap() as u32,
                u["coinbase"].as_bool().unwrap(),
            ));
        }
    }
    let oracle = Oracle {
        tip_hash: v["tip_hash"].as_str().unwrap().to_string(),
        tip_height: v["tip_height"].as_u64().unwrap() as u32,
        txouts: v["txouts"].as_u64().unwrap(),
        total_amount: v["total_amount_sats"].as_u64().unwrap(),
        utxos,
    };
    assert_eq!(oracle.utxos.len() as u64, oracle.txouts);
    oracle
}

/// Every entry of the index, in the oracle's form; also checks each key's scripthash
/// is the SHA-256 of the stored script.
pub fn index_utxos(store: &IndexStore) -> BTreeSet<Utxo> {
    let mut out = BTreeSet::new();
    store
        .for_each_utxo(|k, v| {
            assert_eq!(k.script_hash, opnet::index::script_hash(&v.script));
            out.insert((
                hex(&v.script),
                bitcoin::Txid::from_byte_array(k.txid).to_string(),
                k.vout,
                v.amount,
                v.height,
                v.coinbase,
            ));
            Ok(())
        })
        .unwrap();
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The recorded chain: every block with its REST spent outputs, and the exact
/// connect/disconnect sequence bitcoind performed.
pub fn load_chain() -> (Vec<ReplayBlock>, Vec<ReplayStep>) {
    let text = std::fs::read_to_string(fixture("chain.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let blocks = v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let block: bitcoin::Block =
                bitcoin::consensus::deserialize(&unhex(b["raw"].as_str().unwrap())).unwrap();
            assert_eq!(block.block_hash().to_string(), b["hash"].as_str().unwrap());
            ReplayBlock {
                block,
                height: b["height"].as_u64().unwrap() as u32,
                spent: decode_rest_spent_txouts(&unhex(
                    b["spent_outputs_rest_bin"].as_str().unwrap(),
                ))
                .unwrap(),
            }
        })
        .collect();
    let steps = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let hash: bitcoin::BlockHash = e[1].as_str().unwrap().parse().unwrap();
            match e[0].as_str().unwrap() {
                "connect" => ReplayStep::Connect(hash),
                "disconnect" => ReplayStep::Disconnect(hash),
                other => panic!("unknown event {other}"),
            }
        })
        .collect();
    (blocks, steps)
}

/// Copies a directory tree (to corrupt a fixture without touching the original).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
            let mut perm = std::fs::metadata(&dest).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dest, perm).unwrap();
        }
    }
}

/// Deterministic xorshift64: random test data without a dependency, and a failing
/// run replays from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Fills `buf` with random bytes, eight per step.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}
