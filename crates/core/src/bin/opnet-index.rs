//! `opnet-index`: builds or updates the index from a Bitcoin Core datadir, without
//! the plugin. A developer tool (the loader `opnet-host` runs the real plugin): it
//! shows the engine's work, drives the crash tests and the demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use opnet::chainstate::Chainstate;
use opnet::datadir::{resolve_datadir, DatadirSource};
use opnet::index::script_hash;
use opnet::sync::{Engine, EngineConfig, SyncPhase, SyncStatus};
use opnet::Network;

const USAGE: &str = "usage: opnet-index --datadir DIR [--network main|test|testnet4|signet|regtest]
                   [--opnet-dir DIR] [--chainstate DIR] [--from-genesis]
                   [--undo-retention N] [--readers N] [--dbcache MIB]
                   [--script HEX]... [--json] [--quiet]

Builds (fresh scan of the chainstate at its best block) or updates (catch-up,
rolling back reorged blocks) the scripthash UTXO index of a Bitcoin Core datadir,
read-only, then prints what the index holds. The index lives in --opnet-dir
(default DIR/opnet). --from-genesis starts an empty index at genesis and connects
every block instead of scanning. --script prints the UTXOs of a scriptPubKey.";

struct Args {
    datadir: PathBuf,
    network: Network,
    opnet_dir: Option<PathBuf>,
    chainstate: Option<PathBuf>,
    from_genesis: bool,
    undo_retention: Option<u32>,
    readers: Option<usize>,
    dbcache_mib: Option<usize>,
    scripts: Vec<Vec<u8>>,
    json: bool,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut datadir = None;
    let mut a = Args {
        datadir: PathBuf::new(),
        network: Network::Main,
        opnet_dir: None,
        chainstate: None,
        from_genesis: false,
        undo_retention: None,
        readers: None,
        dbcache_mib: None,
        scripts: Vec::new(),
        json: false,
        quiet: false,
    };
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--datadir" => datadir = Some(PathBuf::from(value("--datadir")?)),
            "--network" => a.network = value("--network")?.parse().map_err(|e| format!("{e}"))?,
            "--opnet-dir" => a.opnet_dir = Some(PathBuf::from(value("--opnet-dir")?)),
            "--chainstate" => a.chainstate = Some(PathBuf::from(value("--chainstate")?)),
            "--from-genesis" => a.from_genesis = true,
            "--undo-retention" => a.undo_retention = Some(number(&value("--undo-retention")?)?),
            "--readers" => a.readers = Some(number(&value("--readers")?)?),
            "--dbcache" => a.dbcache_mib = Some(number(&value("--dbcache")?)?),
            "--script" => a.scripts.push(parse_hex(&value("--script")?)?),
            "--json" => a.json = true,
            "--quiet" => a.quiet = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.datadir = datadir.ok_or("--datadir is required")?;
    Ok(a)
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("'{s}' is not a number"))
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{s}' is not hex"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let filter = if args.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let datadir = resolve_datadir(&args.datadir, args.network)?;
    let opnet_dir = args
        .opnet_dir
        .clone()
        .unwrap_or_else(|| datadir.join("opnet"));
    let mut config = EngineConfig::new(&opnet_dir, args.network);
    if let Some(n) = args.undo_retention {
        config.undo_retention = n;
    }
    if let Some(n) = args.readers {
        config.readers = n.max(1);
    }
    if let Some(mib) = args.dbcache_mib {
        config.store.block_cache_bytes = mib << 20;
    }
    let source = DatadirSource::open(&datadir, args.network)?;
    let mut engine = Engine::open(config)?;
    if args.from_genesis && engine.meta().is_none() {
        engine.init_at_genesis()?;
    }
    let chainstate_dir = args
        .chainstate
        .clone()
        .unwrap_or_else(|| datadir.join("chainstate"));
    let (done, finished) = crossbeam_channel::bounded::<()>(0);
    let reporter = (!args.quiet).then(|| spawn_progress(engine.status(), finished));
    let outcome = engine.sync(&source, &|| Chainstate::open(&chainstate_dir));
    drop(done);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    let outcome = outcome?;
    let meta = engine
        .meta()
        .ok_or("the index has no metadata after sync")?;
    let store = engine.store().ok_or("the index is not open after sync")?;
    let tip_hash = bitcoin::BlockHash::from_byte_array(meta.tip.hash);
    let mut scripts = Vec::new();
    for script in &args.scripts {
        let sh = script_hash(script);
        let (mut count, mut sats, mut cursor) = (0u64, 0u64, None);
        loop {
            let (page, more) = store.script_utxos(&sh, cursor.as_ref(), 1000)?;
            count += page.len() as u64;
            sats += page.iter().map(|(_, v)| v.amount).sum::<u64>();
            cursor = page.last().map(|(k, _)| *k);
            if !more {
                break;
            }
        }
        scripts.push((script, count, sats));
    }
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let scripts_json: Vec<String> = scripts
            .iter()
            .map(|(s, n, v)| format!("{{\"script\":\"{}\",\"utxos\":{n},\"sats\":{v}}}", hex(s)))
            .collect();
        println!(
            "{{\"network\":\"{}\",\"height\":{},\"hash\":\"{}\",\"utxos\":{},\"sats\":{},\"snapshot_height\":{},\"event_seq\":{},\"seconds\":{:.3},\"scripts\":[{}]}}",
            args.network,
            meta.tip.height,
            tip_hash,
            meta.utxo_count,
            meta.total_amount,
            meta.snapshot.height,
            meta.event_seq,
            secs,
            scripts_json.join(",")
        );
    } else {
        println!("network      {}", args.network);
        println!("index        {}", opnet_dir.join("index").display());
        println!("tip          {} {}", meta.tip.height, tip_hash);
        println!("utxos        {}", meta.utxo_count);
        println!("total        {} BTC", btc(meta.total_amount));
        println!("scanned at   {}", meta.snapshot.height);
        println!("outcome      {outcome:?}");
        println!("took         {secs:.2} s");
        for (s, n, v) in scripts {
            println!("script {}  {n} UTXOs  {} BTC", hex(s), btc(v));
        }
    }
    Ok(())
}

/// Prints a progress line on stderr every second while a scan or catch-up runs;
/// returns as soon as `finished` is closed.
fn spawn_progress(
    status: Arc<SyncStatus>,
    finished: crossbeam_channel::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
            finished.recv_timeout(Duration::from_secs(1))
        {
            let p = status.snapshot();
            match p.phase {
                SyncPhase::Scanning if p.written_utxos > 0 => {
                    eprintln!(
                        "writing index  {} of {} UTXOs",
                        p.written_utxos, p.scanned_utxos
                    )
                }
                SyncPhase::Scanning => {
                    let pct = if p.total_bytes > 0 {
                        (p.scanned_bytes as f64 / p.total_bytes as f64 * 100.0).min(100.0)
                    } else {
                        0.0
                    };
                    let rate = p.scanned_utxos as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    eprintln!(
                        "scanning  {pct:5.1}%  {} UTXOs  {:.0} UTXOs/s",
                        p.scanned_utxos, rate
                    );
                }
                SyncPhase::CatchingUp => {
                    eprintln!("catching up  block {} of {}", p.height, p.target_height)
                }
                _ => {}
            }
        }
    })
}

fn btc(sats: u64) -> String {
    format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
