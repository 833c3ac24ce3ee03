//! opnet-host in follow mode next to a real bitcoind, as the suites drive it:
//! the host process, `opnet-cli` answers, a background subscriber, and the
//! comparison of everything served with bitcoind's own answers.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::{ScriptBuf, Sequence};
use serde_json::{json, Value};

use super::bitcoind::{self, hex, odd_outputs, Coin, Node, Owned, Wallet, RPC_PASSWORD, RPC_USER};

pub fn bin(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_opnet-host"))
        .parent()
        .unwrap()
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: `cargo build --release -p opnet-plugin` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// opnet-host following a node.
pub struct Host {
    pub child: Child,
    pub log: PathBuf,
    pub socket: PathBuf,
}

impl Host {
    pub fn follow(node: &Node, opnet_dir: &Path, extra: &[&str]) -> Host {
        std::fs::create_dir_all(opnet_dir).unwrap();
        let log = opnet_dir.with_extension(format!("log.{}", std::process::id()));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_opnet-host"))
            .arg("--datadir")
            .arg(node.net_dir())
            .args(["--network", "regtest", "--opnet-dir"])
            .arg(opnet_dir)
            .args(["--follow", &node.url(), "--rpc-user", RPC_USER, "--rpc-password", RPC_PASSWORD])
            .args(["--plugin"])
            .arg(bin("libopnet_core.so"))
            .args(["--mempool-poll-ms", "100"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        Host {
            child,
            log,
            socket: opnet_dir.join("opnet.sock"),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the log) if the host has exited.
    pub fn alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("opnet-host exited with {status}:\n{}", self.log());
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `opnet-cli --socket S ARGS --json`, parsed; `None` when it fails.
pub fn cli(socket: &Path, args: &[&str]) -> Option<Value> {
    let out = Command::new(bin("opnet-cli"))
        .arg("--socket")
        .arg(socket)
        .args(["--network", "regtest"])
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits until `ok` holds, showing `what` and the host's log when it never does.
pub fn wait_until(host: &mut Host, what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        host.alive();
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; host log:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the index is synced at the node's tip.
pub fn wait_at_tip(host: &mut Host, node: &Node) {
    let (height, hash) = node.tip();
    let want = hash.to_string();
    let socket = host.socket.clone();
    wait_until(host, &format!("the index at {height} {want}"), 120, || {
        cli(&socket, &["status"]).is_some_and(|s| {
            s["synced"] == json!(true) && s["hash"] == json!(want) && s["height"] == json!(height)
        })
    });
}

/// What opnet-cli serves for `script` (confirmed only).
pub fn served(socket: &Path, script: &ScriptBuf) -> BTreeSet<Coin> {
    let v = cli(socket, &["utxos", &hex(script.as_bytes())]).expect("opnet-cli utxos");
    v["utxos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| Coin {
            txid: u["txid"].as_str().unwrap().to_string(),
            vout: u["vout"].as_u64().unwrap() as u32,
            sats: u["sats"].as_u64().unwrap(),
            height: u["height"].as_u64().unwrap() as u32,
            coinbase: u["coinbase"].as_bool().unwrap(),
        })
        .collect()
}

/// The index equals bitcoind's UTXO set: every script's coins (`scantxoutset`)
/// and the totals (`gettxoutsetinfo`).
pub fn assert_equals_bitcoind(host: &mut Host, node: &Node, scripts: &BTreeSet<ScriptBuf>, step: &str) {
    wait_at_tip(host, node);
    let truth = node.scan(scripts);
    let mut coins = 0;
    for (script, want) in &truth {
        let got = served(&host.socket, script);
        assert_eq!(&got, want, "{step}: script {}", hex(script.as_bytes()));
        coins += want.len();
    }
    let (txouts, total, height) = node.totals();
    let status = cli(&host.socket, &["status"]).unwrap();
    assert_eq!(status["height"], json!(height), "{step}: tip");
    assert_eq!(status["utxo_count"], json!(txouts), "{step}: UTXO count");
    assert_eq!(status["total_sats"], json!(total), "{step}: total amount");
    assert!(coins > 0, "{step}: the comparison covered no coin");
}

/// `opnet-cli watch --json` in the background, collecting its lines.
pub struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Watcher {
    pub fn start(socket: &Path) -> Watcher {
        let mut child = Command::new(bin("opnet-cli"))
            .arg("--socket")
            .arg(socket)
            .args(["watch", "--json", "--kinds", "blocks,mempool"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    l.lock().unwrap().push(v);
                }
            }
        });
        Watcher { child, lines }
    }

    pub fn events(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until an event matches `pred`.
    pub fn wait_for(&self, host: &mut Host, what: &str, pred: impl Fn(&Value) -> bool) {
        wait_until(host, what, 60, || self.events().iter().any(&pred));
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event once, in order: consecutive sequence numbers, no GAP.
pub fn assert_no_gap_no_repeat(events: &[Value]) {
    assert!(!events.is_empty(), "the subscriber saw nothing");
    for pair in events.windows(2) {
        let (a, b) = (pair[0]["seq"].as_u64().unwrap(), pair[1]["seq"].as_u64().unwrap());
        assert_eq!(b, a + 1, "events out of sequence: {} then {}", pair[0], pair[1]);
    }
    for e in events {
        assert_ne!(e["type"], json!("gap"), "a GAP: {e}");
    }
}

pub fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == json!(kind)).count()
}

/// A block with a spend of several mature coins of every kind into new outputs
/// of every kind plus the outputs nobody can spend (bare multisig, OP_TRUE,
/// anchor, OP_RETURN), and a chain of two transactions inside the block.
pub fn busy_block(node: &Node, wallet: &mut Wallet) {
    let tip = node.tip().0;
    let mut spendable = wallet.spendable(tip);
    let mut txs = Vec::new();
    // P2TR coins are spent alone (signed here); the others together.
    let (taproot, others): (Vec<Owned>, Vec<Owned>) =
        spendable.drain(..).partition(|c| c.kind == bitcoind::Kind::P2tr);
    if let Some(t) = taproot.first() {
        let tx = wallet.pay(node, std::slice::from_ref(t), 3, 5_000, Vec::new(), Sequence::MAX);
        txs.push(tx);
    }
    if others.len() >= 4 {
        let key = wallet.keys[0].clone();
        let first = wallet.pay(node, &others[..4], 8, 20_000, odd_outputs(&key), Sequence::MAX);
        // Spend one of its outputs in the same block: it never enters the UTXO set.
        wallet.received(&first, 0);
        let child_in: Vec<Owned> = wallet
            .coins
            .iter()
            .filter(|c| c.outpoint.txid == first.compute_txid() && c.kind != bitcoind::Kind::P2tr)
            .take(1)
            .cloned()
            .collect();
        let child = wallet.pay(node, &child_in, 2, 1_000, Vec::new(), Sequence::MAX);
        txs.push(first);
        txs.push(child);
    }
    wallet.mine_with(node, &txs);
}

