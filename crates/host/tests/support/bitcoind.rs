//! A real, stock bitcoind (built by `scripts/bitcoind.sh`) for the integration
//! suites: started on free loopback ports in a temporary datadir (regtest, no
//! wallet), driven by RPC; coins made with `generateblock` to keys the test holds
//! and spent by transactions signed with `signrawtransactionwithkey` (P2TR key
//! path signed here, which that RPC cannot do from bare keys). Every answer the
//! suites check comes from this node: `scantxoutset`, `gettxoutsetinfo`,
//! `getrawmempool`, `gettxspendingprevout`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, TapTweak};
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    absolute, transaction, Amount, BlockHash, CompressedPublicKey, OutPoint, PrivateKey,
    PublicKey, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use opnet_host::follow::http::HttpLimits;
use opnet_host::follow::rpc::{RpcAuth, RpcClient};
use serde_json::{json, Value};

/// The bitcoind binary: `$OPNET_BITCOIND`, else what `scripts/bitcoind.sh`
/// prints (it builds and caches it when missing: about 15 minutes once).
pub fn bitcoind_path() -> PathBuf {
    if let Ok(p) = std::env::var("OPNET_BITCOIND") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "OPNET_BITCOIND={} does not exist", p.display());
        return p;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bitcoind.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/bitcoind.sh");
    assert!(out.status.success(), "scripts/bitcoind.sh failed");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    assert!(path.exists(), "scripts/bitcoind.sh printed {}", path.display());
    path
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running bitcoind.
pub struct Node {
    pub bin: PathBuf,
    /// bitcoind's top datadir; the chain lives in `<datadir>/regtest`.
    pub datadir: PathBuf,
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub extra: Vec<String>,
    child: Option<Child>,
    rpc: RpcClient,
}

pub const RPC_USER: &str = "opnet";
pub const RPC_PASSWORD: &str = "opnet-test";

impl Node {
    /// Starts bitcoind in `datadir` (created) with `extra` arguments and waits
    /// until its RPC answers.
    pub fn start(datadir: &Path, extra: &[&str]) -> Node {
        std::fs::create_dir_all(datadir).unwrap();
        let rpc_port = free_port();
        let p2p_port = free_port();
        let rpc = RpcClient::new(
            &format!("http://127.0.0.1:{rpc_port}"),
            RpcAuth::UserPass(RPC_USER.into(), RPC_PASSWORD.into()),
            HttpLimits::default(),
        )
        .unwrap();
        let mut node = Node {
            bin: bitcoind_path(),
            datadir: datadir.to_path_buf(),
            rpc_port,
            p2p_port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            rpc,
        };
        node.launch();
        node
    }

