//! Replay mode's driver: applies the recorded steps (initially, and on command
//! from stdin) and mempool transactions, and answers each command on stdout so a
//! test or demo can script the chain. One answer line per command: `ok ...` or
//! `error ...`; a step also prints what it did before the `ok`.

use std::io::{BufRead, Write};
use std::sync::Arc;

use bitcoin::consensus::serialize;
use bitcoin::Txid;
use crossbeam_channel::{bounded, select, Receiver};
use opnet::source::ChainSource;
use opnet::sync::ChainEvent;

use super::args::{HostArgs, Mode, Steps};
use super::{wait_synced, Waited};
use crate::chain::HostChain;
use crate::loader::context::HostShared;
use crate::loader::Loader;
use crate::replay::{ReplayHost, Script};

struct Replay<'a> {
    host: &'a ReplayHost,
    shared: &'a HostShared,
    script: &'a Script,
    applied: usize,
}

impl Replay<'_> {
    fn step(&mut self) -> Result<String, String> {
        let step = *self
            .script
            .steps
            .get(self.applied)
            .ok_or_else(|| format!("all {} steps are applied", self.script.steps.len()))?;
        let event = self.host.chain().step(step).map_err(|e| e.to_string())?;
        self.applied += 1;
        Ok(match event {
            ChainEvent::Connected { block, height, .. } => {
                let hash = block.block_hash();
                let raw = self.host.block_bytes(&hash).map_err(|e| e.to_string())?;
                let spent = self.host.spent_bytes(&hash).map_err(|e| e.to_string())?;
                self.shared.block_connected(&raw, height, &spent);
                format!("connect {height} {hash}")
            }
            ChainEvent::Disconnected { hash, height } => {
                self.shared.block_disconnected(&hash, height);
                format!("disconnect {height} {hash}")
            }
        })
    }

    fn mempool(&self, index: usize) -> Result<String, String> {
        let tx = self.script.mempool.get(index).ok_or_else(|| {
            format!(
                "the script has {} mempool transactions",
                self.script.mempool.len()
            )
        })?;
        let spent = self.host.mempool_spent(tx)?;
        self.shared.transaction_added(&serialize(tx), &spent);
        Ok(format!("mempool {}", tx.compute_txid()))
    }

    fn tip(&self) -> Result<String, String> {
        let t = self.host.tip().map_err(|e| e.to_string())?;
        Ok(format!(
            "tip {} {} step {}/{}",
            t.height,
            t.hash,
            self.applied,
            self.script.steps.len()
        ))
    }
}

/// Reads stdin lines on a thread; the channel closes at end of input.
fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = bounded(16);
    let _ = std::thread::Builder::new()
        .name("opnet-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    rx
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs replay mode until `quit`, a signal, or (with `--once`) the initial steps
/// are applied and every plugin is at the tip.
pub fn drive(
    args: &HostArgs,
    loader: &Arc<Loader>,
    shared: &HostShared,
    host: &ReplayHost,
    script: &Script,
    signals: &Receiver<&'static str>,
) -> Result<(), String> {
    let mut replay = Replay {
        host,
        shared,
        script,
        applied: 0,
    };
    let initial = match &args.mode {
        Mode::Replay {
            initial_steps: Steps::All,
            ..
        } => script.steps.len(),
        Mode::Replay {
            initial_steps: Steps::Count(n),
            ..
        } => (*n).min(script.steps.len()),
        _ => 0,
    };
    for _ in 0..initial {
        replay.step()?;
    }
    if args.once {
        return match wait_synced(loader, signals, args.quiet)? {
            Waited::Synced => {
                tracing::info!("replayed {} steps; plugins are at the tip", replay.applied);
                Ok(())
            }
            Waited::Interrupted(_) => Ok(()),
        };
    }
    tracing::info!(
        applied = replay.applied,
        total = script.steps.len(),
        "replay ready: step [N], run, mempool [I|all], remove TXID [REASON], sync, tip, quit"
    );
    let lines = stdin_lines();
    let mut input_open = true;
    loop {
        let line = if input_open {
            select! {
                recv(lines) -> l => match l {
                    Ok(l) => l,
                    Err(_) => { input_open = false; continue; }
                },
                recv(signals) -> _ => return Ok(()),
            }
        } else {
            // End of input: keep serving until a signal.
            let _ = signals.recv();
            return Ok(());
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            [] => continue,
            ["quit"] | ["exit"] => {
                say("ok quit");
                return Ok(());
            }
            ["step"] | ["next"] => replay.step().map(|s| vec![s]),
            ["step" | "next", n] => match n.parse::<usize>() {
                Ok(n) => (0..n).map(|_| replay.step()).collect(),
                Err(_) => Err(format!("{n} is not a number")),
            },
            ["run"] => (replay.applied..script.steps.len())
                .map(|_| replay.step())
                .collect(),
            ["mempool"] | ["mempool", "all"] => (0..script.mempool.len())
                .map(|i| replay.mempool(i))
                .collect(),
            ["mempool", i] => match i.parse::<usize>() {
                Ok(i) => replay.mempool(i).map(|s| vec![s]),
                Err(_) => Err(format!("{i} is not a number")),
            },
            ["remove", txid, rest @ ..] => match (
                txid.parse::<Txid>(),
                rest.first().map(|r| r.parse::<u32>()).unwrap_or(Ok(0)),
            ) {
                (Ok(t), Ok(reason)) => {
                    shared.transaction_removed(&t, reason);
                    Ok(vec![format!("removed {t}")])
                }
                _ => Err("usage: remove TXID [REASON 0-6]".into()),
            },
            ["sync"] => match wait_synced(loader, signals, true)? {
                Waited::Synced => replay.tip().map(|t| vec![format!("synced {t}")]),
                Waited::Interrupted(_) => return Ok(()),
            },
            ["tip"] => replay.tip().map(|t| vec![t]),
            _ => Err(format!("unknown command '{line}'")),
        };
        match answer {
            Ok(lines) => {
                for l in &lines {
                    say(l);
                }
                say("ok");
            }
            Err(e) => say(&format!("error {e}")),
        }
    }
}
