//! Damaged block and undo files: every fault is a clear error naming the file, no
//! panic, and the index keeps everything it had committed before the fault.

mod common;

use std::path::Path;

use common::{copy_dir, fixture, index_utxos, load_chain, load_oracle};
use opnet::chainstate::Chainstate;
use opnet::datadir::DatadirSource;
use opnet::format::blockfile::BlockFiles;
use opnet::replay::{ReplayChain, ReplayStep};
use opnet::sync::{Engine, EngineConfig, SyncError};
use opnet::Network;

/// An index replayed from the recorded chain up to `height` (branch A).
fn index_at(dir: &Path, height: u32) -> Engine {
    let (blocks, steps) = load_chain();
    let chain = ReplayChain::new(Network::Regtest, blocks);
    let mut engine = Engine::open(EngineConfig::new(dir, Network::Regtest)).unwrap();
    engine.init_at_genesis().unwrap();
    for step in steps {
        if engine.meta().unwrap().tip.height == height {
            break;
        }
        assert!(matches!(step, ReplayStep::Connect(_)));
        engine
            .handle_event(&chain.step(step).unwrap(), &chain)
            .unwrap();
    }
    engine
}

/// File offset and size of the block at `height` in a copied datadir.
fn block_position(datadir: &Path, height: u32) -> (u64, u64) {
    let source = DatadirSource::open(datadir, Network::Regtest).unwrap();
    let want = opnet::source::ChainSource::hash_at_height(&source, height)
        .unwrap()
        .unwrap();
    let files = BlockFiles::open(&datadir.join("blocks"), Network::Regtest.magic()).unwrap();
    for (pos, size) in files.scan_blocks(0).unwrap() {
        let raw = files.read_block(0, pos).unwrap();
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&raw).unwrap();
        if block.block_hash() == want {
            return (pos as u64, size as u64);
        }
    }
    panic!("block {height} not found");
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn catch_up_error(engine: &mut Engine, datadir: &Path) -> String {
    let source = DatadirSource::open(datadir, Network::Regtest).unwrap();
    let cs = datadir.join("chainstate");
    match engine.sync(&source, &|| Chainstate::open(&cs)) {
        Err(e @ SyncError::Source(_)) => e.to_string(),
        other => panic!("expected a source error, got {other:?}"),
    }
}

/// After a fault at block 165, the index is still at 164, intact, and a clean
/// source brings it to the oracle.
fn assert_kept_and_recovers(engine: &mut Engine) {
    assert_eq!(engine.meta().unwrap().tip.height, 164);
    let a = fixture("datadir-A");
    let source = DatadirSource::open(&a, Network::Regtest).unwrap();
    let cs = a.join("chainstate");
    engine.sync(&source, &|| Chainstate::open(&cs)).unwrap();
    assert_eq!(
        index_utxos(&engine.store().unwrap()),
        load_oracle("oracle-A.json").utxos
    );
}

#[test]
fn a_flipped_byte_inside_a_block_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("datadir");
    copy_dir(&fixture("datadir-A"), &data);
    let (pos, size) = block_position(&data, 165);
    // Inside the transactions, past the 80-byte header: only the merkle check sees it.
    flip_byte(&data.join("blocks/blk00000.dat"), pos + 80 + size / 2);
    let mut engine = index_at(&tmp.path().join("opnet"), 164);
    let msg = catch_up_error(&mut engine, &data);
    assert!(msg.contains("blk00000.dat"), "{msg}");
    assert_kept_and_recovers(&mut engine);
}

#[test]
fn a_block_file_truncated_mid_block_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("datadir");
    copy_dir(&fixture("datadir-A"), &data);
    let (pos, size) = block_position(&data, 165);
    let blk = data.join("blocks/blk00000.dat");
    let f = std::fs::OpenOptions::new().write(true).open(&blk).unwrap();
    f.set_len(pos + size / 2).unwrap();
    let mut engine = index_at(&tmp.path().join("opnet"), 164);
    let msg = catch_up_error(&mut engine, &data);
    assert!(msg.contains("blk00000.dat"), "{msg}");
    assert_kept_and_recovers(&mut engine);
}

#[test]
fn damaged_undo_data_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("datadir");
    copy_dir(&fixture("datadir-A"), &data);
    // Damage the undo record of block 165 (the checksum covers every byte of it).
    let files = BlockFiles::open(&data.join("blocks"), Network::Regtest.magic()).unwrap();
    let records = files.scan_undo(0).unwrap();
    assert_eq!(records.len(), 170);
    let (pos, size) = records[164];
    flip_byte(
        &data.join("blocks/rev00000.dat"),
        pos as u64 + size as u64 / 2,
    );
    let mut engine = index_at(&tmp.path().join("opnet"), 164);
    let msg = catch_up_error(&mut engine, &data);
    assert!(msg.contains("rev00000.dat"), "{msg}");
    assert_kept_and_recovers(&mut engine);
}
