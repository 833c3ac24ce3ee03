//! opnet-host's follow mode next to a real, stock bitcoind (v31.99, built by
//! `scripts/bitcoind.sh`; `$OPNET_BITCOIND` names it): regtest, no wallet, coins
//! made by `generateblock` to keys the test holds, every script type. At each step
//! every answer equals bitcoind's own: `scantxoutset` for every script ever paid,
//! `gettxoutsetinfo` for the totals, `getrawmempool` and `gettxspendingprevout`
//! for the mempool view; a subscriber sees every event once, in order.
//!
//! The plugin must be built next to the binaries (`scripts/test.sh` does it).

#[path = "support/bitcoind.rs"]
mod bitcoind;
#[path = "support/follow_host.rs"]
mod follow_host;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin::{ScriptBuf, Sequence};
use bitcoind::{hex, Node, Owned, Wallet};
use follow_host::{
    assert_equals_bitcoind, assert_no_gap_no_repeat, busy_block, cli, count, wait_at_tip,
    wait_until, Host, Watcher,
};
use serde_json::json;

#[test]
fn follow_mode_starts_next_to_a_fresh_node_and_stays_equal_through_blocks_and_reorgs() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(&tmp.path().join("node"), &["-txindex"]);
    let mut wallet = Wallet::new(6);
    // 140 blocks mined by generateblock on a node that has never written its
    // chainstate (it does every 50-70 minutes): follow mode used to exit 1 here.
    wallet.mine(&node, 110);
    for _ in 0..30 {
        busy_block(&node, &mut wallet);
    }
    assert_eq!(node.tip().0, 140);
    let mut host = Host::follow(&node, &tmp.path().join("opnet"), &[]);
    assert_equals_bitcoind(&mut host, &node, &wallet.scripts, "after the first scan");
    assert!(host.log().contains("bitcoind wrote its chainstate"), "{}", host.log());
    let watcher = Watcher::start(&host.socket);
    std::thread::sleep(Duration::from_millis(300));
    // Live blocks.
    for i in 0..5 {
        busy_block(&node, &mut wallet);
        assert_equals_bitcoind(&mut host, &node, &wallet.scripts, &format!("live block {i}"));
    }
    // Reorgs by invalidateblock of depth 1, 3 and 10, each replaced by a longer branch.
    for depth in [1u32, 3, 10] {
        let (tip, _) = node.tip();
        let fork_child = node.rpc("getblockhash", &[json!(tip - depth + 1)]);
        node.rpc("invalidateblock", &[fork_child.clone()]);
        wallet.resync(&node);
        for _ in 0..depth + 1 {
            busy_block(&node, &mut wallet);
        }
        assert_equals_bitcoind(&mut host, &node, &wallet.scripts, &format!("reorg of depth {depth}"));
    }
    let events = watcher.events();
    assert_no_gap_no_repeat(&events);
    assert_eq!(count(&events, "block_disconnected"), 1 + 3 + 10, "{events:?}");
    assert_eq!(count(&events, "block_connected"), 5 + 2 + 4 + 11, "{events:?}");
    host.alive();
    assert!(host.stop().success());
}

/// One entry of `opnet-cli utxos --mempool --json`, or what bitcoind says it
/// must be.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MempoolEntry {
    txid: String,
    vout: u32,
    sats: u64,
    pending: bool,
    spender: Option<String>,
}

/// What the mempool view of `scripts` must be, from bitcoind alone: confirmed
/// coins (`scantxoutset`) and the outputs of mempool transactions
/// (`getrawmempool`, `getrawtransaction`), each with the mempool transaction
/// spending it (`gettxspendingprevout`).
fn mempool_truth(node: &Node, scripts: &BTreeSet<ScriptBuf>) -> BTreeMap<ScriptBuf, BTreeSet<MempoolEntry>> {
    let mut rows: Vec<(ScriptBuf, String, u32, u64, bool)> = Vec::new();
    for (script, coins) in node.scan(scripts) {
        for c in coins {
            rows.push((script.clone(), c.txid, c.vout, c.sats, false));
        }
    }
    for txid in node.mempool() {
        let raw = node.rpc("getrawtransaction", &[json!(txid)]);
        let tx: bitcoin::Transaction =
            bitcoin::consensus::deserialize(&bitcoind::unhex(raw.as_str().unwrap())).unwrap();
        for (vout, out) in tx.output.iter().enumerate() {
            if scripts.contains(&out.script_pubkey) && !out.script_pubkey.is_op_return() {
                rows.push((out.script_pubkey.clone(), txid.clone(), vout as u32, out.value.to_sat(), true));
            }
        }
    }
    let outpoints: Vec<(String, u32)> = rows.iter().map(|r| (r.1.clone(), r.2)).collect();
    let spenders = node.spenders(&outpoints);
    let mut out: BTreeMap<ScriptBuf, BTreeSet<MempoolEntry>> =
        scripts.iter().map(|s| (s.clone(), BTreeSet::new())).collect();
    for ((script, txid, vout, sats, pending), spender) in rows.into_iter().zip(spenders) {
        out.entry(script).or_default().insert(MempoolEntry { txid, vout, sats, pending, spender });
    }
    out
}

