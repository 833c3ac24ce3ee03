//! The bulk writer against both readers: the project's `ReadOnlyDb` and rusty-leveldb,
//! including rusty-leveldb writing to and compacting a bulk-written database.

#![cfg(feature = "engine")]

mod common;

use common::Rng;

use std::collections::{BTreeMap, HashSet};
use std::io::ErrorKind;
use std::path::Path;
use std::time::Instant;

use opnet::leveldb::writer::{BulkStats, BulkWriter, BulkWriterOptions};
use opnet::leveldb::{LdbError, ReadOnlyDb};
use rusty_leveldb::{LdbIterator, Options, DB};

type Entries = Vec<(Vec<u8>, Vec<u8>)>;
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// A UTXO-index key: `u` + script hash (32) + txid (32) + vout-like counter (4, BE).
/// Script hashes come from a pool a third the size of `n`, so keys share 33-byte
/// prefixes the way addresses with several UTXOs do.
fn utxo_key(rng: &mut Rng, pool: &[[u8; 32]], counter: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(69);
    k.push(b'u');
    k.extend_from_slice(&pool[rng.below(pool.len() as u64) as usize]);
    k.extend_from_slice(&rng.bytes(32));
    k.extend_from_slice(&counter.to_be_bytes());
    k
}

fn script_pool(rng: &mut Rng, n: usize) -> Vec<[u8; 32]> {
    (0..n.max(1))
        .map(|_| {
            let mut h = [0u8; 32];
            rng.fill(&mut h);
            h
        })
        .collect()
}

/// `n` sorted UTXO-shaped entries with 13..=60-byte values.
fn utxo_entries(n: usize, seed: u64) -> Entries {
    let mut rng = Rng(seed);
    let pool = script_pool(&mut rng, n / 3);
    let mut e: Entries = (0..n)
        .map(|i| {
            let k = utxo_key(&mut rng, &pool, i as u32);
            let len = 13 + rng.below(48) as usize;
            (k, rng.bytes(len))
        })
        .collect();
    e.sort();
    e
}

fn opts(table_bytes: u64, block_bytes: usize, restart_interval: usize) -> BulkWriterOptions {
    BulkWriterOptions {
        table_bytes,
        block_bytes,
        restart_interval,
    }
}

fn write(dir: &Path, entries: &[(Vec<u8>, Vec<u8>)], o: BulkWriterOptions) -> BulkStats {
    let mut w = BulkWriter::create(dir, o).expect("create");
    for (k, v) in entries {
        w.add(k, v).expect("add");
    }
    w.finish().expect("finish")
}

fn rusty_options() -> Options {
    Options {
        create_if_missing: false,
        paranoid_checks: true,
        reuse_logs: false,
        ..Options::default()
    }
}

fn rusty_scan(db: &mut DB) -> Entries {
    let mut it = db.new_iter().expect("rusty iterator");
    let mut out = Vec::new();
    while it.advance() {
        let (k, v) = it.current().expect("current");
        out.push((k.to_vec(), v.to_vec()));
    }
    out
}

fn ro_scan(dir: &Path) -> Entries {
    let db = ReadOnlyDb::open(dir).expect("ReadOnlyDb::open");
    let mut it = db.range(b"", None).expect("range");
    let mut out = Vec::new();
    while it.advance().expect("advance") {
        out.push((it.key().to_vec(), it.value().to_vec()));
    }
    out
}

fn rusty_get(db: &mut DB, k: &[u8]) -> Option<Vec<u8>> {
    db.get(k).map(|v| v.to_vec())
}

