//! Benchmarks of the core engine on synthetic chainstates in Bitcoin Core's format:
//! the floor (reader only), the fresh scan, scaling, and block connect/disconnect.
//!
//! cargo bench -p opnet --bench scan_and_connect -- [--utxos 1000000,4000000] [--connect 10000000]
//!     [--blocks 30] [--data DIR] [--readers N]
//!
//! Generated chainstates are cached in DIR (default target/bench-data). Prints a
//! markdown table for docs/BENCHMARKS.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, Transaction, Txid};
use opnet::chainstate::Chainstate;
use opnet::format::coin::Coin;
use opnet::format::undo::BlockSpent;
use opnet::source::{ChainSource, ChainTip, HeaderInfo, SourceError};
use opnet::sync::{default_readers, Engine, EngineConfig};
use opnet::synth::{coins, make_block, write_chainstate, SynthSpec};
use opnet::Network;

struct Args {
    scan: Vec<u64>,
    connect: Option<u64>,
    blocks: usize,
    data: PathBuf,
    readers: usize,
    write_buffer_mib: Option<usize>,
}

fn parse_args() -> Args {
    let mut a = Args {
        scan: vec![1_000_000],
        connect: None,
        blocks: 30,
        data: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data"),
        readers: default_readers(),
        write_buffer_mib: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--utxos" => {
                a.scan = value()
                    .split(',')
                    .map(|s| s.parse().expect("number"))
                    .collect()
            }
            "--connect" => a.connect = Some(value().parse().expect("number")),
            "--blocks" => a.blocks = value().parse().expect("number"),
            "--data" => a.data = PathBuf::from(value()),
            "--readers" => a.readers = value().parse().expect("number"),
            "--write-buffer" => a.write_buffer_mib = Some(value().parse().expect("number")),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Peak resident set since the last reset, in MiB (Linux VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Resets VmHWM to the current RSS, so each phase reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn chainstate_for(args: &Args, utxos: u64) -> (SynthSpec, PathBuf, BlockHash, u32) {
    let spec = SynthSpec::new(utxos, 42);
    let dir = args.data.join(format!("chainstate-{utxos}-seed42"));
    let marker = dir.join("COMPLETE");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&args.data).expect("bench data dir");
        eprintln!("generating {utxos} UTXOs into {}", dir.display());
        let t = Instant::now();
        let summary = write_chainstate(&dir, &spec).expect("generate chainstate");
        eprintln!(
            "  generated in {:.1} s, {} MiB",
            t.elapsed().as_secs_f64(),
            summary.bytes_on_disk >> 20
        );
        std::fs::write(&marker, b"").expect("marker");
    }
    let cs = Chainstate::open(&dir).expect("open synthetic chainstate");
    (spec.clone(), dir, cs.best_block(), spec.best_height)
}

