//! Follow mode's driver: connects to bitcoind, and a thread that long-polls it for
//! new tips and tells the plugins (disconnects of a reorg first).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use opnet::datadir::resolve_datadir;
use opnet::Network;

use super::args::Auth;
use crate::chain::HostChain;
use crate::follow::{FollowSource, Follower, RpcAuth, TipStep};
use crate::loader::context::HostShared;

/// How long one `waitfornewblock` long-poll lasts (also how soon a stop is seen).
const POLL: Duration = Duration::from_secs(2);

/// Connects to the node; the datadir (resolved to the network's directory) gives
/// the default cookie and the chainstate to scan.
pub fn connect(
    dir: &Path,
    network: Option<Network>,
    url: &str,
    auth: &Auth,
) -> Result<(Arc<FollowSource>, PathBuf), String> {
    let network = network.unwrap_or(Network::Main);
    let resolved =
        resolve_datadir(dir, network).unwrap_or_else(|_| match network.datadir_subdir() {
            Some(sub) if !dir.ends_with(sub) => dir.join(sub),
            _ => dir.to_path_buf(),
        });
    let auth = match auth {
        Auth::UserPass(u, p) => RpcAuth::UserPass(u.clone(), p.clone()),
        Auth::Cookie(c) if c.as_os_str().is_empty() => RpcAuth::Cookie(resolved.join(".cookie")),
        Auth::Cookie(c) => RpcAuth::Cookie(c.clone()),
    };
    let source =
        FollowSource::connect(url, auth, network).map_err(|e| format!("following {url}: {e}"))?;
    Ok((Arc::new(source), resolved))
}

/// Starts the thread that follows the node until `stop` is set.
pub fn start(
    source: Arc<FollowSource>,
    shared: Arc<HostShared>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let chain: Arc<dyn HostChain> = source.clone();
    let mut follower = Follower::new(source).map_err(|e| format!("reading the node's tip: {e}"))?;
    std::thread::Builder::new()
        .name("opnet-follow".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(250);
            while !stop.load(Ordering::Relaxed) {
                match follower.next_steps(POLL) {
                    Ok(steps) => {
                        backoff = Duration::from_millis(250);
                        for w in follower.take_warnings() {
                            tracing::warn!("{w}");
                        }
                        for step in steps {
                            if let Err(e) = apply(chain.as_ref(), &shared, step) {
                                // The plugin catches up from the chain access on the next block.
                                tracing::warn!(error = %e, "could not fetch a new block; the plugin will catch up");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "lost the node");
                        // Wait before retrying a node that is down, without spinning.
                        let until = std::time::Instant::now() + backoff;
                        while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                            std::thread::park_timeout(Duration::from_millis(100));
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })
        .map_err(|e| format!("starting the follow thread: {e}"))
}

fn apply(chain: &dyn HostChain, shared: &HostShared, step: TipStep) -> Result<(), String> {
    match step {
        TipStep::Connect { hash, height } => {
            let block = chain.block_bytes(&hash).map_err(|e| e.to_string())?;
            let spent = chain.spent_bytes(&hash).map_err(|e| e.to_string())?;
            tracing::info!(height, %hash, "new block");
            shared.block_connected(&block, height, &spent);
        }
        TipStep::Disconnect { hash, height } => {
            tracing::info!(height, %hash, "block disconnected");
            shared.block_disconnected(&hash, height);
        }
    }
    Ok(())
}