fn served_with_mempool(socket: &Path, script: &ScriptBuf) -> Option<BTreeSet<MempoolEntry>> {
    let v = cli(socket, &["utxos", &hex(script.as_bytes()), "--mempool"])?;
    Some(
        v["utxos"]
            .as_array()?
            .iter()
            .map(|u| {
                let spent = u["spent_in_mempool"].as_bool().unwrap();
                let spender = u["spender"].as_str().map(str::to_string);
                assert_eq!(spent, spender.is_some(), "spent_in_mempool without a spender: {u}");
                MempoolEntry {
                    txid: u["txid"].as_str().unwrap().to_string(),
                    vout: u["vout"].as_u64().unwrap() as u32,
                    sats: u["sats"].as_u64().unwrap(),
                    pending: u["pending"].as_bool().unwrap(),
                    spender,
                }
            })
            .collect(),
    )
}

/// Waits until the served mempool view of every script equals bitcoind's.
fn assert_mempool_equals_bitcoind(host: &mut Host, node: &Node, scripts: &BTreeSet<ScriptBuf>, step: &str) {
    wait_at_tip(host, node);
    let truth = mempool_truth(node, scripts);
    let socket = host.socket.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mismatch = truth.iter().find_map(|(script, want)| {
            let got = served_with_mempool(&socket, script);
            (got.as_ref() != Some(want)).then(|| {
                format!("script {}:\n  served  {got:?}\n  bitcoind {want:?}", hex(script.as_bytes()))
            })
        });
        let Some(last) = mismatch else { break };
        host.alive();
        assert!(Instant::now() < deadline, "{step}: the mempool view never matched bitcoind's:\n{last}\nhost log:\n{}", host.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = cli(&host.socket, &["status"]).unwrap();
    assert_eq!(status["mempool_txs"], json!(node.mempool().len()), "{step}: mempool size");
}

/// The mempool_tx events seen so far: (action, txid, reason).
fn mempool_events(w: &Watcher) -> Vec<(String, String, String)> {
    w.events()
        .iter()
        .filter(|e| e["type"] == json!("mempool_tx"))
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["txid"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn follow_mode_mirrors_the_mempool_through_chains_replacement_expiry_confirmation_and_reorg() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start(&tmp.path().join("node"), &["-mempoolexpiry=1"]);
    let mut wallet = Wallet::new(4);
    wallet.mine(&node, 120);
    let mut host = Host::follow(&node, &tmp.path().join("opnet"), &[]);
    wait_at_tip(&mut host, &node);
    let watcher = Watcher::start(&host.socket);
    let log_host = host.log.clone();
    wait_until(&mut host, "the host to follow the mempool", 30, || {
        std::fs::read_to_string(&log_host).is_ok_and(|l| l.contains("following bitcoind's mempool"))
    });
    let tip = node.tip().0;
    let mut coins: Vec<Owned> = wallet
        .spendable(tip)
        .into_iter()
        .filter(|c| c.kind != bitcoind::Kind::P2tr)
        .collect();
    let taproot: Vec<Owned> = wallet
        .spendable(tip)
        .into_iter()
        .filter(|c| c.kind == bitcoind::Kind::P2tr)
        .collect();

    // A chain of three unconfirmed transactions, and a P2TR spend.
    let a = wallet.pay(&node, &coins.drain(..2).collect::<Vec<_>>(), 3, 10_000, Vec::new(), Sequence::MAX);
    node.send(&a);
    wallet.received(&a, 0);
    let a_out: Vec<Owned> = wallet.coins.iter().filter(|c| c.outpoint.txid == a.compute_txid() && c.kind != bitcoind::Kind::P2tr).cloned().collect();
    let b = wallet.pay(&node, &a_out[..1], 2, 5_000, Vec::new(), Sequence::MAX);
    node.send(&b);
    wallet.received(&b, 0);
    let b_out: Vec<Owned> = wallet.coins.iter().filter(|c| c.outpoint.txid == b.compute_txid() && c.kind != bitcoind::Kind::P2tr).cloned().collect();
    let c = wallet.pay(&node, &b_out[..1], 1, 5_000, Vec::new(), Sequence::MAX);
    node.send(&c);
    wallet.received(&c, 0);
    let t = wallet.pay(&node, &taproot[..1], 2, 3_000, Vec::new(), Sequence::MAX);
    node.send(&t);
    wallet.received(&t, 0);
    assert_mempool_equals_bitcoind(&mut host, &node, &wallet.scripts, "a chain of three and a P2TR spend");

    // A replacement: r1 then r2 spending the same coin at a higher fee.
    let victim = coins.remove(0);
    let r1 = wallet.pay(&node, std::slice::from_ref(&victim), 1, 2_000, Vec::new(), Sequence::ENABLE_RBF_NO_LOCKTIME);
    node.send(&r1);
    let r1_child_in = {
        wallet.received(&r1, 0);
        wallet.coins.iter().filter(|c| c.outpoint.txid == r1.compute_txid()).cloned().collect::<Vec<_>>()
    };
    let r1_child = wallet.pay(&node, &r1_child_in, 1, 2_000, Vec::new(), Sequence::MAX);
    node.send(&r1_child);
    assert_mempool_equals_bitcoind(&mut host, &node, &wallet.scripts, "before the replacement");
    let r2 = wallet.pay(&node, std::slice::from_ref(&victim), 2, 50_000, Vec::new(), Sequence::MAX);
    node.send(&r2);
    wallet.spent(&r1_child);
    wallet.coins.retain(|c| c.outpoint.txid != r1.compute_txid() && c.outpoint.txid != r1_child.compute_txid());
    wallet.received(&r2, 0);
    assert_mempool_equals_bitcoind(&mut host, &node, &wallet.scripts, "after the replacement");
    let r1_id = r1.compute_txid().to_string();
    let r1_child_id = r1_child.compute_txid().to_string();
    watcher.wait_for(&mut host, "r1's removal", |e| e["txid"] == json!(r1_id) && e["action"] == json!("removed"));
    let ev = mempool_events(&watcher);
    assert!(ev.contains(&("removed".into(), r1_id.clone(), "replaced".into())), "{ev:?}");
    assert!(ev.contains(&("removed".into(), r1_child_id.clone(), "replaced".into())), "{ev:?}");

    // Confirmation: a block with a and b (c stays, now spending a confirmed output).
    let mined = vec![a.clone(), b.clone()];
    wallet.mine_with(&node, &mined);
    assert_mempool_equals_bitcoind(&mut host, &node, &wallet.scripts, "after a and b confirmed");
    assert_equals_bitcoind(&mut host, &node, &wallet.scripts, "the confirmed set after a and b");

    // A reorg returns a and b to the mempool.
    let (tip, hash) = node.tip();
    node.rpc("invalidateblock", &[json!(hash.to_string())]);
    assert!(node.mempool().contains(&a.compute_txid().to_string()), "bitcoind put a back");
    assert_eq!(node.tip().0, tip - 1);
    assert_mempool_equals_bitcoind(&mut host, &node, &wallet.scripts, "after the reorg");

    // Expiry: one hour later (-mempoolexpiry=1) a new transaction makes bitcoind
    // expire everything older.
    let before: BTreeSet<String> = node.mempool();
    let now = node.rpc("getblockheader", &[json!(node.tip().1.to_string())])["time"].as_u64().unwrap();
    node.rpc("setmocktime", &[json!(now + 3 * 3600)]);
    wallet.resync(&node);
    let fresh_in: Vec<Owned> = wallet
        .spendable(node.tip().0)
        .into_iter()
        .filter(|c| c.kind != bitcoind::Kind::P2tr)
        .filter(|c| node.spenders(&[(c.outpoint.txid.to_string(), c.outpoint.vout)])[0].is_none())
        .take(1)
        .collect();
    let fresh = wallet.pay(&node, &fresh_in, 1, 3_000, Vec::new(), Sequence::MAX);
    node.send(&fresh);
    wallet.received(&fresh, 0);
    let after = node.mempool();
    assert_eq!(after, BTreeSet::from([fresh.compute_txid().to_string()]), "bitcoind expired the rest");
    assert_mempool_equals_bitcoind(&mut host, &node, &wallet.scripts, "after expiry");
    for txid in &before {
        let txid = txid.clone();
        watcher.wait_for(&mut host, "expiry removals", |e| e["txid"] == json!(txid) && e["action"] == json!("removed"));
    }
    let ev = mempool_events(&watcher);
    for txid in &before {
        let reasons: Vec<&str> = ev.iter().filter(|e| &e.1 == txid && e.0 == "removed").map(|e| e.2.as_str()).collect();
        assert_eq!(reasons.last(), Some(&"expiry"), "{txid}: {ev:?}");
    }
    assert_no_gap_no_repeat(&watcher.events());
    assert!(host.stop().success());
}