fn table_numbers(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".ldb")?.parse().ok()
        })
        .collect();
    v.sort();
    v
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Reads `dir` through both readers (rusty-leveldb on the directory itself) and checks
/// every key with `get`, plus keys next to them that are absent.
fn check_both(dir: &Path, entries: &[(Vec<u8>, Vec<u8>)]) {
    assert!(ro_scan(dir) == entries, "ReadOnlyDb scan differs");
    let ro = ReadOnlyDb::open(dir).unwrap();
    let present: HashSet<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
    let mut db = DB::open(dir, rusty_options()).expect("rusty-leveldb opens the bulk database");
    assert!(rusty_scan(&mut db) == entries, "rusty-leveldb scan differs");
    for (k, v) in entries {
        assert_eq!(
            rusty_get(&mut db, k).as_ref(),
            Some(v),
            "rusty get {k:02x?}"
        );
        assert_eq!(ro.get(k).unwrap().as_ref(), Some(v), "ReadOnlyDb get");
        let mut longer = k.clone();
        longer.push(0);
        for absent in [longer, k[..k.len().saturating_sub(1)].to_vec()] {
            if !present.contains(absent.as_slice()) {
                assert_eq!(rusty_get(&mut db, &absent), None);
                assert_eq!(ro.get(&absent).unwrap(), None);
            }
        }
    }
    db.close().unwrap();
}