/// The floor: the same reader, same threads, only iterating and decoding.
fn floor(dir: &Path, readers: usize) -> (Duration, u64) {
    let cs = Chainstate::open(dir).expect("open");
    let ranges = Chainstate::key_ranges(readers * 16);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let count = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..readers {
            s.spawn(|| {
                let mut n = 0u64;
                while let Some(r) = ranges.get(next.fetch_add(1, Ordering::Relaxed)) {
                    cs.scan(r, |_, _, coin, _| {
                        n += 1;
                        std::hint::black_box(&coin);
                        Ok(true)
                    })
                    .expect("scan");
                }
                count.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    (t.elapsed(), count.load(Ordering::Relaxed))
}

/// A chain source that knows the synthetic snapshot block and the blocks the
/// benchmark connects on top of it.
struct SynthSource {
    best: BlockHash,
    height: u32,
    blocks: Mutex<HashMap<BlockHash, (Block, BlockSpent, u32)>>,
}

impl ChainSource for SynthSource {
    fn network(&self) -> Network {
        Network::Regtest
    }
    fn tip(&self) -> Result<ChainTip, SourceError> {
        Ok(ChainTip {
            height: self.height,
            hash: self.best,
        })
    }
    fn hash_at_height(&self, h: u32) -> Result<Option<BlockHash>, SourceError> {
        Ok((h == self.height).then_some(self.best))
    }
    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        self.blocks
            .lock()
            .unwrap()
            .get(hash)
            .map(|b| b.0.clone())
            .ok_or_else(|| SourceError::NotFound(hash.to_string()))
    }
    fn spent_outputs(&self, hash: &BlockHash) -> Result<BlockSpent, SourceError> {
        self.blocks
            .lock()
            .unwrap()
            .get(hash)
            .map(|b| b.1.clone())
            .ok_or_else(|| SourceError::NotFound(hash.to_string()))
    }
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError> {
        if *hash == self.best {
            let mut header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
            header.prev_blockhash = BlockHash::all_zeros();
            return Ok(Some(HeaderInfo {
                header,
                height: self.height,
            }));
        }
        Ok(self.blocks.lock().unwrap().get(hash).map(|b| HeaderInfo {
            header: b.0.header,
            height: b.2,
        }))
    }
    fn transaction(&self, _: &Txid) -> Result<Option<Transaction>, SourceError> {
        Err(SourceError::Unsupported("synthetic source".into()))
    }
}

struct ScanRun {
    utxos: u64,
    floor: Duration,
    scan: Duration,
    scan_rss: f64,
    index_mib: f64,
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Floor and full scan of one chainstate; returns the engine for connect runs.
fn scan_run(args: &Args, utxos: u64, work: &Path) -> (ScanRun, Engine, SynthSource, SynthSpec) {
    let (spec, dir, best, height) = chainstate_for(args, utxos);
    let (floor_time, n) = floor(&dir, args.readers);
    assert_eq!(n, utxos, "floor read every coin");
    let source = SynthSource {
        best,
        height,
        blocks: Mutex::new(HashMap::new()),
    };
    let opnet_dir = work.join(format!("opnet-{utxos}"));
    let _ = std::fs::remove_dir_all(&opnet_dir);
    let mut config = EngineConfig::new(&opnet_dir, Network::Regtest);
    config.readers = args.readers;
    if let Some(mib) = args.write_buffer_mib {
        config.store.write_buffer_bytes = mib << 20;
    }
    let mut engine = Engine::open(config).expect("engine");
    reset_peak_rss();
    let t = Instant::now();
    engine
        .fresh_scan(&source, &|| Chainstate::open(&dir))
        .expect("scan");
    let scan_time = t.elapsed();
    let scan_rss = peak_rss_mib();
    assert_eq!(engine.meta().expect("meta").utxo_count, utxos);
    let run = ScanRun {
        utxos,
        floor: floor_time,
        scan: scan_time,
        scan_rss,
        index_mib: dir_size(&opnet_dir.join("index")) as f64 / (1 << 20) as f64,
    };
    (run, engine, source, spec)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn connect_run(args: &Args, engine: &mut Engine, source: &SynthSource, spec: &SynthSpec) {
    // Pick 6,000 distinct coins per block, spread over the whole set.
    let need = args.blocks * 6000;
    let stride = (spec.utxos / need as u64).max(1);
    let mut picked: Vec<([u8; 32], u32, Coin)> = coins(spec)
        .enumerate()
        .filter(|(i, _)| (*i as u64) % stride == 0)
        .map(|(_, c)| c)
        .take(need)
        .collect();
    // Interleave so a block's inputs are not neighbours in key order.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..picked.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        picked.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut connects = Vec::new();
    let mut sizes = Vec::new();
    for (b, spend) in picked.chunks(6000).enumerate() {
        let meta = engine.meta().expect("meta").clone();
        let prev = BlockHash::from_byte_array(meta.tip.hash);
        let (block, spent) = make_block(prev, meta.tip.height + 1, spend, 3000, 7000, b as u64);
        sizes.push(bitcoin::consensus::serialize(&block).len());
        source.blocks.lock().unwrap().insert(
            block.block_hash(),
            (block.clone(), spent.clone(), meta.tip.height + 1),
        );
        let t = Instant::now();
        engine
            .connect(&block, meta.tip.height + 1, &spent)
            .expect("connect");
        connects.push(t.elapsed());
    }
    let mut disconnects = Vec::new();
    for _ in 0..args.blocks {
        let t = Instant::now();
        if let Err(e) = engine.disconnect_tip() {
            let store = engine.store().expect("store");
            eprintln!(
                "disconnect failed: {e}; undo heights by iteration now: {:?}",
                store.undo_heights()
            );
            panic!("disconnect");
        }
        disconnects.push(t.elapsed());
    }
    connects.sort();
    disconnects.sort();
    println!();
    println!(
        "Block connect/disconnect on a {}-UTXO index, {} blocks of 3,000 tx / 7,000 outputs / 6,000 inputs ({} KB each):",
        spec.utxos,
        args.blocks,
        sizes.iter().sum::<usize>() / sizes.len().max(1) / 1000
    );
    println!();
    println!("| operation | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, v) in [("connect", &connects), ("disconnect", &disconnects)] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(*v.last().expect("samples"))
        );
    }
}

fn main() {
    let args = parse_args();
    let work = tempfile_dir(&args.data);
    println!(
        "readers: {}, cores: {}",
        args.readers,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    println!(
        "| UTXOs | floor s | scan s | scan/floor | UTXOs/s | ns/UTXO | peak RSS MiB | index MiB |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut connect_engine = None;
    for &utxos in &args.scan {
        let (run, engine, source, spec) = scan_run(&args, utxos, &work);
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
            run.utxos,
            run.floor.as_secs_f64(),
            run.scan.as_secs_f64(),
            run.scan.as_secs_f64() / run.floor.as_secs_f64(),
            run.utxos as f64 / run.scan.as_secs_f64(),
            run.scan.as_nanos() as f64 / run.utxos as f64,
            run.scan_rss,
            run.index_mib
        );
        if args.connect == Some(utxos) {
            connect_engine = Some((engine, source, spec));
        }
    }
    if let Some((mut engine, source, spec)) = connect_engine {
        connect_run(&args, &mut engine, &source, &spec);
    }
    let _ = std::fs::remove_dir_all(&work);
}

fn tempfile_dir(base: &Path) -> PathBuf {
    let dir = base.join(format!("work-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}
