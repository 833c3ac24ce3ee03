//! The engine on its worker thread: events replayed through the bounded buffer,
//! with and without overflow, and a scan followed by a reorg across the snapshot.

mod common;

use std::sync::Arc;

use common::{fixture, index_utxos, load_chain, load_oracle};
use opnet::chainstate::{Chainstate, ChainstateError};
use opnet::datadir::DatadirSource;
use opnet::replay::ReplayChain;
use opnet::sync::{Engine, EngineConfig, LiveSync};
use opnet::Network;

fn no_chainstate() -> Arc<dyn Fn() -> Result<Chainstate, ChainstateError> + Send + Sync> {
    // These tests start from an index at genesis: a scan must never be asked for.
    Arc::new(|| panic!("no chainstate scan expected"))
}

fn replay_through_worker(buffer: usize) -> (Engine, usize, tempfile::TempDir) {
    let (blocks, steps) = load_chain();
    let chain = Arc::new(ReplayChain::new(Network::Regtest, blocks));
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(EngineConfig::new(tmp.path(), Network::Regtest)).unwrap();
    engine.init_at_genesis().unwrap();
    let live = LiveSync::start(engine, chain.clone(), no_chainstate(), buffer).unwrap();
    // Past its initial catch-up, the worker applies events in the order sent.
    assert!(live.wait_applied());
    let mut dropped = 0;
    for step in &steps {
        if !live.notify(chain.step(*step).unwrap()) {
            dropped += 1;
        }
    }
    assert!(live.wait_applied());
    (live.shutdown().unwrap(), dropped, tmp)
}

#[test]
fn every_event_through_a_roomy_buffer_is_applied_in_order() {
    let (engine, dropped, _dir) = replay_through_worker(1024);
    assert_eq!(dropped, 0);
    let oracle = load_oracle("oracle-B.json");
    assert_eq!(index_utxos(&engine.store().unwrap()), oracle.utxos);
    let meta = engine.meta().unwrap();
    assert_eq!(
        (meta.tip.height, meta.utxo_count, meta.total_amount),
        (172, oracle.txouts, oracle.total_amount)
    );
    // One event per step: 170 + 5 connects and 3 disconnects.
    assert_eq!(meta.event_seq, 178);
}

#[test]
fn a_full_buffer_drops_events_and_the_worker_catches_up_from_the_source() {
    let (engine, dropped, _dir) = replay_through_worker(2);
    assert!(
        dropped > 0,
        "a two-event buffer must overflow during a 178-event burst"
    );
    let oracle = load_oracle("oracle-B.json");
    assert_eq!(index_utxos(&engine.store().unwrap()), oracle.utxos);
    let meta = engine.meta().unwrap();
    assert_eq!(
        (meta.tip.height, meta.utxo_count, meta.total_amount),
        (172, oracle.txouts, oracle.total_amount)
    );
}

#[test]
fn scan_of_a_stale_branch_snapshot_then_reorg_on_the_worker() {
    // Datadir A's chainstate (tip 170 of branch A) against datadir B's chain: the
    // worker scans A's snapshot, rolls back three blocks through the undo records
    // built from rev data, and connects branch B.
    let source = Arc::new(DatadirSource::open(&fixture("datadir-B"), Network::Regtest).unwrap());
    let cs = fixture("datadir-A/chainstate");
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(tmp.path(), Network::Regtest)).unwrap();
    let status = engine.status();
    let live = LiveSync::start(engine, source, Arc::new(move || Chainstate::open(&cs)), 8).unwrap();
    assert!(live.wait_applied());
    let engine = live.shutdown().unwrap();
    let meta = engine.meta().unwrap();
    assert_eq!(meta.snapshot.height, 170);
    assert_eq!(
        index_utxos(&engine.store().unwrap()),
        load_oracle("oracle-B.json").utxos
    );
    let progress = status.snapshot();
    assert_eq!((progress.height, progress.scanned_utxos), (172, 3904));
}

#[test]
fn an_engine_returned_by_shutdown_runs_again() {
    let (blocks, steps) = load_chain();
    let chain = Arc::new(ReplayChain::new(Network::Regtest, blocks));
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(EngineConfig::new(tmp.path(), Network::Regtest)).unwrap();
    engine.init_at_genesis().unwrap();
    let live = LiveSync::start(engine, chain.clone(), no_chainstate(), 8).unwrap();
    assert!(live.wait_applied());
    let engine = live.shutdown().unwrap();
    // The chain moves on while no worker runs: the restarted worker must catch up
    // (shutdown's cancel flag must not stop it).
    for step in &steps[..10] {
        chain.step(*step).unwrap();
    }
    let live = LiveSync::start(engine, chain.clone(), no_chainstate(), 8).unwrap();
    assert!(live.wait_applied());
    let engine = live.shutdown().unwrap();
    assert_eq!(engine.meta().unwrap().tip.height, 10);
}
