//! SIGKILL at random instants while the index is being written, then restart: the
//! index must come back consistent and converge to Bitcoin Core's UTXO set, and
//! its event sequence must count each block exactly once.

mod common;

use common::Rng;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use common::{fixture, index_utxos, load_oracle};
use opnet::index::{script_hash, UtxoKey};
use opnet::sync::{Engine, EngineConfig};
use opnet::synth::{coins, write_chainstate, SynthSpec};
use opnet::Network;

fn indexer(datadir: &Path, opnet_dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_opnet-index"));
    cmd.args(["--network", "regtest", "--quiet", "--json", "--datadir"])
        .arg(datadir)
        .arg("--opnet-dir")
        .arg(opnet_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Kills `cmd` after a random fraction of `span`, returning the index height the
/// kill left behind (None: no index metadata yet).
fn kill_at_random(
    mut cmd: Command,
    span: Duration,
    rng: &mut Rng,
    opnet_dir: &Path,
) -> Option<u32> {
    let mut child = cmd.spawn().unwrap();
    let wait = span.mul_f64((rng.next() % 1000) as f64 / 1000.0);
    std::thread::sleep(wait);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let engine = Engine::open(EngineConfig::new(opnet_dir, Network::Regtest)).unwrap();
    engine.meta().map(|m| m.tip.height)
}

#[test]
fn killed_while_connecting_blocks_restarts_to_the_oracle() {
    let datadir = fixture("datadir-A");
    let oracle = load_oracle("oracle-A.json");
    let tmp = tempfile::tempdir().unwrap();

    // How long a full run takes here, so kills land inside it.
    let clean = tmp.path().join("clean");
    let started = Instant::now();
    run_ok(&mut indexer(&datadir, &clean, &["--from-genesis"]));
    let span = started.elapsed();

    let seed = 0x5eed_0001;
    let mut rng = Rng(seed);
    let mut mid_block_kills = 0;
    for round in 0..20 {
        let dir = tmp.path().join(format!("run{round}"));
        let mut heights = Vec::new();
        // Up to three kills in a row before letting it finish.
        for _ in 0..=(rng.next() % 3) {
            heights.push(kill_at_random(
                indexer(&datadir, &dir, &["--from-genesis"]),
                span,
                &mut rng,
                &dir,
            ));
        }
        mid_block_kills += heights
            .iter()
            .filter(|h| matches!(h, Some(h) if *h > 0 && *h < 170))
            .count();
        run_ok(&mut indexer(&datadir, &dir, &["--from-genesis"]));
        let engine = Engine::open(EngineConfig::new(&dir, Network::Regtest)).unwrap();
        let meta = engine.meta().unwrap();
        assert_eq!(
            meta.tip.height, 170,
            "seed {seed:#x} round {round} kills at {heights:?}"
        );
        assert_eq!(
            meta.event_seq, 170,
            "each block counted once (seed {seed:#x} round {round})"
        );
        assert_eq!(
            index_utxos(&engine.store().unwrap()),
            oracle.utxos,
            "seed {seed:#x} round {round}"
        );
        assert_eq!(
            (meta.utxo_count, meta.total_amount),
            (oracle.txouts, oracle.total_amount)
        );
    }
    assert!(
        mid_block_kills >= 5,
        "only {mid_block_kills} kills landed between blocks 1 and 169"
    );
}

/// A synthetic chainstate whose best block is datadir A's tip, so datadir A's block
/// index and undo data serve as its chain.
fn synthetic_chainstate_at_tip_a(dir: &Path, utxos: u64) -> (SynthSpec, u64) {
    let spec = SynthSpec::new(utxos, 7);
    let summary = write_chainstate(dir, &spec).unwrap();
    let tip: bitcoin::BlockHash = load_oracle("oracle-A.json").tip_hash.parse().unwrap();
    let mut db = rusty_leveldb::DB::open(dir, rusty_leveldb::Options::default()).unwrap();
    let key = db.get(b"\x0e\x00obfuscate_key").unwrap().to_vec();
    let mut best = tip.to_byte_array().to_vec();
    for (i, b) in best.iter_mut().enumerate() {
        *b ^= key[1 + i % 8];
    }
    db.put(b"B", &best).unwrap();
    db.close().unwrap();
    (spec, summary.total_amount)
}

#[test]
fn killed_mid_scan_restarts_the_scan_and_ends_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let cs = tmp.path().join("chainstate");
    let (spec, total) = synthetic_chainstate_at_tip_a(&cs, 300_000);
    let expected: Vec<UtxoKey> = {
        let mut keys: Vec<UtxoKey> = coins(&spec)
            .map(|(txid, vout, coin)| UtxoKey {
                script_hash: script_hash(&coin.script),
                txid,
                vout,
            })
            .collect();
        keys.sort();
        keys
    };
    let datadir = fixture("datadir-A");
    let args = ["--chainstate", cs.to_str().unwrap()];

    let clean = tmp.path().join("clean");
    let started = Instant::now();
    run_ok(&mut indexer(&datadir, &clean, &args));
    let span = started.elapsed();

    let seed = 0x5eed_0002;
    let mut rng = Rng(seed);
    let mut interrupted = 0;
    for round in 0..8 {
        let dir = tmp.path().join(format!("scan{round}"));
        let height = kill_at_random(indexer(&datadir, &dir, &args), span, &mut rng, &dir);
        if height.is_none() {
            interrupted += 1;
            assert!(
                !dir.join("index").exists(),
                "a partial scan is never installed"
            );
        }
        run_ok(&mut indexer(&datadir, &dir, &args));
        assert!(!dir.join("index.scan").exists() && !dir.join("index.sort").exists());
        let engine = Engine::open(EngineConfig::new(&dir, Network::Regtest)).unwrap();
        let meta = engine.meta().unwrap();
        assert_eq!(
            (meta.tip.height, meta.utxo_count, meta.total_amount),
            (170, spec.utxos, total),
            "seed {seed:#x} round {round}"
        );
        let mut keys = Vec::with_capacity(expected.len());
        engine
            .store()
            .unwrap()
            .for_each_utxo(|k, _| {
                keys.push(k);
                Ok(())
            })
            .unwrap();
        assert!(
            keys == expected,
            "seed {seed:#x} round {round}: the index differs from the chainstate"
        );
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} kills landed inside the scan"
    );
}
