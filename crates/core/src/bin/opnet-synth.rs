//! `opnet-synth`: writes a synthetic Bitcoin Core chainstate for benchmarks.
//!
//! Usage: `opnet-synth --utxos N [--seed S] --out DIR`. DIR must not exist or be
//! empty. The summary goes to stdout, progress to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use opnet::synth::{write_chainstate_with_progress, SynthSpec};

/// Parsed command line.
struct Args {
    utxos: u64,
    seed: u64,
    out: PathBuf,
}

const USAGE: &str = "usage: opnet-synth --utxos N [--seed S] --out DIR";

/// Parses `--utxos N --seed S --out DIR` (any order; `--seed` defaults to 1).
fn parse_args() -> Result<Args, String> {
    let mut utxos = None;
    let mut seed = 1u64;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--utxos" => {
                let v = value()?;
                utxos = Some(parse_count(&v).ok_or_else(|| format!("bad --utxos {v}"))?);
            }
            "--seed" => {
                let v = value()?;
                seed = v.parse().map_err(|_| format!("bad --seed {v}"))?;
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        utxos: utxos.ok_or_else(|| format!("--utxos is required\n{USAGE}"))?,
        seed,
        out: out.ok_or_else(|| format!("--out is required\n{USAGE}"))?,
    })
}

/// A count, optionally with `_` separators or a `k`/`M` suffix (`16M`, `200k`).
fn parse_count(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    let (digits, factor) = match s.strip_suffix(['k', 'K']) {
        Some(d) => (d.to_string(), 1_000),
        None => match s.strip_suffix('M') {
            Some(d) => (d.to_string(), 1_000_000),
            None => (s, 1),
        },
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let spec = SynthSpec::new(args.utxos, args.seed);
    let started = Instant::now();
    let result = write_chainstate_with_progress(&args.out, &spec, &mut |done, total| {
        eprintln!(
            "{done}/{total} coins ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
    });
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("opnet-synth: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let n = summary.utxos.max(1) as f64;
    println!("dir           {}", args.out.display());
    println!("seed          {}", spec.seed);
    println!("best block    {}", summary.best_block);
    println!("best height   {}", summary.best_height);
    println!("utxos         {}", summary.utxos);
    println!(
        "total amount  {} sat ({:.8} BTC)",
        summary.total_amount,
        summary.total_amount as f64 / 1e8
    );
    println!("kinds:");
    for (kind, count) in &summary.kinds {
        println!(
            "  {kind:<18} {count:>12} {:>6.2}%",
            *count as f64 * 100.0 / n
        );
    }
    println!("whales:");
    for (script, count) in &summary.whales {
        let hex: String = script.iter().map(|b| format!("{b:02x}")).collect();
        println!("  {hex} {count}");
    }
    println!(
        "bytes on disk {} ({:.1} MiB)",
        summary.bytes_on_disk,
        summary.bytes_on_disk as f64 / (1u64 << 20) as f64
    );
    println!("seconds       {seconds:.2}");
    ExitCode::SUCCESS
}