/// 300,000 UTXO-shaped entries in many small tables: both readers see exactly the input;
/// then rusty-leveldb writes, deletes and compacts down into the bulk tables, and the
/// result matches the model through both readers.
#[test]
fn bulk_database_reads_writes_and_compacts() {
    const N: usize = 300_000;
    let entries = utxo_entries(N, 0x5eed_0001);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let t = Instant::now();
    let stats = write(&dir, &entries, opts(256 << 10, 4096, 16));
    eprintln!("wrote {stats:?} in {:?}", t.elapsed());
    assert_eq!(stats.entries, N as u64);
    assert!(stats.tables > 50, "{stats:?}");
    let numbers = table_numbers(&dir);
    assert_eq!(
        numbers,
        (2..2 + u64::from(stats.tables)).collect::<Vec<_>>()
    );
    let mut names = file_names(&dir);
    names.retain(|n| !n.ends_with(".ldb"));
    assert_eq!(names, ["CURRENT", "MANIFEST-000001"]);
    assert_eq!(
        std::fs::read(dir.join("CURRENT")).unwrap(),
        b"MANIFEST-000001\n"
    );
    let on_disk: u64 = numbers
        .iter()
        .map(|n| {
            std::fs::metadata(dir.join(format!("{n:06}.ldb")))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(on_disk, stats.bytes);

    // (a) The project's reader.
    {
        let ro = ReadOnlyDb::open(&dir).unwrap();
        let mut counts = vec![0; 6];
        counts.push(stats.tables as usize);
        assert_eq!(ro.table_counts(), counts);
        assert_eq!(ro.log_key_count(), 0);
    }
    assert!(ro_scan(&dir) == entries, "ReadOnlyDb scan differs");

    // (b) rusty-leveldb, with the index store's options (a new log and a new MANIFEST
    // on every open).
    let present: HashSet<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
    let mut rng = Rng(77);
    {
        let o = Options {
            reuse_manifest: false,
            ..rusty_options()
        };
        let mut db = DB::open(&dir, o).expect("rusty-leveldb open");
        for _ in 0..1000 {
            let (k, v) = &entries[rng.below(N as u64) as usize];
            assert_eq!(rusty_get(&mut db, k).as_ref(), Some(v));
        }
        // Every key of a stretch spanning table boundaries, and the ends.
        for (k, v) in entries[140_000..146_000]
            .iter()
            .chain(&entries[..50])
            .chain(&entries[N - 50..])
        {
            assert_eq!(rusty_get(&mut db, k).as_ref(), Some(v));
        }
        let mut absent = 0;
        for i in 0..1000 {
            let (k, _) = &entries[rng.below(N as u64) as usize];
            let mut a = k.clone();
            match i % 4 {
                0 => *a.last_mut().unwrap() ^= 0x55,
                1 => a.push(0),
                2 => a.truncate(33),
                _ => a[20] ^= 1,
            }
            if !present.contains(a.as_slice()) {
                assert_eq!(rusty_get(&mut db, &a), None);
                absent += 1;
            }
        }
        assert!(absent > 900);
        assert_eq!(rusty_get(&mut db, b""), None);
        assert_eq!(rusty_get(&mut db, b"t"), None);
        assert_eq!(rusty_get(&mut db, &[0xff; 70]), None);
        assert!(rusty_scan(&mut db) == entries, "rusty-leveldb scan differs");
        db.close().unwrap();
    }
    // rusty-leveldb replaced the MANIFEST (numbered past the bulk tables) and added an
    // empty log; the data is untouched.
    let names = file_names(&dir);
    assert!(!names.contains(&"MANIFEST-000001".to_string()), "{names:?}");
    assert_eq!(table_numbers(&dir), numbers);
    assert!(
        ro_scan(&dir) == entries,
        "ReadOnlyDb scan after rusty-leveldb opened it"
    );

    // Writes through rusty-leveldb: new keys, overwrites, deletions; small memtables so
    // tables get flushed and compacted.
    let mut model: Model = entries.iter().cloned().collect();
    let wopts = || Options {
        write_buffer_size: 32 << 10,
        max_file_size: 64 << 10,
        ..rusty_options()
    };
    {
        let mut db = DB::open(&dir, wopts()).unwrap();
        let pool = script_pool(&mut rng, 500);
        for i in 0..4000u32 {
            match i % 4 {
                0 | 1 => {
                    let k = utxo_key(&mut rng, &pool, 1_000_000 + i);
                    let len = 13 + rng.below(48) as usize;
                    let v = rng.bytes(len);
                    db.put(&k, &v).unwrap();
                    model.insert(k, v);
                }
                2 => {
                    let k = entries[rng.below(N as u64) as usize].0.clone();
                    let v = rng.bytes(20);
                    db.put(&k, &v).unwrap();
                    model.insert(k, v);
                }
                _ => {
                    let k = entries[rng.below(N as u64) as usize].0.clone();
                    db.delete(&k).unwrap();
                    model.remove(&k);
                }
            }
        }
        let want: Entries = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(rusty_scan(&mut db) == want, "rusty-leveldb after writes");
        db.close().unwrap();
    }
    // Compact everything down level by level until nothing is left above level 6 (each
    // compact_range moves data one level further down).
    let want: Entries = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut rounds = 0;
    loop {
        let counts = ReadOnlyDb::open(&dir).unwrap().table_counts();
        if counts[..6].iter().all(|&c| c == 0) {
            break;
        }
        rounds += 1;
        assert!(rounds <= 10, "levels never emptied: {counts:?}");
        let mut db = DB::open(&dir, wopts()).unwrap();
        db.compact_range(b"", &[0xff; 80]).unwrap();
        db.close().unwrap();
    }
    eprintln!("compacted to level 6 in {rounds} rounds");
    let original: Vec<u64> = (2..2 + u64::from(stats.tables)).collect();
    let now = table_numbers(&dir);
    let kept = now.iter().filter(|n| original.contains(n)).count();
    assert!(
        kept < original.len(),
        "no bulk table was rewritten by the compactions"
    );
    assert!(now.iter().any(|n| !original.contains(n)));

    // Reopened: both readers see the model.
    assert!(ro_scan(&dir) == want, "ReadOnlyDb after compactions");
    let ro = ReadOnlyDb::open(&dir).unwrap();
    let mut db = DB::open(&dir, rusty_options()).unwrap();
    assert!(
        rusty_scan(&mut db) == want,
        "rusty-leveldb after compactions"
    );
    for (k, _) in entries.iter().step_by(97) {
        assert_eq!(rusty_get(&mut db, k).as_ref(), model.get(k));
        assert_eq!(ro.get(k).unwrap().as_ref(), model.get(k));
    }
    for (k, v) in model.iter().step_by(101) {
        assert_eq!(rusty_get(&mut db, k).as_ref(), Some(v));
    }
    db.close().unwrap();
}

#[test]
fn empty_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/empty");
    let w = BulkWriter::create(&dir, BulkWriterOptions::default()).unwrap();
    let stats = w.finish().unwrap();
    assert_eq!(
        stats,
        BulkStats {
            entries: 0,
            tables: 0,
            bytes: 0
        }
    );
    assert_eq!(file_names(&dir), ["CURRENT", "MANIFEST-000001"]);
    assert!(ro_scan(&dir).is_empty());
    let mut db = DB::open(&dir, rusty_options()).unwrap();
    assert!(rusty_scan(&mut db).is_empty());
    assert_eq!(rusty_get(&mut db, b"x"), None);
    db.put(b"x", b"1").unwrap();
    db.close().unwrap();
    let mut db = DB::open(&dir, rusty_options()).unwrap();
    assert_eq!(rusty_get(&mut db, b"x").as_deref(), Some(&b"1"[..]));
    db.close().unwrap();
    assert_eq!(ro_scan(&dir), vec![(b"x".to_vec(), b"1".to_vec())]);
}

#[test]
fn one_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let e = vec![(b"only".to_vec(), b"value".to_vec())];
    let stats = write(tmp.path(), &e, BulkWriterOptions::default());
    assert_eq!((stats.entries, stats.tables), (1, 1));
    check_both(tmp.path(), &e);
    // A later write gets a higher sequence number and wins.
    let mut db = DB::open(tmp.path(), rusty_options()).unwrap();
    db.put(b"only", b"newer").unwrap();
    db.put(b"other", b"x").unwrap();
    assert_eq!(rusty_get(&mut db, b"only").as_deref(), Some(&b"newer"[..]));
    db.close().unwrap();
    let mut db = DB::open(tmp.path(), rusty_options()).unwrap();
    db.compact_range(b"", b"zzzz").unwrap();
    assert_eq!(rusty_get(&mut db, b"only").as_deref(), Some(&b"newer"[..]));
    db.close().unwrap();
    assert_eq!(
        ro_scan(tmp.path()),
        vec![
            (b"only".to_vec(), b"newer".to_vec()),
            (b"other".to_vec(), b"x".to_vec())
        ]
    );
}

