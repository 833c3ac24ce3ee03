//! The index against Bitcoin Core's own UTXO set: scan + catch-up on datadir A, an
//! offline reorg to datadir B through the undo log, a replay of the recorded event
//! sequence, a reorg deeper than the undo log, and the refusals.

mod common;

use std::path::Path;

use bitcoin::hashes::Hash;
use common::{fingerprint, fixture, index_utxos, load_chain, load_oracle, Oracle};
use opnet::chainstate::{Chainstate, ChainstateError};
use opnet::datadir::{DatadirError, DatadirSource};
use opnet::index::{EventKind, IndexError, SyncState};
use opnet::replay::{ReplayChain, ReplayStep};
use opnet::sync::{BlockEventKind, CatchUp, Engine, EngineConfig, SyncError};
use opnet::Network;

fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir, Network::Regtest);
    c.readers = 2;
    c
}

fn assert_matches_oracle(engine: &Engine, oracle: &Oracle) {
    let meta = engine.meta().expect("index has metadata");
    assert_eq!(meta.state, SyncState::Ready);
    assert_eq!(meta.tip.height, oracle.tip_height);
    assert_eq!(
        bitcoin::BlockHash::from_byte_array(meta.tip.hash).to_string(),
        oracle.tip_hash
    );
    let store = engine.store().expect("index store");
    let ours = index_utxos(&store);
    let missing: Vec<_> = oracle.utxos.difference(&ours).take(5).collect();
    let extra: Vec<_> = ours.difference(&oracle.utxos).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(meta.utxo_count, oracle.txouts);
    assert_eq!(meta.total_amount, oracle.total_amount);
}

fn sync_datadir(engine: &mut Engine, datadir: &Path) -> Result<CatchUp, SyncError> {
    let source = DatadirSource::open(datadir, Network::Regtest).unwrap();
    let cs_dir = datadir.join("chainstate");
    engine.sync(&source, &|| Chainstate::open(&cs_dir))
}

#[test]
fn scan_then_offline_reorg_equals_bitcoin_cores_utxo_set() {
    let (dir_a, dir_b) = (fixture("datadir-A"), fixture("datadir-B"));
    let before = (fingerprint(&dir_a), fingerprint(&dir_b));
    let oracle_a = load_oracle("oracle-A.json");
    let oracle_b = load_oracle("oracle-B.json");
    let tmp = tempfile::tempdir().unwrap();

    let mut engine = Engine::open(config(tmp.path())).unwrap();
    assert!(engine.needs_scan());
    let outcome = sync_datadir(&mut engine, &dir_a).unwrap();
    assert_eq!(
        outcome,
        CatchUp::AtTip {
            height: 170,
            disconnected: 0,
            connected: 0
        }
    );
    assert_matches_oracle(&engine, &oracle_a);
    // The scan wrote the tables itself: rusty-leveldb's point reads must find every
    // entry in them, not only its iterator.
    let store = engine.store().unwrap();
    let mut entries = Vec::new();
    store
        .for_each_utxo(|k, v| {
            entries.push((k, v));
            Ok(())
        })
        .unwrap();
    assert_eq!(entries.len(), 3904);
    for (k, v) in entries {
        assert_eq!(store.get_utxo(&k).unwrap(), Some(v));
    }
    drop(store);
    let snapshot = engine.meta().unwrap().snapshot;
    drop(engine);

    // Reopen the same index against B: blocks 168-170 of branch A are rolled back
    // through the undo log and branch B's 168-172 connected.
    let mut engine = Engine::open(config(tmp.path())).unwrap();
    assert!(!engine.needs_scan());
    let outcome = sync_datadir(&mut engine, &dir_b).unwrap();
    assert_eq!(
        outcome,
        CatchUp::AtTip {
            height: 172,
            disconnected: 3,
            connected: 5
        }
    );
    assert_matches_oracle(&engine, &oracle_b);
    assert_eq!(
        engine.meta().unwrap().snapshot,
        snapshot,
        "no rescan happened"
    );
    assert_eq!(engine.meta().unwrap().event_seq, 8);

    assert_eq!(
        (fingerprint(&dir_a), fingerprint(&dir_b)),
        before,
        "fixtures changed"
    );
}

