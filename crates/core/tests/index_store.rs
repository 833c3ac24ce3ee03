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
