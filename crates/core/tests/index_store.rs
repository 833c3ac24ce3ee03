//! The index store on its own: atomic commits, cursor pages, and refusal of an index
//! that belongs to another network or schema.

use opnet::index::{
    BlockRef, IndexBatch, IndexError, IndexMeta, IndexStore, StoreOptions, SyncState, UtxoKey,
    UtxoValue,
};
use opnet::Network;

fn meta(utxos: u64) -> IndexMeta {
    IndexMeta {
        network: Network::Regtest,
        state: SyncState::Ready,
        tip: BlockRef {
            height: 1,
            hash: [1; 32],
        },
        snapshot: BlockRef::default(),
        utxo_count: utxos,
        total_amount: utxos * 10,
        event_seq: 0,
    }
}

fn key(script: u8, txid: u8, vout: u32) -> UtxoKey {
    UtxoKey {
        script_hash: [script; 32],
        txid: [txid; 32],
        vout,
    }
}

fn value(amount: u64) -> UtxoValue {
    UtxoValue {
        amount,
        height: 7,
        coinbase: false,
        script: vec![0x51],
    }
}

#[test]
fn pages_follow_the_cursor_and_stay_inside_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let (store, m) =
        IndexStore::open(dir.path(), Network::Regtest, &StoreOptions::default()).unwrap();
    assert_eq!(m, None);
    let mut batch = IndexBatch::new();
    for vout in 0..25u32 {
        batch.put_utxo(&key(5, 9, vout), &value(vout as u64));
    }
    // Neighbours on both sides must never leak into script 5's pages.
    batch.put_utxo(&key(4, 9, 0), &value(1000));
    batch.put_utxo(&key(6, 0, 0), &value(2000));
    store.commit(batch, &meta(27)).unwrap();

    let sh = [5u8; 32];
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, more) = store.script_utxos(&sh, cursor.as_ref(), 10).unwrap();
        seen.extend(page.iter().map(|(k, v)| (k.vout, v.amount)));
        cursor = page.last().map(|(k, _)| *k);
        if !more {
            break;
        }
    }
    let expected: Vec<(u32, u64)> = (0..25).map(|v| (v, v as u64)).collect();
    assert_eq!(seen, expected);
    assert_eq!(
        store.script_utxos(&sh, Some(&key(6, 0, 0)), 10).err(),
        Some(IndexError::BadCursor)
    );
    let (none, more) = store.script_utxos(&[0x77; 32], None, 10).unwrap();
    assert!(none.is_empty() && !more);
}

#[test]
fn commits_survive_reopen_and_other_networks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) =
            IndexStore::open(dir.path(), Network::Regtest, &StoreOptions::default()).unwrap();
        let mut batch = IndexBatch::new();
        batch.put_utxo(&key(1, 2, 3), &value(42));
        store.commit(batch, &meta(1)).unwrap();
        let mut batch = IndexBatch::new();
        batch.delete_utxo(&key(1, 2, 3));
        batch.put_utxo(&key(1, 2, 4), &value(43));
        store.commit(batch, &meta(1)).unwrap();
    }
    let (store, m) =
        IndexStore::open(dir.path(), Network::Regtest, &StoreOptions::default()).unwrap();
    assert_eq!(m, Some(meta(1)));
    assert_eq!(store.get_utxo(&key(1, 2, 3)).unwrap(), None);
    assert_eq!(store.get_utxo(&key(1, 2, 4)).unwrap(), Some(value(43)));
    drop(store);
    match IndexStore::open(dir.path(), Network::Main, &StoreOptions::default()) {
        Err(IndexError::NetworkMismatch { found, expected }) => {
            assert_eq!((found, expected), (Network::Regtest, Network::Main));
        }
        other => panic!(
            "expected a network mismatch, got {:?}",
            other.map(|(_, m)| m)
        ),
    }
}