#[test]
fn replaying_the_recorded_events_from_an_empty_index_equals_both_tips() {
    let (blocks, steps) = load_chain();
    let oracle_a = load_oracle("oracle-A.json");
    let oracle_b = load_oracle("oracle-B.json");
    let chain = ReplayChain::new(Network::Regtest, blocks);
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.event_retention = 50;
    let mut engine = Engine::open(cfg.clone()).unwrap();
    engine.init_at_genesis().unwrap();
    let mut seen_a = false;
    for step in &steps {
        let event = chain.step(*step).unwrap();
        engine.handle_event(&event, &chain).unwrap();
        let tip = engine.meta().unwrap().tip;
        if let ReplayStep::Connect(h) = step {
            if h.to_string() == oracle_a.tip_hash {
                assert_eq!(tip.hash, h.to_byte_array());
                assert_matches_oracle(&engine, &oracle_a);
                seen_a = true;
            }
        }
    }
    assert!(seen_a, "the script passes through tip A");
    assert_matches_oracle(&engine, &oracle_b);
    assert_eq!(engine.meta().unwrap().event_seq, steps.len() as u64);

    // The event log keeps exactly the last 50 block events, each describing its step,
    // and survives a reopen together with the counter.
    drop(engine);
    let engine = Engine::open(cfg).unwrap();
    assert_eq!(engine.event_clock().last(), steps.len() as u64);
    let log = engine.store().unwrap().events_after(0).unwrap();
    assert_eq!(log.len(), 50);
    for (record, (i, step)) in log
        .iter()
        .zip(steps.iter().enumerate().skip(steps.len() - 50))
    {
        assert_eq!(record.seq, i as u64 + 1);
        match step {
            ReplayStep::Connect(h) => {
                assert_eq!(record.kind, EventKind::Connected);
                assert_eq!(record.hash, h.to_byte_array());
                assert!(record.tx_count >= 1);
            }
            ReplayStep::Disconnect(h) => {
                assert_eq!(record.kind, EventKind::Disconnected);
                assert_eq!(record.hash, h.to_byte_array());
            }
        }
    }
    let tail = engine.store().unwrap().events_after(170).unwrap();
    assert_eq!(
        tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (171..=178).collect::<Vec<_>>()
    );
}

#[test]
fn a_reorg_deeper_than_the_undo_log_resyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.undo_retention = 2;
    let mut engine = Engine::open(cfg.clone()).unwrap();
    sync_datadir(&mut engine, &fixture("datadir-A")).unwrap();
    assert_eq!(
        engine.store().unwrap().undo_heights().unwrap(),
        vec![169, 170]
    );
    let seq_before = engine.meta().unwrap().event_seq;
    drop(engine);

    let mut engine = Engine::open(cfg).unwrap();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = events.clone();
    engine.set_observer(move |e, _| sink.lock().unwrap().push((e.kind, e.seq, e.height)));
    let old_store = engine.store().unwrap();
    // Three blocks must be undone, only two can be: the index goes stale and is
    // rebuilt from datadir B's chainstate.
    let outcome = sync_datadir(&mut engine, &fixture("datadir-B")).unwrap();
    assert_eq!(
        outcome,
        CatchUp::AtTip {
            height: 172,
            disconnected: 0,
            connected: 0
        }
    );
    assert_matches_oracle(&engine, &load_oracle("oracle-B.json"));
    let meta = engine.meta().unwrap();
    assert_eq!(meta.snapshot.height, 172, "rebuilt from B's chainstate");
    // Subscribers see the two disconnects, then the rebuild as an event of its own.
    assert_eq!(
        *events.lock().unwrap(),
        vec![
            (BlockEventKind::Disconnected, seq_before + 1, 170),
            (BlockEventKind::Disconnected, seq_before + 2, 169),
            (BlockEventKind::Rebuilt, seq_before + 3, 172),
        ]
    );
    assert_eq!(meta.event_seq, seq_before + 3);
    // A handle to the replaced index refuses to answer instead of reading stale data.
    assert_eq!(old_store.read_meta().err(), Some(IndexError::Superseded));
    assert_eq!(
        old_store.for_each_utxo(|_, _| Ok(())).err(),
        Some(IndexError::Superseded)
    );
    assert_eq!(
        engine.store().unwrap().undo_heights().unwrap(),
        vec![171, 172]
    );
    // The rebuilt index's event log starts with the rebuild.
    let log = engine.store().unwrap().events_after(0).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].kind, log[0].seq, log[0].height),
        (EventKind::Rebuilt, seq_before + 3, 172)
    );
}

