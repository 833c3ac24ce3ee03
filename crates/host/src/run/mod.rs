//! `opnet-host`: resolves the datadir and network, builds the chain for the mode,
//! loads the plugins and drives them until done (`--once`) or a signal.

pub mod args;
pub mod conf;
pub mod progress;
pub mod replay_commands;
pub mod signals;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, select, Receiver};
use opnet::abi;
use opnet::datadir::{resolve_datadir, DatadirError, DatadirSource};
use opnet::Network;

use crate::chain::HostChain;
use crate::loader::context::HostShared;
use crate::loader::watchdog::Watchdog;
use crate::loader::{dedup, discover, Loader, WaitError};
use crate::replay::{ReplayHost, Script};
use args::{HostArgs, Mode};
use progress::Bar;

/// The plugin file built next to `opnet-host`.
pub const DEFAULT_PLUGIN: &str = "libopnet_core.so";

/// Entry point of the binary.
pub fn main(argv: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            if e.is_empty() {
                println!("{}", args::USAGE);
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}\n\n{}", args::USAGE);
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens a datadir as a chain source, finding its network when none was given.
fn open_datadir(dir: &Path, network: Option<Network>) -> Result<(DatadirSource, PathBuf), String> {
    let first = network.unwrap_or(Network::Main);
    let resolved = resolve_datadir(dir, first).map_err(|e| match network {
        None => format!("{e}; if it is bitcoind's top directory, name the chain with --network"),
        Some(_) => e.to_string(),
    })?;
    match DatadirSource::open(&resolved, first) {
        Ok(s) => Ok((s, resolved)),
        Err(DatadirError::WrongNetwork { found: Some(n), .. }) if network.is_none() => {
            tracing::info!(network = %n, "the datadir holds a {n} chain");
            DatadirSource::open(&resolved, n)
                .map(|s| (s, resolved.clone()))
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The plugins to load: `<datadir>/plugins/`, `plugin=` lines, `--plugin`; when
/// neither of the last two names one, the plugin built alongside this binary.
fn plugin_paths(args: &HostArgs, dirs: &[PathBuf], conf_plugins: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for d in dirs {
        paths.extend(discover(&d.join("plugins")));
    }
    paths.extend(conf_plugins.iter().cloned());
    paths.extend(args.plugins.iter().cloned());
    if args.plugins.is_empty() && conf_plugins.is_empty() {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            paths.push(dir.join(DEFAULT_PLUGIN));
        }
    }
    dedup(paths)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Notes where bitcoin.conf and plugins/ may be for a datadir given as `dir`
/// (resolved to `resolved`), and returns what the host offers over it: the
/// chainstate only when there is one.
fn local_datadir(dir: &Path, resolved: &Path, conf_dirs: &mut Vec<PathBuf>) -> u32 {
    conf_dirs.push(dir.to_path_buf());
    if resolved != dir {
        conf_dirs.push(resolved.to_path_buf());
    }
    let mut caps = abi::CAP_VALIDATION_INTERFACE | abi::CAP_BLOCK_READ;
    if resolved.join("chainstate").is_dir() {
        caps |= abi::CAP_CHAINSTATE_READ;
    }
    caps
}

/// Replay mode's chain and script, kept for its driver.
type ReplayParts = Option<(Arc<ReplayHost>, Script)>;

fn run(args: HostArgs) -> Result<(), String> {
    let signals = signals::watch()?;
    // The chain, the network datadir plugins see, and what the host offers.
    let mut conf_dirs = Vec::new();
    let mut follow_source = None;
    let (chain, datadir, capabilities, replay): (Arc<dyn HostChain>, PathBuf, u32, ReplayParts) =
        match &args.mode {
            Mode::Replay { script, .. } => {
                let script = Script::load(script)?;
                if let Some(n) = args.network.filter(|n| *n != script.network) {
                    return Err(format!("the script is a {} chain, not {n}", script.network));
                }
                let dir = match (&args.datadir, &args.opnet_dir) {
                    (Some(d), _) => d.clone(),
                    (None, Some(o)) => o.clone(),
                    (None, None) => return Err("--replay needs --opnet-dir".into()),
                };
                conf_dirs.push(dir.clone());
                let host = Arc::new(ReplayHost::new(&script));
                let caps =
                    abi::CAP_VALIDATION_INTERFACE | abi::CAP_BLOCK_READ | abi::CAP_MEMPOOL_READ;
                (host.clone(), absolute(&dir), caps, Some((host, script)))
            }
            Mode::Datadir => {
                let dir = args.datadir.clone().ok_or("--datadir is required")?;
                let (source, resolved) = open_datadir(&dir, args.network)?;
                let caps = local_datadir(&dir, &resolved, &mut conf_dirs);
                (Arc::new(source), absolute(&resolved), caps, None)
            }
            Mode::Follow { url, auth } => {
                let dir = args.datadir.clone().ok_or("--datadir is required")?;
                let (source, resolved) = follow_mode::connect(&dir, args.network, url, auth)?;
                follow_source = Some(source.clone());
                let mut caps = local_datadir(&dir, &resolved, &mut conf_dirs);
                if args.mempool_poll.is_some() {
                    caps |= abi::CAP_MEMPOOL_READ;
                }
                (source, absolute(&resolved), caps, None)
            }
        };
    let network = chain.network();
    // Arguments: bitcoin.conf, then -NAME=VALUE, then --opnet-dir.
    let mut plugin_args: HashMap<String, String> = HashMap::new();
    let mut conf_plugins = Vec::new();
    for d in &conf_dirs {
        let c = conf::read(d, network)?;
        conf_plugins.extend(c.plugins);
        plugin_args.extend(c.args);
    }
    plugin_args.extend(args.plugin_args.clone());
    if let Some(o) = &args.opnet_dir {
        plugin_args.insert("opnetdir".into(), absolute(o).display().to_string());
    }
    let (watchdog, _watchdog_thread) =
        Watchdog::start(args.watchdog).map_err(|e| format!("starting the watchdog: {e}"))?;
    let shared = Arc::new(HostShared::new(
        chain.clone(),
        capabilities,
        &plugin_args,
        watchdog,
    ));
    let mut loader = Loader::new(shared.clone(), &datadir);
    let plugin_dirs: Vec<PathBuf> = conf_dirs.iter().map(|d| absolute(d)).collect();
    for path in plugin_paths(&args, &plugin_dirs, &conf_plugins) {
        match loader.load(&path) {
            Ok(()) => {}
            Err(e) => tracing::error!("{e}"),
        }
    }
    if loader.names().is_empty() {
        return Err("no plugin was loaded (see the errors above)".into());
    }
    tracing::info!(plugins = ?loader.names(), network = %network, datadir = %datadir.display(), "plugins loaded");
    let loader = Arc::new(loader);
    let outcome = match replay {
        Some((host, script)) => {
            replay_commands::drive(&args, &loader, &shared, &host, &script, &signals)
        }
        None => {
            let stop_follow = Arc::new(AtomicBool::new(false));
            let follower = match follow_source {
                Some(source) => Some(follow_mode::start(
                    source,
                    shared.clone(),
                    loader.clone(),
                    args.mempool_poll,
                    stop_follow.clone(),
                )?),
                None => None,
            };
            let r = settle(&args, &loader, &signals);
            stop_follow.store(true, Ordering::Relaxed);
            if let Some(f) = follower {
                let _ = f.join();
            }
            r
        }
    };
    let loader = Arc::try_unwrap(loader)
        .map_err(|_| "the loader is still in use at shutdown".to_string())?;
    loader.shutdown();
    tracing::info!("stopped");
    outcome
}

/// Datadir and follow modes: wait for the plugins to reach the tip (progress bar),
/// then exit (`--once`) or serve until a signal.
fn settle(
    args: &HostArgs,
    loader: &Arc<Loader>,
    signals: &Receiver<&'static str>,
) -> Result<(), String> {
    match wait_synced(loader, signals, args.quiet)? {
        Waited::Synced => tracing::info!("plugins are at the tip"),
        Waited::Interrupted(sig) => {
            tracing::info!(signal = sig, "shutting down");
            return Ok(());
        }
    }
    if args.once {
        return Ok(());
    }
    tracing::info!("serving; stop with SIGINT or SIGTERM");
    let sig = signals.recv().unwrap_or("signal thread ended");
    tracing::info!(signal = sig, "shutting down");
    Ok(())
}

/// How a wait for the plugins ended.
pub enum Waited {
    Synced,
    Interrupted(&'static str),
}

/// Waits for every plugin to be at the host's tip, drawing progress, until a
/// signal. Err when a plugin failed to get there.
pub fn wait_synced(
    loader: &Arc<Loader>,
    signals: &Receiver<&'static str>,
    quiet: bool,
) -> Result<Waited, String> {
    let (done_tx, done) = bounded(1);
    let stop = Arc::new(AtomicBool::new(false));
    let (l, s) = (loader.clone(), stop.clone());
    let waiter = std::thread::Builder::new()
        .name("opnet-wait".into())
        .spawn(move || loop {
            match l.wait_synced(Duration::from_millis(500)) {
                Err(WaitError::TimedOut(_)) if !s.load(Ordering::Relaxed) => continue,
                Err(WaitError::TimedOut(name)) => {
                    let _ = done_tx.send(Err(format!("{name}: interrupted")));
                    return;
                }
                other => {
                    let _ = done_tx.send(other.map_err(|e| match e {
                        WaitError::Failed(m) | WaitError::TimedOut(m) => m,
                    }));
                    return;
                }
            }
        })
        .map_err(|e| format!("starting the wait thread: {e}"))?;
    let mut bar = Bar::new(quiet);
    let tick = crossbeam_channel::tick(Duration::from_millis(500));
    let result = loop {
        select! {
            recv(done) -> r => break match r {
                Ok(Ok(())) => Ok(Waited::Synced),
                Ok(Err(e)) => Err(e),
                Err(_) => Err("the wait thread ended".into()),
            },
            recv(signals) -> sig => {
                stop.store(true, Ordering::Relaxed);
                break Ok(Waited::Interrupted(sig.unwrap_or("signal")));
            }
            recv(tick) -> _ => {
                if let Some((name, p)) = loader.progress() {
                    bar.draw(&name, &p);
                }
            }
        }
    };
    bar.finish();
    let _ = waiter.join();
    result
}

mod follow_mode;
