//! The read-only LevelDB reader against databases written by rusty-leveldb and by
//! Bitcoin Core (the regtest fixtures).

#![cfg(feature = "engine")]

mod common;

use common::Rng;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use opnet::leveldb::{LdbError, ReadOnlyDb};
use rusty_leveldb::compressor::{CompressorId, SnappyCompressor};
use rusty_leveldb::{LdbIterator, Options, WriteBatch, DB};
use sha2::{Digest, Sha256};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/regtest-small");

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn key_for(i: u64) -> Vec<u8> {
    // Shared prefixes of varying length, binary bytes, some long keys.
    let mut k = format!("k{:03}/{:07}", i % 97, i).into_bytes();
    if i % 5 == 0 {
        k.extend_from_slice(&[0xff, 0x00, (i % 256) as u8]);
    }
    if i % 41 == 0 {
        k.extend(std::iter::repeat_n(b'x', 300));
    }
    k
}

fn options(compress: bool) -> Options {
    Options {
        create_if_missing: true,
        write_buffer_size: 64 * 1024,
        max_file_size: 128 * 1024,
        block_size: 2048,
        compressor: if compress { SnappyCompressor::ID } else { 0 },
        ..Options::default()
    }
}

struct Built {
    model: Model,
    /// Keys that were deleted at some point (some re-put since).
    deleted: BTreeSet<Vec<u8>>,
}

/// Writes `ops` random operations into a new rusty-leveldb database in `dir`. With
/// `close` false the DB is dropped without a final compaction, leaving recent writes
/// only in its log.
fn build(dir: &Path, compress: bool, ops: u64, keyspace: u64, seed: u64, close: bool) -> Built {
    let mut db = DB::open(dir, options(compress)).expect("rusty-leveldb open");
    let mut rng = Rng(seed);
    let mut model = Model::new();
    let mut deleted = BTreeSet::new();
    let mut n = 0;
    while n < ops {
        let r = rng.below(100);
        if r < 8 {
            // A batch, sometimes touching the same key twice.
            let mut wb = WriteBatch::default();
            let count = 1 + rng.below(20);
            for _ in 0..count {
                let k = key_for(rng.below(keyspace));
                if rng.below(4) == 0 {
                    wb.delete(&k);
                    model.remove(&k);
                    deleted.insert(k);
                } else {
                    let len = rng.below(80) as usize;
                    let v = rng.bytes(len);
                    wb.put(&k, &v);
                    model.insert(k, v);
                }
            }
            db.write(wb, false).expect("write batch");
            n += count;
        } else if r < 28 {
            let k = key_for(rng.below(keyspace));
            db.delete(&k).expect("delete");
            model.remove(&k);
            deleted.insert(k);
            n += 1;
        } else {
            let k = key_for(rng.below(keyspace));
            let len = if rng.below(10) == 0 {
                0
            } else {
                rng.below(120) as usize
            };
            let v = rng.bytes(len);
            db.put(&k, &v).expect("put");
            model.insert(k, v);
            n += 1;
        }
    }
    if close {
        db.close().expect("close");
    }
    drop(db);
    Built { model, deleted }
}

fn collect(db: &ReadOnlyDb, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut it = db.range(start, end).expect("range");
    let mut out = Vec::new();
    while it.advance().expect("advance") {
        out.push((it.key().to_vec(), it.value().to_vec()));
    }
    out
}

fn model_range(m: &Model, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.range(start.to_vec()..)
        .take_while(|(k, _)| end.is_none_or(|e| k.as_slice() < e))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn check_against_model(dir: &Path, built: &Built, seed: u64) {
    let db = ReadOnlyDb::open(dir).expect("ReadOnlyDb::open");
    let all = collect(&db, b"", None);
    let want = model_range(&built.model, b"", None);
    assert_eq!(all.len(), want.len(), "entry count");
    assert!(all == want, "full iteration differs from the model");

    let keys: Vec<&Vec<u8>> = built.model.keys().collect();
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    for i in 0..40 {
        // Bounds that are present keys, absent keys, or prefixes.
        let pick = |rng: &mut Rng| -> Vec<u8> {
            match rng.below(3) {
                0 => keys[rng.below(keys.len() as u64) as usize].clone(),
                1 => key_for(rng.below(100_000)),
                _ => format!("k{:03}", rng.below(100)).into_bytes(),
            }
        };
        let a = pick(&mut rng);
        let b = pick(&mut rng);
        let (start, end) = if a <= b { (a, b) } else { (b, a) };
        let end = if i % 10 == 0 {
            None
        } else {
            Some(end.as_slice())
        };
        assert_eq!(
            collect(&db, &start, end),
            model_range(&built.model, &start, end),
            "range {i}"
        );
    }
    // An empty and an inverted range.
    assert!(collect(&db, b"k050", Some(b"k050")).is_empty());
    assert!(collect(&db, b"k060", Some(b"k050")).is_empty());

    for (k, v) in built.model.iter().step_by(7) {
        assert_eq!(db.get(k).expect("get").as_ref(), Some(v), "get present");
    }
    for k in &built.deleted {
        assert_eq!(
            db.get(k).expect("get").as_ref(),
            built.model.get(k),
            "get deleted/re-put"
        );
    }
    for i in 0..500 {
        let k = key_for(1_000_000 + i);
        assert_eq!(db.get(&k).expect("get absent"), None);
    }
    assert_eq!(
        db.get(b"").expect("get empty key"),
        built.model.get(&b""[..]).cloned()
    );
    assert!(db.approximate_size() > 0);
}

fn table_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".ldb")
        })
        .count()
}

