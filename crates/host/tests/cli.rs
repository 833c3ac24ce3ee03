//! The built `opnet-cli` binary against a real `opnet.sock` server over the
//! fixture's replayed chain: its output must equal Bitcoin Core's own UTXO set
//! (the oracle), and its failures must say what went wrong.

#[path = "../../core/tests/common/mod.rs"]
mod common;
#[path = "../../core/tests/served/mod.rs"]
mod served;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash;
use common::{load_oracle, Oracle};
use opnet::replay::ReplayChain;
use opnet::server::{self, Node, ServerConfig, DEFAULT_MEMPOOL_LOG_BYTES};
use opnet::source::ChainSource;
use opnet::sync::{Engine, EngineConfig};
use opnet::Network;
use serde_json::Value;
use served::Served;

const WHALE: &str = "00142a941deed62839991916d8a04ec99b548ee3f398";
/// A P2WPKH script of the fixture with a few dozen UTXOs at tip A.
const P2WPKH: &str = "0014896e7c810e6b3c78ed9afb310b041f38456cf7e6";

fn cli(socket: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opnet-cli"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "opnet-cli failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A served chain at tip A (170), following its source.
fn at_tip_a(oracle: &Oracle) -> Served {
    let mut s = Served::new();
    let n = s.steps_to(&oracle.tip_hash);
    s.replay_to(n);
    s
}

/// The oracle's UTXOs of `script`, in outpoint order (txid bytes, then vout), as
/// (txid RPC hex, vout, sats, height, coinbase).
fn oracle_rows(oracle: &Oracle, script: &str) -> Vec<(String, u32, u64, u32, bool)> {
    let mut rows: Vec<_> = oracle
        .utxos
        .iter()
        .filter(|u| u.0 == script)
        .map(|u| (u.1.clone(), u.2, u.3, u.4, u.5))
        .collect();
    rows.sort_by_key(|r| {
        let txid: bitcoin::Txid = r.0.parse().unwrap();
        (txid.to_byte_array(), r.1)
    });
    rows
}

/// The `utxos` array of `--json` output as rows, checking each entry's script.
fn json_rows(v: &Value, script: &str) -> Vec<(String, u32, u64, u32, bool)> {
    v["utxos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["script"], script);
            assert!(
                u.get("pending").is_none(),
                "mempool fields only with --mempool"
            );
            (
                u["txid"].as_str().unwrap().to_string(),
                u["vout"].as_u64().unwrap() as u32,
                u["sats"].as_u64().unwrap(),
                u["height"].as_u64().unwrap() as u32,
                u["coinbase"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn status_json_reports_the_tip_and_whether_it_is_synced() {
    let oracle = load_oracle("oracle-A.json");
    let mut s = Served::new();
    let n = s.steps_to(&oracle.tip_hash);

    // Before the host has told it anything: not synced.
    let v = stdout_json(&cli(&s.socket, &["status", "--json"]));
    assert_eq!(v["synced"], false);
    assert_eq!(v["mode"], "starting");

    // Following the host's notifications: synced.
    s.replay_to(n);
    let v = stdout_json(&cli(&s.socket, &["status", "--json"]));
    assert_eq!(v["height"], 170);
    assert_eq!(v["hash"], oracle.tip_hash.as_str());
    assert_eq!(v["synced"], true);
    assert_eq!(v["mode"], "synced");
    assert_eq!(v["host_height"], 170);
    assert_eq!(v["host_hash"], oracle.tip_hash.as_str());
    assert_eq!(v["utxo_count"], oracle.txouts);
    assert_eq!(v["total_sats"], oracle.total_amount);
    assert_eq!(v["event_seq"], 170);
    assert_eq!(v["scan_progress"], Value::Null);
    assert_eq!(v["mempool_txs"], 0);
    assert_eq!(v["network"], "regtest");

    let out = cli(&s.socket, &["status"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("mode:       synced\n"), "{text}");
    assert!(
        text.contains(&format!("index tip:  170 {}\n", oracle.tip_hash)),
        "{text}"
    );
}

#[test]
fn utxos_of_the_whale_script_equal_the_oracle() {
    let oracle = load_oracle("oracle-A.json");
    let s = at_tip_a(&oracle);
    let want = oracle_rows(&oracle, WHALE);
    let v = stdout_json(&cli(&s.socket, &["utxos", WHALE, "--json"]));
    let got = json_rows(&v, WHALE);
    assert_eq!(got.len(), want.len());
    assert_eq!(
        got.iter().map(|r| r.2).sum::<u64>(),
        want.iter().map(|r| r.2).sum::<u64>()
    );
    let got_set: BTreeSet<(String, u32)> = got.iter().map(|r| (r.0.clone(), r.1)).collect();
    let want_set: BTreeSet<(String, u32)> = want.iter().map(|r| (r.0.clone(), r.1)).collect();
    assert_eq!(got_set, want_set);
    // Every field, in outpoint order.
    assert_eq!(got, want);
    assert_eq!(v["tip"]["height"], 170);
    assert_eq!(v["tip"]["hash"], oracle.tip_hash.as_str());

    // --limit: the first five in outpoint order.
    let v = stdout_json(&cli(&s.socket, &["utxos", WHALE, "--json", "--limit", "5"]));
    assert_eq!(json_rows(&v, WHALE), want[..5].to_vec());

    // Filters and an order, as the oracle says.
    let v = stdout_json(&cli(
        &s.socket,
        &[
            "utxos",
            WHALE,
            "--json",
            "--sort",
            "value",
            "--min-value",
            "1000000",
            "--max-height",
            "150",
        ],
    ));
    let mut filtered: Vec<_> = want
        .iter()
        .filter(|r| r.2 >= 1_000_000 && r.3 <= 150)
        .cloned()
        .collect();
    filtered.sort_by_key(|r| {
        let txid: bitcoin::Txid = r.0.parse().unwrap();
        (std::cmp::Reverse(r.2), txid.to_byte_array(), r.1)
    });
    assert!(!filtered.is_empty());
    assert_eq!(json_rows(&v, WHALE), filtered);

    // The scripthash form names the same outputs.
    let sh = common::hex(&opnet::client::script_hash(&common::unhex(WHALE)));
    let v = stdout_json(&cli(&s.socket, &["utxos", &sh, "--json", "--limit", "5"]));
    assert_eq!(json_rows(&v, WHALE), want[..5].to_vec());
}

#[test]
fn utxos_of_an_address_equal_the_oracle_in_json_and_text() {
    let oracle = load_oracle("oracle-A.json");
    let s = at_tip_a(&oracle);
    let want = oracle_rows(&oracle, P2WPKH);
    assert!(want.len() > 10);
    let script = bitcoin::ScriptBuf::from_bytes(common::unhex(P2WPKH));
    let addr = bitcoin::Address::from_script(&script, bitcoin::Network::Regtest)
        .unwrap()
        .to_string();
    assert!(addr.starts_with("bcrt1q"), "{addr}");

    let v = stdout_json(&cli(&s.socket, &["utxos", &addr, "--json"]));
    assert_eq!(json_rows(&v, P2WPKH), want);

    let out = cli(&s.socket, &["utxos", &addr]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), want.len() + 1);
    for (line, r) in lines.iter().zip(&want) {
        let mut expect = format!("{}:{}  {} sats  height {}", r.0, r.1, r.2, r.3);
        if r.4 {
            expect.push_str("  coinbase");
        }
        assert_eq!(*line, expect);
    }
    let total: u64 = want.iter().map(|r| r.2).sum();
    assert_eq!(
        lines[want.len()],
        format!(
            "total: {} UTXOs, {total} sats ({}.{:08} BTC) at height 170",
            want.len(),
            total / 100_000_000,
            total % 100_000_000
        )
    );

    // The same address read as another network's is refused before connecting.
    let out = cli(&s.socket, &["--network", "main", "utxos", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("is not a main address"), "{err}");
}

#[test]
fn watch_replays_then_follows_block_events() {
    let oracle = load_oracle("oracle-A.json");
    let mut s = at_tip_a(&oracle);
    let mut child = Command::new(env!("CARGO_BIN_EXE_opnet-cli"))
        .arg("--socket")
        .arg(&s.socket)
        .args(["watch", "--json", "--kinds", "blocks", "--from", "165"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let expect = |s: &Served, range: std::ops::Range<usize>| {
        for i in range {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("an event line");
            let v: Value = serde_json::from_str(&line).unwrap();
            let (height, hash, prev) = s.step_block(i);
            let connect = matches!(s.steps[i], opnet::replay::ReplayStep::Connect(_));
            let kind = if connect {
                "block_connected"
            } else {
                "block_disconnected"
            };
            assert_eq!(v["type"], kind, "{line}");
            assert_eq!(v["seq"], i as u64 + 1, "{line}");
            assert_eq!(v["height"], height, "{line}");
            assert_eq!(
                v["hash"],
                bitcoin::BlockHash::from_byte_array(hash).to_string()
            );
            assert_eq!(
                v["prev_hash"],
                bitcoin::BlockHash::from_byte_array(prev).to_string()
            );
        }
    };
    // The replay of events 166-170, then the rest of the script as it happens.
    expect(&s, 165..170);
    let all = s.steps.len();
    s.replay_to(all);
    expect(&s, 170..all);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn failures_are_reported_clearly_with_exit_status_1() {
    let oracle = load_oracle("oracle-A.json");
    let s = at_tip_a(&oracle);

    // A missing socket: the path is named.
    let missing = s.dir.path().join("missing.sock");
    let out = cli(&missing, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!(
            "opnet-cli: cannot connect to {}: ",
            missing.display()
        )),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(out.stdout.is_empty());

    // A server of another network.
    let out = cli(&s.socket, &["--network", "main", "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "opnet-cli: the server serves regtest, not main (pass --network to match the server)\n"
    );

    // Bad arguments: the mistake, then the usage.
    let out = cli(&s.socket, &["utxos"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("opnet-cli: utxos needs a TARGET"), "{err}");
    assert!(err.contains("Usage:"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_opnet-cli"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("--socket PATH"));

    // A server error: an index that does not exist yet answers NOT_READY.
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(EngineConfig::new(
        &dir.path().join("opnet"),
        Network::Regtest,
    ))
    .unwrap();
    let chain: Arc<dyn ChainSource> = Arc::new(ReplayChain::new(Network::Regtest, Vec::new()));
    let node = Node::attach(&mut engine, chain, DEFAULT_MEMPOOL_LOG_BYTES).unwrap();
    let socket = dir.path().join("empty.sock");
    let server = server::start(ServerConfig::new(&socket), node).unwrap();
    let out = cli(&socket, &["utxos", WHALE]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "opnet-cli: server error NOT_READY: no index yet: the first scan is running\n"
    );
    server.shutdown();
}
