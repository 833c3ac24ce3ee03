//! What the index's checked table reads cost: the same rusty-leveldb database read
//! through its own file layer and through `opnet::index::checked_env::CheckedEnv`
//! (every block's CRC32C checked a second time, the filter block's too), in the same
//! process, interleaved round by round.
//!
//! cargo bench -p opnet --bench table_reads -- [--keys 1000000] [--rounds 7] [--gets 200000]
//!
//! The block cache is kept at 64 KiB, so the reads go to the files (in the page
//! cache) rather than to cached blocks: the worst case for the checks.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use opnet::index::checked_env::{CheckedEnv, Damage};
use rusty_leveldb::{LdbIterator, Options, WriteBatch, DB};
use sha2::{Digest, Sha256};

struct Args {
    keys: u64,
    rounds: usize,
    gets: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        keys: 1_000_000,
        rounds: 7,
        gets: 200_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--keys" => a.keys = value().parse().expect("number"),
            "--rounds" => a.rounds = value().parse().expect("number"),
            "--gets" => a.gets = value().parse().expect("number"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// The `i`th key: 41 bytes shaped like a UTXO key (prefix, scripthash, outpoint).
fn key(i: u64) -> Vec<u8> {
    let h = Sha256::digest(i.to_le_bytes());
    let mut k = Vec::with_capacity(41);
    k.push(b'u');
    k.extend_from_slice(&h);
    k.extend_from_slice(&i.to_le_bytes());
    k
}

fn build(dir: &Path, keys: u64) {
    let opt = Options {
        write_buffer_size: 4 << 20,
        ..Options::default()
    };
    let mut db = DB::open(dir, opt).expect("create the bench database");
    let mut batch = WriteBatch::default();
    for i in 0..keys {
        // ~40 bytes of value: amount, height, a P2WPKH script.
        let mut v = i.to_le_bytes().to_vec();
        v.extend_from_slice(&[0u8; 32]);
        batch.put(&key(i), &v);
        if batch.count() == 10_000 {
            db.write(std::mem::take(&mut batch), false).expect("write");
        }
    }
    db.write(batch, true).expect("write");
    db.compact_range(b"\x00", b"\xff").expect("compact");
    db.close().expect("close");
}

fn open(dir: &Path, checked: bool) -> DB {
    let mut opt = Options {
        create_if_missing: false,
        block_cache_capacity_bytes: 64 << 10,
        ..Options::default()
    };
    if checked {
        let damage = Damage::open(dir).expect("no damage marker");
        opt.env = Rc::new(Box::new(CheckedEnv::new(damage)));
    }
    DB::open(dir, opt).expect("open the bench database")
}

/// Reads every entry; returns the time and the count.
fn scan(db: &mut DB) -> (Duration, u64) {
    let start = Instant::now();
    let mut it = db.new_iter().expect("iterator");
    let mut n = 0u64;
    while it.advance() {
        n += 1;
    }
    (start.elapsed(), n)
}

/// `gets` point reads by seek (as `IndexStore::get` does), spread over the keys.
fn gets(db: &mut DB, keys: u64, gets: u64) -> (Duration, u64) {
    let start = Instant::now();
    let mut it = db.new_iter().expect("iterator");
    let mut found = 0u64;
    for j in 0..gets {
        let k = key(j.wrapping_mul(2_654_435_761) % keys);
        it.seek(&k);
        if it
            .current()
            .is_some_and(|(ck, _)| ck.as_ref() == k.as_slice())
        {
            found += 1;
        }
    }
    (start.elapsed(), found)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args = parse_args();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("db");
    let t = Instant::now();
    build(&dir, args.keys);
    eprintln!("built {} keys in {:.1?}", args.keys, t.elapsed());
    let (mut scan_plain, mut scan_checked) = (Vec::new(), Vec::new());
    let (mut get_plain, mut get_checked) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        for checked in [false, true] {
            let mut db = open(&dir, checked);
            let (d, n) = scan(&mut db);
            assert_eq!(n, args.keys, "every key read back");
            let (g, found) = gets(&mut db, args.keys, args.gets);
            assert_eq!(found, args.gets, "every point read found");
            if checked {
                scan_checked.push(d);
                get_checked.push(g);
            } else {
                scan_plain.push(d);
                get_plain.push(g);
            }
        }
    }
    let (sp, sc) = (median(&mut scan_plain), median(&mut scan_checked));
    let (gp, gc) = (median(&mut get_plain), median(&mut get_checked));
    let per_key = |d: Duration, n: u64| d.as_nanos() as f64 / n as f64;
    println!("| read ({} keys, {} rounds, medians) | rusty-leveldb file layer | checked file layer | checked / plain |", args.keys, args.rounds);
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| full scan | {:.1} ms ({:.0} ns/key) | {:.1} ms ({:.0} ns/key) | {:.3} |",
        sp.as_secs_f64() * 1e3,
        per_key(sp, args.keys),
        sc.as_secs_f64() * 1e3,
        per_key(sc, args.keys),
        sc.as_secs_f64() / sp.as_secs_f64()
    );
    println!(
        "| {} point reads (seek) | {:.1} ms ({:.2} µs/read) | {:.1} ms ({:.2} µs/read) | {:.3} |",
        args.gets,
        gp.as_secs_f64() * 1e3,
        per_key(gp, args.gets) / 1e3,
        gc.as_secs_f64() * 1e3,
        per_key(gc, args.gets) / 1e3,
        gc.as_secs_f64() / gp.as_secs_f64()
    );
}