/// Values larger than a block and than the writer's output buffer, empty values, an
/// empty key, keys that are prefixes of each other, long shared prefixes and runs of
/// 0xff (where no short index separator exists), with tiny blocks so that nearly every
/// key ends a block and many end a table.
#[test]
fn awkward_keys_and_values() {
    let mut rng = Rng(9);
    let mut e: Entries = vec![(Vec::new(), b"empty key".to_vec())];
    for i in 1..=40usize {
        e.push((vec![b'a'; i], rng.bytes(i % 5)));
    }
    for i in 0..300u32 {
        let mut k = vec![b'p'; 3000];
        k.extend_from_slice(&i.to_be_bytes());
        e.push((k, rng.bytes(30)));
    }
    for i in 0..200u32 {
        let mut k = vec![b'q', (i / 16) as u8];
        k.extend_from_slice(&[0xff; 20]);
        k.push(i as u8);
        e.push((k, Vec::new()));
    }
    for n in 1..30usize {
        e.push((vec![0xff; n], rng.bytes(7)));
    }
    e.push((b"big1".to_vec(), rng.bytes(100_000)));
    e.push((b"big2".to_vec(), rng.bytes(3 << 20)));
    e.push((b"big3".to_vec(), b"after the big ones".to_vec()));
    e.sort();
    e.dedup_by(|a, b| a.0 == b.0);
    for o in [
        opts(1, 1, 1),
        opts(600, 64, 2),
        opts(32 << 20, 4096, 16),
        opts(8 << 10, 512, 1000),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let stats = write(tmp.path(), &e, o);
        assert_eq!(stats.entries, e.len() as u64);
        check_both(tmp.path(), &e);
    }
}