/// rusty-leveldb's point lookup misses keys its own iterator returns once
/// compactions have rewritten consecutive keys (found by the connect/disconnect
/// benchmark: an undo record "missing" on disconnect marked a healthy index stale).
/// Every point read must agree with a model through heavy compaction.
#[test]
fn point_reads_agree_with_the_model_through_compactions() {
    use opnet::index::UndoRecord;
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        block_cache_bytes: 1 << 20,
        write_buffer_bytes: 64 << 10,
    };
    let (store, _) = IndexStore::open(dir.path(), Network::Regtest, &opts).unwrap();
    let mut model: BTreeMap<u32, UndoRecord> = BTreeMap::new();
    let mut utxos: BTreeMap<UtxoKey, UtxoValue> = BTreeMap::new();
    let undo = |h: u32| UndoRecord {
        height: h,
        block_hash: [h as u8; 32],
        prev_hash: [(h - 1) as u8; 32],
        created: (0..40)
            .map(|v| (key((h % 7) as u8, h as u8, v), 1))
            .collect(),
        spent: vec![],
    };
    // Connect 400 "blocks" with consecutive undo keys and consecutive vouts, keep a
    // window of 100, then disconnect back down, checking every point read each time.
    let mut tip = 0u32;
    for step in 0..500u32 {
        let mut batch = IndexBatch::new();
        if step < 400 {
            tip += 1;
            let rec = undo(tip);
            for (k, _) in &rec.created {
                batch.put_utxo(k, &value(tip as u64));
                utxos.insert(*k, value(tip as u64));
            }
            batch.put_undo(&rec);
            model.insert(tip, rec);
            if tip > 100 {
                batch.delete_undo(tip - 100);
                model.remove(&(tip - 100));
            }
        } else {
            let rec = model.remove(&tip).unwrap();
            for (k, _) in &rec.created {
                batch.delete_utxo(k);
                utxos.remove(k);
            }
            batch.delete_undo(tip);
            tip -= 1;
        }
        store.commit(batch, &meta(utxos.len() as u64)).unwrap();
        for (h, rec) in &model {
            let got = store.get_undo(*h).unwrap();
            assert!(
                got.as_ref() == Some(rec),
                "undo {h} at step {step}: got {:?}",
                got.map(|r| r.height)
            );
        }
        if step % 50 == 0 {
            for (k, v) in &utxos {
                assert_eq!(
                    store.get_utxo(k).unwrap().as_ref(),
                    Some(v),
                    "utxo at step {step}"
                );
            }
            let keys: Vec<UtxoKey> = utxos.keys().copied().chain([key(99, 1, 1)]).collect();
            let mut expected: Vec<Option<UtxoValue>> = utxos.values().cloned().map(Some).collect();
            expected.push(None);
            assert_eq!(
                store.get_utxos(&keys).unwrap(),
                expected,
                "batch at step {step}"
            );
        }
    }
    assert_eq!(
        store.undo_heights().unwrap(),
        model.keys().copied().collect::<Vec<_>>()
    );
}

/// The server answers small queries on its event loop through `read_now`: such a
/// read must never wait for a write (one that starts right after the read checked
/// for writes used to take the database first and stall the event loop for the
/// whole commit, compactions included), and a write waits for it instead.
#[test]
fn a_read_now_never_waits_for_a_write_and_a_write_waits_for_it() {
    use std::sync::{mpsc, Arc};
    let dir = tempfile::tempdir().unwrap();
    let (store, _) =
        IndexStore::open(dir.path(), Network::Regtest, &StoreOptions::default()).unwrap();
    let store = Arc::new(store);
    store.commit(IndexBatch::new(), &meta(0)).unwrap();
    assert_eq!(store.read_now(|| 7), Some(7), "idle: runs at once");

    // A read_now in progress, paused inside its read.
    let (inside_tx, inside_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.read_now(|| {
                inside_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                store.read_meta().unwrap().unwrap().utxo_count
            })
        })
    };
    inside_rx.recv().unwrap();
    // A block commit starts meanwhile.
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut batch = IndexBatch::new();
            batch.put_utxo(&key(1, 1, 0), &value(10));
            store.commit(batch, &meta(1))
        })
    };
    while !store.is_writing() {
        std::thread::yield_now();
    }
    // A new read_now declines at once instead of queueing behind the write...
    assert_eq!(store.read_now(|| ()), None);
    // ...and the write waits for the read already running, which reads the state
    // from before the commit and completes without waiting for it.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!writer.is_finished(), "the write waits for the read");
    release_tx.send(()).unwrap();
    assert_eq!(reader.join().unwrap(), Some(0));
    writer.join().unwrap().unwrap();
    assert!(!store.is_writing());
    assert_eq!(
        store.read_now(|| store.read_meta().unwrap().unwrap().utxo_count),
        Some(1)
    );
}
