//! Crash safety through the real plugin (issue 6, suite 1): `opnet-host` with
//! `libopnet_core.so` is killed with SIGKILL at random instants while it scans a
//! datadir, catches up, or applies the recorded chain's blocks and its reorg; after
//! every kill the index must open, be internally consistent (its counters equal
//! its entries, every key under its script's hash) and never have gone back in
//! its event numbering; at the end a clean run must reach Bitcoin Core's UTXO set.
//!
//! Kills per run: `OPNET_CRASH_KILLS` (default 24, what CI runs; docs/RELIABILITY.md
//! has the long run's figures). Seed: `OPNET_CRASH_SEED` (printed, so a failure
//! replays).

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixture, index_utxos, load_oracle, Rng};
use opnet::sync::{Engine, EngineConfig};
use opnet::Network;

fn host() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opnet-host"));
    c.arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn replay(idx: &Path) -> Command {
    let mut c = host();
    c.arg("--replay")
        .arg(fixture("chain.json"))
        .arg("--opnet-dir")
        .arg(idx)
        .args(["--replay-steps", "all"]);
    c
}

/// Replay started idle; once its socket is up (the plugin is running), `run` is
/// sent and the host is killed `after` later: the kill lands among the blocks.
fn kill_replay_mid_run(idx: &Path, after: Duration) {
    use std::io::Write;
    let mut cmd = host();
    cmd.arg("--replay")
        .arg(fixture("chain.json"))
        .arg("--opnet-dir")
        .arg(idx)
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("start opnet-host");
    let socket = idx.join("opnet.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = writeln!(stdin, "run");
    let _ = stdin.flush();
    std::thread::sleep(after);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

/// How long `run` takes once the plugin is up, to the host's `synced` answer.
fn replay_run_span(idx: &Path) -> Duration {
    use std::io::{BufRead, BufReader, Write};
    let mut cmd = host();
    cmd.arg("--replay")
        .arg(fixture("chain.json"))
        .arg("--opnet-dir")
        .arg(idx)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("start opnet-host");
    let socket = idx.join("opnet.sock");
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let t = Instant::now();
    writeln!(stdin, "run").unwrap();
    writeln!(stdin, "sync").unwrap();
    stdin.flush().unwrap();
    for line in out.by_ref() {
        if line.unwrap().starts_with("synced") {
            break;
        }
    }
    let span = t.elapsed();
    writeln!(stdin, "quit").unwrap();
    let _ = child.wait();
    span
}

fn datadir(dir: &Path, idx: &Path) -> Command {
    let mut c = host();
    c.arg("--datadir").arg(dir).arg("--opnet-dir").arg(idx);
    c
}

/// What a kill left: the index's tip height and event number (None: no index).
fn inspect(idx: &Path, what: &str) -> Option<(u32, u64)> {
    let engine = Engine::open(EngineConfig::new(idx, Network::Regtest))
        .unwrap_or_else(|e| panic!("{what}: the index does not open after a kill: {e}"));
    let meta = engine.meta()?.clone();
    let store = engine.store().expect("a store with metadata");
    let utxos = index_utxos(&store);
    assert_eq!(
        utxos.len() as u64,
        meta.utxo_count,
        "{what}: utxo_count differs from the entries"
    );
    assert_eq!(
        utxos.iter().map(|u| u.3).sum::<u64>(),
        meta.total_amount,
        "{what}: total_amount differs from the entries"
    );
    Some((meta.tip.height, meta.event_seq))
}

/// What the kills of each kind left.
#[derive(Default)]
struct Tally {
    /// Kills that left an index.
    landed: [usize; 3],
    /// Of those, the ones part-way (not at genesis, not at the run's end).
    midway: [usize; 3],
}

impl Tally {
    /// Checks the index a kill left and counts it; event numbers never go back.
    fn after_kill(&mut self, idx: &Path, what: &str, kind: usize, end: u32, last_seq: &mut u64) {
        if let Some((height, seq)) = inspect(idx, what) {
            assert!(
                seq >= *last_seq,
                "{what}: event number went back from {last_seq} to {seq}"
            );
            *last_seq = seq;
            self.landed[kind] += 1;
            if height > 0 && height != end {
                self.midway[kind] += 1;
            }
        }
    }
}

/// Starts `cmd`, kills it after `after`, returns how long it had run.
fn kill_after(mut cmd: Command, after: Duration) -> Duration {
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start opnet-host");
    std::thread::sleep(after);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    started.elapsed()
}

fn run_to_end(mut cmd: Command, what: &str) {
    let out = cmd
        .arg("--once")
        .stderr(Stdio::piped())
        .output()
        .expect("run opnet-host");
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kills() -> usize {
    std::env::var("OPNET_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn seed() -> u64 {
    std::env::var("OPNET_CRASH_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x5eed)
        })
}

/// A clean run's duration, so kills land inside the work, not after it.
fn span(cmd: Command) -> Duration {
    let t = Instant::now();
    run_to_end(cmd, "timing run");
    t.elapsed()
}

#[test]
fn sigkill_at_random_instants_never_corrupts_the_index_and_a_restart_reaches_the_oracle() {
    let oracle_a = load_oracle("oracle-A.json");
    let oracle_b = load_oracle("oracle-B.json");
    let seed = seed();
    let mut rng = Rng(seed);
    let total = kills();
    eprintln!("crash suite: {total} kills, OPNET_CRASH_SEED={seed:x}");
    let tmp = tempfile::tempdir().unwrap();
    let data_a = tmp.path().join("A");
    let data_b = tmp.path().join("B");
    copy(&fixture("datadir-A"), &data_a);
    copy(&fixture("datadir-B"), &data_b);
    let replay_span = replay_run_span(&tmp.path().join("t1"));
    let datadir_span = span(datadir(&data_a, &tmp.path().join("t2")));

    let mut tally = Tally::default();
    let mut round = 0;
    let mut done = 0;
    while done < total {
        // Each round: a fresh index, then kills of one kind until it is finished.
        round += 1;
        let idx = tmp.path().join(format!("idx{round}"));
        let kind = rng.next() % 3;
        let mut last_seq = 0u64;
        let per_round = 1 + (rng.next() % 4) as usize;
        for k in 0..per_round.min(total - done) {
            let what = format!("seed {seed:x} round {round} kill {k} kind {kind}");
            let (cmd, span) = match kind {
                // The recorded chain from genesis: live blocks, the reorg.
                0 => {
                    let at = replay_span.mul_f64((rng.next() % 1000) as f64 / 1000.0);
                    kill_replay_mid_run(&idx, at);
                    done += 1;
                    tally.after_kill(&idx, &what, 0, oracle_b.tip_height, &mut last_seq);
                    continue;
                }
                // A scan of datadir A's chainstate, then catch-up.
                1 => (datadir(&data_a, &idx), datadir_span),
                // Datadir B over an index some of whose work was datadir A's: the
                // offline reorg (A first, unkilled, on the round's first kill).
                _ => {
                    if k == 0 {
                        run_to_end(datadir(&data_a, &idx), &what);
                    }
                    (datadir(&data_b, &idx), datadir_span)
                }
            };
            let at = span.mul_f64((rng.next() % 1000) as f64 / 1000.0);
            kill_after(cmd, at);
            done += 1;
            let end = if kind == 1 {
                oracle_a.tip_height
            } else {
                oracle_b.tip_height
            };
            tally.after_kill(&idx, &what, kind as usize, end, &mut last_seq);
        }
        // Then a clean run finishes the job.
        let what = format!("seed {seed:x} round {round} final");
        let (cmd, oracle) = match kind {
            0 => (replay(&idx), &oracle_b),
            1 => (datadir(&data_a, &idx), &oracle_a),
            _ => (datadir(&data_b, &idx), &oracle_b),
        };
        run_to_end(cmd, &what);
        let engine = Engine::open(EngineConfig::new(&idx, Network::Regtest)).unwrap();
        let meta = engine.meta().unwrap().clone();
        assert!(meta.event_seq >= last_seq, "{what}: event number went back");
        assert_eq!(meta.tip.height, oracle.tip_height, "{what}");
        assert_eq!(
            index_utxos(&engine.store().unwrap()),
            oracle.utxos,
            "{what}"
        );
        assert_eq!(
            (meta.utxo_count, meta.total_amount),
            (oracle.txouts, oracle.total_amount),
            "{what}"
        );
    }
    eprintln!(
        "crash suite: {done} kills in {round} rounds; left an index (of which part-way): replay {} ({}), datadir scan {} ({}), offline reorg {} ({})",
        tally.landed[0],
        tally.midway[0],
        tally.landed[1],
        tally.midway[1],
        tally.landed[2],
        tally.midway[2]
    );
}

fn copy(from: &Path, to: &PathBuf) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}