#[test]
fn rusty_leveldb_uncompressed() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build(tmp.path(), false, 60_000, 30_000, 1, true);
    assert!(
        table_count(tmp.path()) >= 10,
        "expected many tables, got {}",
        table_count(tmp.path())
    );
    check_against_model(tmp.path(), &built, 1);
}

#[test]
fn rusty_leveldb_snappy() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build(tmp.path(), true, 60_000, 30_000, 2, true);
    assert!(
        table_count(tmp.path()) >= 5,
        "expected many tables, got {}",
        table_count(tmp.path())
    );
    check_against_model(tmp.path(), &built, 2);
}

#[test]
fn rusty_leveldb_data_left_in_log() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build(tmp.path(), true, 30_000, 20_000, 3, false);
    // Reopen with rusty-leveldb and write a little more, then drop without close: the
    // last writes live only in the log, over tables from an earlier session.
    let mut built = built;
    {
        let mut db = DB::open(tmp.path(), options(true)).unwrap();
        let mut rng = Rng(33);
        for _ in 0..300 {
            let k = key_for(rng.below(20_000));
            if rng.below(3) == 0 {
                db.delete(&k).unwrap();
                built.model.remove(&k);
                built.deleted.insert(k);
            } else {
                let v = rng.bytes(30);
                db.put(&k, &v).unwrap();
                built.model.insert(k, v);
            }
        }
        db.flush().unwrap();
    }
    let log_bytes: u64 = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        log_bytes > 1000,
        "the log should hold un-compacted writes ({log_bytes} bytes)"
    );
    check_against_model(tmp.path(), &built, 3);
}

#[test]
fn empty_and_log_only_databases() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut db = DB::open(tmp.path(), options(false)).unwrap();
        db.flush().unwrap();
    }
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    assert!(collect(&db, b"", None).is_empty());
    assert_eq!(db.get(b"x").unwrap(), None);

    let tmp = tempfile::tempdir().unwrap();
    let built = build(tmp.path(), false, 200, 100, 4, false);
    assert_eq!(table_count(tmp.path()), 0);
    check_against_model(tmp.path(), &built, 4);
}

#[test]
fn four_threads_over_one_db() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build(tmp.path(), false, 40_000, 25_000, 5, true);
    let db = Arc::new(ReadOnlyDb::open(tmp.path()).unwrap());
    let full = collect(&db, b"", None);
    assert_eq!(full.len(), built.model.len());
    let q = full.len() / 4;
    let bounds: Vec<Option<Vec<u8>>> = vec![
        None,
        Some(full[q].0.clone()),
        Some(full[2 * q].0.clone()),
        Some(full[3 * q].0.clone()),
        None,
    ];
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let db = Arc::clone(&db);
            let start = bounds[i].clone().unwrap_or_default();
            let end = bounds[i + 1].clone();
            std::thread::spawn(move || collect(&db, &start, end.as_deref()))
        })
        .collect();
    let joined: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        joined == full,
        "the 4 ranges concatenated differ from one full scan"
    );
}

// ---- Bitcoin Core fixtures ----

fn fixture_dirs() -> Vec<PathBuf> {
    [
        "datadir-A/chainstate",
        "datadir-A/blocks/index",
        "datadir-B/chainstate",
        "datadir-B/blocks/index",
    ]
    .iter()
    .map(|d| Path::new(FIXTURES).join(d))
    .collect()
}