/// Thousands of tables: the MANIFEST's single version edit spans several 32 KiB log
/// blocks.
#[test]
fn many_tables_fragmented_manifest() {
    let e = utxo_entries(6000, 3);
    let tmp = tempfile::tempdir().unwrap();
    let stats = write(tmp.path(), &e, opts(1, 1024, 16));
    assert!(stats.tables > 500, "{stats:?}");
    let manifest = std::fs::metadata(tmp.path().join("MANIFEST-000001"))
        .unwrap()
        .len();
    assert!(manifest > 2 * 32 * 1024, "manifest {manifest} bytes");
    check_both(tmp.path(), &e);
}

fn assert_invalid_input(e: &LdbError) {
    match e {
        LdbError::Io { source, .. } => assert_eq!(source.kind(), ErrorKind::InvalidInput, "{e}"),
        _ => panic!("unexpected error {e}"),
    }
}

#[test]
fn out_of_order_and_duplicate_keys_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = BulkWriter::create(tmp.path(), opts(256, 64, 4)).unwrap();
    let mut want = Entries::new();
    for i in 0..100u32 {
        let k = format!("key{i:04}").into_bytes();
        w.add(&k, b"v").unwrap();
        want.push((k, b"v".to_vec()));
    }
    assert_invalid_input(&w.add(b"key0099", b"dup").unwrap_err());
    assert_invalid_input(&w.add(b"key0050", b"back").unwrap_err());
    assert_invalid_input(&w.add(b"", b"back").unwrap_err());
    let e = w.add(b"key0098\xff", b"back").unwrap_err();
    assert!(e.to_string().contains("strictly increasing"), "{e}");
    // Rejected keys are not written and the writer goes on.
    w.add(b"key0100", b"v").unwrap();
    want.push((b"key0100".to_vec(), b"v".to_vec()));
    assert_invalid_input(&w.add(b"key0100", b"v").unwrap_err());
    assert_eq!(w.entries(), 101);
    w.finish().unwrap();
    check_both(tmp.path(), &want);

    // The very first key can be anything, including the empty key; then a duplicate.
    let tmp = tempfile::tempdir().unwrap();
    let mut w = BulkWriter::create(tmp.path(), BulkWriterOptions::default()).unwrap();
    w.add(b"", b"").unwrap();
    assert_invalid_input(&w.add(b"", b"").unwrap_err());
}

#[test]
fn target_directory_must_be_new_or_empty() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("stray"), b"x").unwrap();
    let e = BulkWriter::create(tmp.path(), BulkWriterOptions::default()).unwrap_err();
    match &e {
        LdbError::Io { source, .. } => assert_eq!(source.kind(), ErrorKind::DirectoryNotEmpty),
        _ => panic!("{e}"),
    }
    assert_eq!(file_names(tmp.path()), ["stray"]);
    // A file in the way.
    let e = BulkWriter::create(&tmp.path().join("stray"), BulkWriterOptions::default());
    assert!(e.is_err());
    // An existing empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    BulkWriter::create(&empty, BulkWriterOptions::default())
        .unwrap()
        .finish()
        .unwrap();
    // Bad options.
    for o in [opts(0, 4096, 16), opts(1, 0, 16), opts(1, 4096, 0)] {
        let e = BulkWriter::create(&tmp.path().join("bad"), o).unwrap_err();
        assert_invalid_input(&e);
    }
}