    /// The network directory (what opnet-host's `--datadir` names).
    pub fn net_dir(&self) -> PathBuf {
        self.datadir.join("regtest")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-regtest")
            .arg(format!("-datadir={}", self.datadir.display()))
            .arg(format!("-rpcport={}", self.rpc_port))
            .arg(format!("-port={}", self.p2p_port))
            .arg(format!("-rpcuser={RPC_USER}"))
            .arg(format!("-rpcpassword={RPC_PASSWORD}"))
            .args(["-rest", "-listen=0", "-server", "-printtoconsole=0", "-rpcthreads=8"])
            .args(["-fallbackfee=0.0001", "-debug=mempool"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("starting bitcoind"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.rpc.call("getblockchaininfo", &[]) {
                Ok(_) => return,
                Err(e) if Instant::now() < deadline => {
                    if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                        panic!("bitcoind exited with {status} at start ({e}); see {}/regtest/debug.log", self.datadir.display());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("bitcoind did not answer RPC within 60 s: {e}"),
            }
        }
    }

    /// Calls `method`; panics on an error (the suites' RPCs must succeed).
    pub fn rpc(&self, method: &str, params: &[Value]) -> Value {
        self.rpc
            .call(method, params)
            .unwrap_or_else(|e| panic!("bitcoind {method} {params:?}: {e}"))
    }

    /// Calls `method`, returning bitcoind's error.
    pub fn try_rpc(&self, method: &str, params: &[Value]) -> Result<Value, String> {
        self.rpc.call(method, params).map_err(|e| e.to_string())
    }

    /// `stop`, then waits for the process to exit (it writes its chainstate).
    pub fn stop(&mut self) {
        let _ = self.rpc.call("stop", &[]);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGKILL: nothing is written, the chainstate stays where it last was.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the same node again (same datadir and ports).
    pub fn restart(&mut self) {
        self.launch();
    }

    pub fn tip(&self) -> (u32, BlockHash) {
        let hash = self.rpc("getbestblockhash", &[]);
        let hash = BlockHash::from_str(hash.as_str().unwrap()).unwrap();
        let height = self.rpc("getblockcount", &[]).as_u64().unwrap() as u32;
        (height, hash)
    }

    /// Mines a block paying the coinbase to `script` with `txs` (hex) in it.
    pub fn generate(&self, script: &ScriptBuf, txs: &[String]) -> BlockHash {
        let v = self.rpc(
            "generateblock",
            &[json!(format!("raw({})", hex(script.as_bytes()))), json!(txs)],
        );
        BlockHash::from_str(v["hash"].as_str().unwrap()).unwrap()
    }

    /// The block's transactions (RPC `getblock` verbosity 2).
    pub fn block_txs(&self, hash: &BlockHash) -> Vec<Transaction> {
        let v = self.rpc("getblock", &[json!(hash.to_string()), json!(0)]);
        let bytes = unhex(v.as_str().unwrap());
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).unwrap();
        block.txdata
    }

    /// `scantxoutset` for `scripts`: per script, its coins as bitcoind lists them.
    pub fn scan(&self, scripts: &BTreeSet<ScriptBuf>) -> BTreeMap<ScriptBuf, BTreeSet<Coin>> {
        let objs: Vec<Value> = scripts
            .iter()
            .map(|s| json!(format!("raw({})", hex(s.as_bytes()))))
            .collect();
        let v = self.rpc("scantxoutset", &[json!("start"), json!(objs)]);
        assert_eq!(v["success"], json!(true), "scantxoutset: {v}");
        let mut out: BTreeMap<ScriptBuf, BTreeSet<Coin>> =
            scripts.iter().map(|s| (s.clone(), BTreeSet::new())).collect();
        for u in v["unspents"].as_array().unwrap() {
            let script = ScriptBuf::from_bytes(unhex(u["scriptPubKey"].as_str().unwrap()));
            out.entry(script).or_default().insert(Coin {
                txid: u["txid"].as_str().unwrap().to_string(),
                vout: u["vout"].as_u64().unwrap() as u32,
                sats: btc_to_sats(&u["amount"]),
                height: u["height"].as_u64().unwrap() as u32,
                coinbase: u["coinbase"].as_bool().unwrap(),
            });
        }
        out
    }

    /// `gettxoutsetinfo none`: (UTXO count, total sats, tip height).
    pub fn totals(&self) -> (u64, u64, u32) {
        let v = self.rpc("gettxoutsetinfo", &[json!("none")]);
        (
            v["txouts"].as_u64().unwrap(),
            btc_to_sats(&v["total_amount"]),
            v["height"].as_u64().unwrap() as u32,
        )
    }

    /// The txids in the mempool.
    pub fn mempool(&self) -> BTreeSet<String> {
        self.rpc("getrawmempool", &[])
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    }

    /// For each outpoint, the mempool transaction spending it (`gettxspendingprevout`).
    pub fn spenders(&self, outpoints: &[(String, u32)]) -> Vec<Option<String>> {
        if outpoints.is_empty() {
            return Vec::new();
        }
        let ask: Vec<Value> = outpoints
            .iter()
            .map(|(t, v)| json!({"txid": t, "vout": v}))
            .collect();
        self.rpc("gettxspendingprevout", &[json!(ask)])
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.get("spendingtxid").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// Sends a transaction; its txid (RPC order).
    pub fn send(&self, tx: &Transaction) -> String {
        let v = self.rpc(
            "sendrawtransaction",
            &[json!(hex(&bitcoin::consensus::serialize(tx))), json!(0)],
        );
        v.as_str().unwrap().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A coin as bitcoind's `scantxoutset` and `opnet-cli utxos --json` list it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Coin {
    pub txid: String,
    pub vout: u32,
    pub sats: u64,
    pub height: u32,
    pub coinbase: bool,
}

/// A BTC amount as JSON (8 decimals) in satoshis.
pub fn btc_to_sats(v: &Value) -> u64 {
    let s = v.to_string();
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    let frac = format!("{frac:0<8}");
    whole.parse::<u64>().unwrap() * 100_000_000 + frac[..8].parse::<u64>().unwrap()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The kinds of output the suites pay to and spend from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    P2pk,
    P2pkh,
    P2pkhUncompressed,
    P2wpkh,
    P2shP2wpkh,
    P2wsh,
    P2tr,
}

pub const SPENDABLE: [Kind; 7] = [
    Kind::P2pk,
    Kind::P2pkh,
    Kind::P2pkhUncompressed,
    Kind::P2wpkh,
    Kind::P2shP2wpkh,
    Kind::P2wsh,
    Kind::P2tr,
];

/// A key the test holds and the scripts made from it.
#[derive(Clone)]
pub struct Key {
    pub secret: SecretKey,
    pub index: u32,
}

impl Key {
    /// Key number `i` (deterministic: the suites are reproducible).
    pub fn new(i: u32) -> Key {
        let mut b = [0u8; 32];
        b[28..].copy_from_slice(&(i + 1).to_be_bytes());
        b[0] = 0x42;
        Key {
            secret: SecretKey::from_slice(&b).unwrap(),
            index: i,
        }
    }

    fn private(&self, compressed: bool) -> PrivateKey {
        PrivateKey {
            compressed,
            network: bitcoin::NetworkKind::Test,
            inner: self.secret,
        }
    }

    fn public(&self, compressed: bool) -> PublicKey {
        self.private(compressed).public_key(&Secp256k1::new())
    }

    /// The P2WSH witness script: 1-of-1 multisig.
    fn witness_script(&self) -> ScriptBuf {
        bitcoin::blockdata::script::Builder::new()
            .push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_1)
            .push_key(&self.public(true))
            .push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_1)
            .push_opcode(bitcoin::opcodes::all::OP_CHECKMULTISIG)
            .into_script()
    }

    fn p2wpkh(&self) -> ScriptBuf {
        let pk = CompressedPublicKey(self.public(true).inner);
        ScriptBuf::new_p2wpkh(&pk.wpubkey_hash())
    }

    pub fn script(&self, kind: Kind) -> ScriptBuf {
        match kind {
            Kind::P2pk => ScriptBuf::new_p2pk(&self.public(true)),
            Kind::P2pkh => ScriptBuf::new_p2pkh(&self.public(true).pubkey_hash()),
            Kind::P2pkhUncompressed => ScriptBuf::new_p2pkh(&self.public(false).pubkey_hash()),
            Kind::P2wpkh => self.p2wpkh(),
            Kind::P2shP2wpkh => ScriptBuf::new_p2sh(&self.p2wpkh().script_hash()),
            Kind::P2wsh => ScriptBuf::new_p2wsh(&self.witness_script().wscript_hash()),
            Kind::P2tr => {
                let secp = Secp256k1::new();
                let kp = Keypair::from_secret_key(&secp, &self.secret);
                ScriptBuf::new_p2tr(&secp, kp.x_only_public_key().0, None)
            }
        }
    }
}

/// A coin the test can spend.
#[derive(Clone)]
pub struct Owned {
    pub outpoint: OutPoint,
    pub out: TxOut,
    pub key: Key,
    pub kind: Kind,
    /// Height of the block that made it (coinbases mature 100 blocks later).
    pub height: u32,
    pub coinbase: bool,
}

/// A transaction spending `inputs` to `outputs`, signed (P2TR key path here,
/// everything else by bitcoind's `signrawtransactionwithkey`).
pub fn sign(node: &Node, inputs: &[Owned], outputs: Vec<TxOut>, sequence: Sequence) -> Transaction {
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs
            .iter()
            .map(|c| TxIn {
                previous_output: c.outpoint,
                script_sig: ScriptBuf::new(),
                sequence,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    let taproot = inputs.iter().any(|c| c.kind == Kind::P2tr);
    if taproot {
        assert!(
            inputs.iter().all(|c| c.kind == Kind::P2tr),
            "P2TR inputs are signed here, alone in their transaction"
        );
        let secp = Secp256k1::new();
        let prevouts: Vec<TxOut> = inputs.iter().map(|c| c.out.clone()).collect();
        let mut sighashes = Vec::new();
        {
            let mut cache = SighashCache::new(&tx);
            for i in 0..inputs.len() {
                sighashes.push(
                    cache
                        .taproot_key_spend_signature_hash(i, &Prevouts::All(&prevouts), TapSighashType::Default)
                        .unwrap(),
                );
            }
        }
        for (i, c) in inputs.iter().enumerate() {
            let kp = Keypair::from_secret_key(&secp, &c.key.secret).tap_tweak(&secp, None);
            let msg = Message::from_digest(sighashes[i].to_byte_array());
            let sig = secp.sign_schnorr_no_aux_rand(&msg, &kp.to_keypair());
            tx.input[i].witness = Witness::from_slice(&[sig.serialize().to_vec()]);
        }
        return tx;
    }
    let keys: Vec<Value> = inputs
        .iter()
        .map(|c| json!(c.key.private(c.kind != Kind::P2pkhUncompressed).to_wif()))
        .collect();
    let prevtxs: Vec<Value> = inputs
        .iter()
        .map(|c| {
            let mut o = json!({
                "txid": c.outpoint.txid.to_string(),
                "vout": c.outpoint.vout,
                "scriptPubKey": hex(c.out.script_pubkey.as_bytes()),
                "amount": format!("{}.{:08}", c.out.value.to_sat() / 100_000_000, c.out.value.to_sat() % 100_000_000),
            });
            match c.kind {
                Kind::P2shP2wpkh => o["redeemScript"] = json!(hex(c.key.p2wpkh().as_bytes())),
                Kind::P2wsh => o["witnessScript"] = json!(hex(c.key.witness_script().as_bytes())),
                _ => {}
            }
            o
        })
        .collect();
    let v = node.rpc(
        "signrawtransactionwithkey",
        &[json!(hex(&bitcoin::consensus::serialize(&tx))), json!(keys), json!(prevtxs)],
    );
    assert_eq!(v["complete"], json!(true), "signrawtransactionwithkey: {v}");
    bitcoin::consensus::deserialize(&unhex(v["hex"].as_str().unwrap())).unwrap()
}

/// What the test's "wallet" owns, made and spent through the node.
pub struct Wallet {
    pub keys: Vec<Key>,
    pub coins: Vec<Owned>,
    /// Every script ever paid to (what the suites compare).
    pub scripts: BTreeSet<ScriptBuf>,
    next: usize,
}

impl Wallet {
    pub fn new(keys: u32) -> Wallet {
        Wallet {
            keys: (0..keys).map(Key::new).collect(),
            coins: Vec::new(),
            scripts: BTreeSet::new(),
            next: 0,
        }
    }

    /// The next (key, kind) in rotation, so every kind gets used.
    pub fn next_target(&mut self) -> (Key, Kind) {
        let i = self.next;
        self.next += 1;
        (
            self.keys[i % self.keys.len()].clone(),
            SPENDABLE[i % SPENDABLE.len()],
        )
    }

    /// Mines `n` blocks whose coinbases pay keys of ours, rotating kinds.
    pub fn mine(&mut self, node: &Node, n: usize) -> Vec<BlockHash> {
        (0..n).map(|_| self.mine_with(node, &[])).collect()
    }

    /// Mines one block with `txs` in it, recording what it pays us.
    pub fn mine_with(&mut self, node: &Node, txs: &[Transaction]) -> BlockHash {
        let (key, kind) = self.next_target();
        let script = key.script(kind);
        self.scripts.insert(script.clone());
        let hexes: Vec<String> = txs.iter().map(|t| hex(&bitcoin::consensus::serialize(t))).collect();
        let hash = node.generate(&script, &hexes);
        let height = node.tip().0;
        let block = node.block_txs(&hash);
        let coinbase = &block[0];
        for (vout, out) in coinbase.output.iter().enumerate() {
            if out.script_pubkey == script && out.value.to_sat() > 0 {
                self.coins.push(Owned {
                    outpoint: OutPoint::new(coinbase.compute_txid(), vout as u32),
                    out: out.clone(),
                    key: key.clone(),
                    kind,
                    height,
                    coinbase: true,
                });
            }
        }
        for tx in txs {
            self.spent(tx);
            self.received(tx, height);
        }
        hash
    }

    /// Coins spendable at `tip` (mature coinbases), oldest first, not in `exclude`.
    pub fn spendable(&self, tip: u32) -> Vec<Owned> {
        self.coins
            .iter()
            .filter(|c| !c.coinbase || c.height + 100 <= tip)
            .cloned()
            .collect()
    }

    /// Forgets the coins `tx` spends.
    pub fn spent(&mut self, tx: &Transaction) {
        let spent: BTreeSet<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
        self.coins.retain(|c| !spent.contains(&c.outpoint));
    }

    /// Records the outputs of `tx` that pay us (`height` 0 while unconfirmed).
    pub fn received(&mut self, tx: &Transaction, height: u32) {
        let txid = tx.compute_txid();
        self.coins.retain(|c| c.outpoint.txid != txid);
        for (vout, out) in tx.output.iter().enumerate() {
            if let Some((key, kind)) = self.owner(&out.script_pubkey) {
                self.coins.push(Owned {
                    outpoint: OutPoint::new(txid, vout as u32),
                    out: out.clone(),
                    key,
                    kind,
                    height,
                    coinbase: false,
                });
            }
        }
    }

    /// Rebuilds the coin list from bitcoind's UTXO set (after a reorg, which
    /// brings back coins stale blocks spent and removes those they made).
    pub fn resync(&mut self, node: &Node) {
        let truth = node.scan(&self.scripts);
        self.coins.clear();
        for (script, coins) in truth {
            let Some((key, kind)) = self.owner(&script) else {
                continue;
            };
            for c in coins {
                self.coins.push(Owned {
                    outpoint: OutPoint::new(Txid::from_str(&c.txid).unwrap(), c.vout),
                    out: TxOut {
                        value: Amount::from_sat(c.sats),
                        script_pubkey: script.clone(),
                    },
                    key: key.clone(),
                    kind,
                    height: c.height,
                    coinbase: c.coinbase,
                });
            }
        }
        self.coins.sort_by_key(|c| (c.height, c.outpoint));
    }

    fn owner(&self, script: &ScriptBuf) -> Option<(Key, Kind)> {
        for k in &self.keys {
            for kind in SPENDABLE {
                if k.script(kind) == *script {
                    return Some((k.clone(), kind));
                }
            }
        }
        None
    }

    /// A transaction spending `inputs` into `n` outputs of ours (rotating
    /// kinds) paying `fee` sats, plus the `extra` outputs.
    pub fn pay(
        &mut self,
        node: &Node,
        inputs: &[Owned],
        n: usize,
        fee: u64,
        extra: Vec<TxOut>,
        sequence: Sequence,
    ) -> Transaction {
        let total: u64 = inputs.iter().map(|c| c.out.value.to_sat()).sum();
        let extra_sats: u64 = extra.iter().map(|o| o.value.to_sat()).sum();
        let each = (total - fee - extra_sats) / n as u64;
        let mut outputs = Vec::new();
        for i in 0..n {
            let (key, kind) = self.next_target();
            let script = key.script(kind);
            self.scripts.insert(script.clone());
            let value = if i == n - 1 {
                total - fee - extra_sats - each * (n as u64 - 1)
            } else {
                each
            };
            outputs.push(TxOut {
                value: Amount::from_sat(value),
                script_pubkey: script,
            });
        }
        for o in &extra {
            self.scripts.insert(o.script_pubkey.clone());
        }
        outputs.extend(extra);
        sign(node, inputs, outputs, sequence)
    }
}

/// Outputs no key of ours can spend, one of each remaining kind: bare 1-of-2
/// multisig, OP_TRUE, a pay-to-anchor, and an OP_RETURN (never in the UTXO set).
pub fn odd_outputs(key: &Key) -> Vec<TxOut> {
    let secp = Secp256k1::new();
    let other = PublicKey::new(Key::new(10_000 + key.index).secret.public_key(&secp));
    let bare = bitcoin::blockdata::script::Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_1)
        .push_key(&PublicKey::new(key.secret.public_key(&secp)))
        .push_key(&other)
        .push_opcode(bitcoin::opcodes::all::OP_PUSHNUM_2)
        .push_opcode(bitcoin::opcodes::all::OP_CHECKMULTISIG)
        .into_script();
    let op_true = ScriptBuf::from_bytes(vec![0x51]);
    let anchor = ScriptBuf::from_bytes(vec![0x51, 0x02, 0x4e, 0x73]);
    let op_return = ScriptBuf::new_op_return([0x6f, 0x70, 0x6e, 0x65, 0x74]);
    vec![
        TxOut { value: Amount::from_sat(10_000), script_pubkey: bare },
        TxOut { value: Amount::from_sat(20_000), script_pubkey: op_true },
        TxOut { value: Amount::from_sat(0), script_pubkey: anchor },
        TxOut { value: Amount::from_sat(0), script_pubkey: op_return },
    ]
}

/// The txid in RPC byte order.
pub fn rpc_txid(t: &Txid) -> String {
    t.to_string()
}