/// Name, size and SHA-256 of every file in `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, [u8; 32])> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            let hash: [u8; 32] = Sha256::digest(&bytes).into();
            (
                e.file_name().to_string_lossy().into_owned(),
                (bytes.len() as u64, hash),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// What rusty-leveldb sees in a copy of `dir` (it writes to the directory it opens).
fn rusty_view(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(dir, tmp.path());
    let o = Options {
        create_if_missing: false,
        ..Options::default()
    };
    let mut db = DB::open(tmp.path(), o).expect("rusty-leveldb opens the copy");
    let mut it = db.new_iter().unwrap();
    let mut out = Vec::new();
    while it.advance() {
        let (k, v) = it.current().unwrap();
        out.push((k.to_vec(), v.to_vec()));
    }
    out
}

#[test]
fn bitcoin_core_fixtures_match_rusty_leveldb() {
    let mut counts = Vec::new();
    for dir in fixture_dirs() {
        let before = snapshot(&dir);
        let db = ReadOnlyDb::open(&dir).unwrap();
        let ours = collect(&db, b"", None);
        for (k, v) in ours.iter().step_by(13) {
            assert_eq!(db.get(k).unwrap().as_ref(), Some(v));
        }
        drop(db);
        assert_eq!(snapshot(&dir), before, "{} changed", dir.display());
        let theirs = rusty_view(&dir);
        assert_eq!(ours.len(), theirs.len(), "{}", dir.display());
        assert!(
            ours == theirs,
            "{} differs from rusty-leveldb",
            dir.display()
        );
        let name = dir.strip_prefix(FIXTURES).unwrap().display().to_string();
        counts.push((name, ours.len()));
    }
    eprintln!("fixture entry counts: {counts:?}");
    let got: Vec<usize> = counts.iter().map(|c| c.1).collect();
    assert_eq!(got, EXPECTED_COUNTS, "{counts:?}");
}

/// Entries in datadir-A/chainstate, datadir-A/blocks/index, datadir-B/chainstate,
/// datadir-B/blocks/index.
const EXPECTED_COUNTS: [usize; 4] = [3906, 173, 3903, 178];

#[test]
fn chainstate_has_obfuscation_key_and_best_block() {
    for side in ["datadir-A", "datadir-B"] {
        let dir = Path::new(FIXTURES).join(side).join("chainstate");
        let db = ReadOnlyDb::open(&dir).unwrap();
        let mut obf_key = vec![0x0e, 0x00];
        obf_key.extend_from_slice(b"obfuscate_key");
        let obf = db.get(&obf_key).unwrap().expect("obfuscate_key present");
        // A compact-size length (8) and the 8-byte key.
        assert_eq!(obf.len(), 9, "{side}");
        assert_eq!(obf[0], 8);
        let best = db.get(b"B").unwrap().expect("best block present");
        assert_eq!(best.len(), 32, "{side}");
        // Coins ('C' keys): as many as the oracle's txouts.
        let oracle = std::fs::read_to_string(
            Path::new(FIXTURES).join(format!("oracle-{}.json", &side[8..])),
        )
        .unwrap();
        let oracle: serde_json::Value = serde_json::from_str(&oracle).unwrap();
        let coins = collect(&db, b"C", Some(b"D")).len() as u64;
        assert_eq!(coins, oracle["txouts"].as_u64().unwrap(), "{side}");
    }
}

#[test]
fn fixtures_are_never_written() {
    for dir in fixture_dirs() {
        let before = snapshot(&dir);
        for _ in 0..3 {
            let db = ReadOnlyDb::open(&dir).unwrap();
            let n = collect(&db, b"", None).len();
            let _ = collect(&db, b"C", Some(b"D"));
            let _ = db.get(b"B").unwrap();
            let _ = db.get(b"nope").unwrap();
            assert!(n > 0);
        }
        let after = snapshot(&dir);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "files appeared or vanished"
        );
        assert_eq!(before, after, "{} changed", dir.display());
    }
}

#[test]
fn missing_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let e = ReadOnlyDb::open(&tmp.path().join("nope")).unwrap_err();
    assert!(matches!(e, LdbError::MissingFile { .. }), "{e}");
    // Nothing was created.
    assert!(!tmp.path().join("nope").exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// Scan speed over a large database: `cargo test --release -p opnet --test
/// leveldb_reader -- --ignored --nocapture scan_speed`.
#[test]
#[ignore]
fn scan_speed() {
    scan_speed_with(false);
    scan_speed_with(true);
}

fn scan_speed_with(compress: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let n: u64 = 2_000_000;
    {
        let o = Options {
            write_buffer_size: 4 << 20,
            max_file_size: 32 << 20,
            compressor: if compress { SnappyCompressor::ID } else { 0 },
            ..Options::default()
        };
        let mut db = DB::open(tmp.path(), o).unwrap();
        let mut rng = Rng(7);
        for chunk in 0..n / 1000 {
            let mut wb = WriteBatch::default();
            for i in 0..1000 {
                // A chainstate-like key ('C' + 32-byte txid + vout) and a ~40-byte value.
                let mut k = vec![b'C'];
                k.extend_from_slice(&rng.bytes(32));
                k.push(((chunk * 1000 + i) % 7) as u8);
                wb.put(&k, &rng.bytes(40));
            }
            db.write(wb, false).unwrap();
        }
        db.close().unwrap();
    }
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    let size = db.approximate_size();
    eprintln!(
        "snappy: {compress}; tables per level {:?}; {} keys in the log",
        db.table_counts(),
        db.log_key_count()
    );
    // Warm the page cache, then time.
    let _ = collect(&db, b"", None);
    for round in 0..3 {
        let t = std::time::Instant::now();
        let mut it = db.range(b"", None).unwrap();
        let (mut count, mut bytes) = (0u64, 0u64);
        while it.advance().unwrap() {
            count += 1;
            bytes += (it.key().len() + it.value().len()) as u64;
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "round {round}: {count} entries, {bytes} bytes of {size} on disk in {secs:.3}s: {:.2} M entries/s",
            count as f64 / secs / 1e6
        );
        assert!(count >= n * 99 / 100);
    }
}