/// A writer dropped before `finish` leaves table files but no CURRENT: not a database.
#[test]
fn unfinished_writer_leaves_no_database() {
    let e = utxo_entries(20_000, 11);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let mut w = BulkWriter::create(&dir, opts(64 << 10, 4096, 16)).unwrap();
        for (k, v) in &e {
            w.add(k, v).unwrap();
        }
        assert!(w.bytes_written() > 0);
        // Dropped.
    }
    let tables = table_numbers(&dir);
    assert!(tables.len() > 5);
    assert!(!dir.join("CURRENT").exists());
    assert!(file_names(&dir).iter().all(|n| n.ends_with(".ldb")));

    let ro = ReadOnlyDb::open(&dir).unwrap_err();
    assert!(matches!(ro, LdbError::MissingFile { .. }), "{ro}");
    let refused = DB::open(&dir, rusty_options());
    assert!(
        refused.is_err(),
        "rusty-leveldb opened an unfinished bulk database"
    );
    // With create_if_missing, rusty-leveldb makes a new, empty database there and deletes
    // the orphaned tables: no partial data shows up.
    let mut db = DB::open(
        &dir,
        Options {
            create_if_missing: true,
            ..rusty_options()
        },
    )
    .unwrap();
    assert!(rusty_scan(&mut db).is_empty());
    assert_eq!(rusty_get(&mut db, &e[0].0), None);
    db.close().unwrap();
    assert!(table_numbers(&dir).is_empty(), "{:?}", file_names(&dir));
    assert!(ro_scan(&dir).is_empty());
}

/// Write speed: `cargo test --release -p opnet --test leveldb_bulk_writer -- --ignored
/// --nocapture bulk_write_speed`. BULK_SPEED_N overrides the entry count.
#[test]
#[ignore]
fn bulk_write_speed() {
    let n: usize = std::env::var("BULK_SPEED_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000_000);
    let t = Instant::now();
    let mut rng = Rng(0xfeed);
    let pool = script_pool(&mut rng, n / 3);
    let mut keys: Vec<[u8; 69]> = (0..n)
        .map(|i| {
            let mut k = [0u8; 69];
            k.copy_from_slice(&utxo_key(&mut rng, &pool, i as u32));
            k
        })
        .collect();
    keys.sort_unstable();
    let lens: Vec<u8> = (0..n).map(|_| 13 + rng.below(48) as u8).collect();
    let vpool = rng.bytes(1 << 20);
    eprintln!("generated {n} sorted entries in {:?}", t.elapsed());
    let raw: u64 = lens.iter().map(|&l| 69 + u64::from(l)).sum();

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let t = Instant::now();
    let mut w = BulkWriter::create(&dir, BulkWriterOptions::default()).unwrap();
    for (i, k) in keys.iter().enumerate() {
        let off = (i * 61) % (vpool.len() - 64);
        w.add(k, &vpool[off..off + usize::from(lens[i])]).unwrap();
    }
    let added = t.elapsed();
    let stats = w.finish().unwrap();
    let total = t.elapsed();
    let mb = |b: u64, d: std::time::Duration| b as f64 / 1e6 / d.as_secs_f64();
    eprintln!(
        "add loop: {:.1} M entries/s, {:.0} MB/s of key+value, {:.0} MB/s to disk ({:?})",
        n as f64 / added.as_secs_f64() / 1e6,
        mb(raw, added),
        mb(stats.bytes, added),
        added
    );
    eprintln!(
        "with finish (fsync): {:.1} M entries/s, {:.0} MB/s of key+value ({:?})",
        n as f64 / total.as_secs_f64() / 1e6,
        mb(raw, total),
        total
    );
    eprintln!(
        "{stats:?}; raw key+value {raw} bytes; on disk {:.3}x raw ({:.1} bytes/entry)",
        stats.bytes as f64 / raw as f64,
        stats.bytes as f64 / n as f64
    );
    let t = Instant::now();
    let db = ReadOnlyDb::open(&dir).unwrap();
    let mut it = db.range(b"", None).unwrap();
    let mut count = 0usize;
    while it.advance().unwrap() {
        count += 1;
    }
    assert_eq!(count, n);
    eprintln!("ReadOnlyDb full scan: {:?}", t.elapsed());
    let t = Instant::now();
    let mut db = DB::open(&dir, rusty_options()).unwrap();
    let mut rng = Rng(5);
    for _ in 0..10_000 {
        let i = rng.below(n as u64) as usize;
        assert!(db.get(&keys[i]).is_some());
    }
    eprintln!("rusty-leveldb open + 10,000 random gets: {:?}", t.elapsed());
}