#[test]
fn wrong_network_is_refused_everywhere() {
    match DatadirSource::open(&fixture("datadir-A"), Network::Main) {
        Err(DatadirError::WrongNetwork {
            expected, found, ..
        }) => {
            assert_eq!((expected, found), (Network::Main, Some(Network::Regtest)));
        }
        other => panic!("expected WrongNetwork, got {:?}", other.err()),
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(config(tmp.path())).unwrap();
    sync_datadir(&mut engine, &fixture("datadir-A")).unwrap();
    drop(engine);
    let main = EngineConfig::new(tmp.path(), Network::Main);
    match Engine::open(main) {
        Err(SyncError::Index(IndexError::NetworkMismatch { found, expected })) => {
            assert_eq!((found, expected), (Network::Regtest, Network::Main));
        }
        other => panic!("expected a network mismatch, got {:?}", other.err()),
    }
}

#[test]
fn an_index_of_another_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(config(tmp.path())).unwrap();
    sync_datadir(&mut engine, &fixture("datadir-A")).unwrap();
    drop(engine);
    {
        // Rewrite the metadata's schema field as a future version would.
        let mut db =
            rusty_leveldb::DB::open(tmp.path().join("index"), rusty_leveldb::Options::default())
                .unwrap();
        let mut meta = db.get(b"mstate").unwrap().to_vec();
        meta[4..8].copy_from_slice(&99u32.to_le_bytes());
        db.put(b"mstate", &meta).unwrap();
        db.close().unwrap();
    }
    match Engine::open(config(tmp.path())) {
        Err(SyncError::Index(IndexError::SchemaMismatch { found, expected })) => {
            assert_eq!((found, expected), (99, opnet::index::SCHEMA_VERSION));
        }
        other => panic!("expected a schema mismatch, got {:?}", other.err()),
    }
}

#[test]
fn a_partial_flush_chainstate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cs = tmp.path().join("chainstate");
    common::copy_dir(&fixture("datadir-A/chainstate"), &cs);
    let best = Chainstate::open(&cs).unwrap().best_block();
    {
        // What bitcoind writes before a flush: 'H' = [new head, old head], obfuscated.
        let mut db = rusty_leveldb::DB::open(&cs, rusty_leveldb::Options::default()).unwrap();
        let key = db.get(b"\x0e\x00obfuscate_key").unwrap().to_vec();
        let xor = &key[1..];
        let mut value = vec![2u8];
        value.extend_from_slice(&[0x11; 32]);
        value.extend_from_slice(&best.to_byte_array());
        for (i, b) in value.iter_mut().enumerate() {
            *b ^= xor[i % xor.len()];
        }
        db.put(b"H", &value).unwrap();
        db.close().unwrap();
    }
    match Chainstate::open(&cs) {
        Err(ChainstateError::PartialFlush { heads, .. }) => {
            assert_eq!(heads.len(), 2);
            assert_eq!(heads[1], best);
        }
        other => panic!("expected PartialFlush, got {:?}", other.err()),
    }
}

#[test]
fn a_source_on_a_shorter_fork_is_followed_and_a_stale_copy_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Index at B's tip (172), then a source whose active chain is A's (170): the
    // index holds B's 170 at that height, a fork, so it rolls back to 167 and
    // connects A's 168-170.
    let mut engine = Engine::open(config(tmp.path())).unwrap();
    sync_datadir(&mut engine, &fixture("datadir-B")).unwrap();
    let outcome = sync_datadir(&mut engine, &fixture("datadir-A")).unwrap();
    assert_eq!(
        outcome,
        CatchUp::AtTip {
            height: 170,
            disconnected: 5,
            connected: 3
        }
    );
    assert_matches_oracle(&engine, &load_oracle("oracle-A.json"));
    drop(engine);

    // With two blocks of undo, height 170 is out of reach: the index cannot tell an
    // old copy from a fork and refuses rather than destroying itself.
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.undo_retention = 2;
    let mut engine = Engine::open(cfg).unwrap();
    sync_datadir(&mut engine, &fixture("datadir-B")).unwrap();
    match sync_datadir(&mut engine, &fixture("datadir-A")) {
        Err(SyncError::SourceTooFarBehind {
            index_height,
            source_height,
        }) => {
            assert_eq!((index_height, source_height), (172, 170));
        }
        other => panic!("expected SourceTooFarBehind, got {other:?}"),
    }
    assert_matches_oracle(&engine, &load_oracle("oracle-B.json"));
}
