//! Follow mode's driver: connects to bitcoind, and a thread that long-polls it for
//! new tips and tells the plugins (disconnects of a reorg first).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bitcoin::{Block, BlockHash, Transaction, Txid};
use opnet::datadir::{resolve_datadir, DatadirSource};
use opnet::format::undo::BlockSpent;
use opnet::source::{ChainSource, ChainTip, HeaderInfo, SourceError};
use opnet::Network;

use super::args::Auth;
use crate::chain::{HostChain, SpentBytes};
use crate::follow::{BlockNews, FollowSource, Follower, MempoolChange, MempoolMirror, RpcAuth, TipStep};
use crate::loader::Loader;
use crate::loader::context::HostShared;

/// How long one `waitfornewblock` long-poll lasts (also how soon a stop is seen).
const POLL: Duration = Duration::from_secs(2);

/// The node as the plugins' chain: everything from RPC/REST, except spent outputs
/// of blocks the local datadir already holds, which come from its undo files with
/// their heights. REST's `spenttxouts` has none, and without them the plugin has
/// no undo history for the blocks below its scan, so a reorg right after a scan
/// would force a rebuild.
pub struct FollowChain {
    pub node: Arc<FollowSource>,
    /// The network datadir and what was read of it. bitcoind writes its block
    /// index with its chainstate, so a node that never wrote one has no usable
    /// local data until [`HostChain::flush_chainstate`] reads it again.
    dir: PathBuf,
    local: RwLock<Option<Arc<DatadirSource>>>,
}

impl FollowChain {
    fn local(&self) -> Option<Arc<DatadirSource>> {
        self.local.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the local datadir's block index again (after bitcoind wrote it).
    fn reopen_local(&self) {
        match DatadirSource::open(&self.dir, self.node.network()) {
            Ok(l) => *self.local.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(l)),
            Err(e) => tracing::warn!(error = %e, "the local datadir's undo data is still unusable; spent outputs come from REST only"),
        }
    }
}

impl ChainSource for FollowChain {
    fn network(&self) -> Network {
        self.node.network()
    }
    fn tip(&self) -> Result<ChainTip, SourceError> {
        self.node.tip()
    }
    fn hash_at_height(&self, height: u32) -> Result<Option<BlockHash>, SourceError> {
        self.node.hash_at_height(height)
    }
    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        self.node.block(hash)
    }
    fn spent_outputs(&self, hash: &BlockHash) -> Result<BlockSpent, SourceError> {
        if let Some(Ok(spent)) = self.local().map(|l| l.spent_outputs(hash)) {
            return Ok(spent);
        }
        self.node.spent_outputs(hash)
    }
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError> {
        self.node.header(hash)
    }
    fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, SourceError> {
        self.node.transaction(txid)
    }
    fn has_tx_index(&self) -> bool {
        self.node.has_tx_index()
    }
}

impl HostChain for FollowChain {
    fn block_bytes(&self, hash: &BlockHash) -> Result<Vec<u8>, SourceError> {
        self.node.block_bytes(hash)
    }
    fn spent_bytes(&self, hash: &BlockHash) -> Result<SpentBytes, SourceError> {
        if let Some(Ok(spent)) = self.local().map(|l| l.spent_bytes(hash)) {
            return Ok(spent);
        }
        self.node.spent_bytes(hash)
    }
    fn transaction_bytes(&self, txid: &Txid) -> Result<Option<Vec<u8>>, SourceError> {
        self.node.transaction_bytes(txid)
    }
    fn can_flush_chainstate(&self) -> bool {
        true
    }
    fn flush_chainstate(&self) -> Result<(), SourceError> {
        let started = std::time::Instant::now();
        tracing::info!(node = %self.node.url(), "asking bitcoind to write its chainstate for the scan");
        self.node.flush_chainstate()?;
        tracing::info!(took_ms = started.elapsed().as_millis() as u64, "bitcoind wrote its chainstate");
        self.reopen_local();
        Ok(())
    }
}

/// Connects to the node; the datadir (resolved to the network's directory) gives
/// the default cookie, the chainstate to scan and the undo data it already has.
pub fn connect(
    dir: &Path,
    network: Option<Network>,
    url: &str,
    auth: &Auth,
) -> Result<(Arc<FollowChain>, PathBuf), String> {
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
    let node =
        FollowSource::connect(url, auth, network).map_err(|e| format!("following {url}: {e}"))?;
    // The block index is read once, now; blocks the node adds later come by REST.
    let local = match DatadirSource::open(&resolved, network) {
        Ok(l) => Some(Arc::new(l)),
        Err(e) => {
            tracing::info!(error = %e, "the local datadir's undo data is not usable yet (read again once bitcoind writes its chainstate)");
            None
        }
    };
    Ok((
        Arc::new(FollowChain {
            node: Arc::new(node),
            dir: resolved.clone(),
            local: RwLock::new(local),
        }),
        resolved,
    ))
}

/// Starts the thread that follows the node until `stop` is set: new tips, and
/// every `mempool_poll` (when given) the mempool, once the plugins are at the tip
/// (the plugin ignores mempool notifications while it scans).
pub fn start(
    chain: Arc<FollowChain>,
    shared: Arc<HostShared>,
    loader: Arc<Loader>,
    mempool_poll: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let mut follower =
        Follower::new(chain.node.clone()).map_err(|e| format!("reading the node's tip: {e}"))?;
    let poll = mempool_poll.map_or(POLL, |m| m.min(POLL));
    std::thread::Builder::new()
        .name("opnet-follow".into())
        .spawn(move || {
            let mut mempool = mempool_poll.map(|_| MempoolFeed::new(chain.node.clone()));
            let mut backoff = Duration::from_millis(250);
            while !stop.load(Ordering::Relaxed) {
                match follower.next_steps(poll) {
                    Ok(steps) => {
                        backoff = Duration::from_millis(250);
                        for w in follower.take_warnings() {
                            tracing::warn!("{w}");
                        }
                        let mut news = mempool.as_mut().map(|m| &mut m.news);
                        for step in steps {
                            if let Err(e) = apply(chain.as_ref(), &shared, step, news.as_deref_mut()) {
                                // The plugin catches up from the chain access on the next block.
                                tracing::warn!(error = %e, "could not fetch a new block; the plugin will catch up");
                            }
                        }
                        if let Some(m) = mempool.as_mut() {
                            m.round(&chain.node, &shared, &loader, follower.tip().hash);
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

/// The follow thread's mempool side: the mirror, what blocks did since its last
/// round, and whether the plugins are ready for mempool notifications.
struct MempoolFeed {
    mirror: MempoolMirror,
    news: BlockNews,
    started: bool,
    /// The last round failed (logged once until one succeeds).
    failing: bool,
}

impl MempoolFeed {
    fn new(node: Arc<FollowSource>) -> MempoolFeed {
        MempoolFeed {
            mirror: MempoolMirror::new(node),
            news: BlockNews::default(),
            started: false,
            failing: false,
        }
    }

    /// One mempool round, announced to the plugins; failures are logged and the
    /// next round compares again.
    fn round(&mut self, node: &Arc<FollowSource>, shared: &HostShared, loader: &Loader, tip: BlockHash) {
        if !self.started {
            // Everything notified so far applied and the plugins at the tip.
            if loader.wait_synced(Duration::ZERO).is_err() {
                return;
            }
            self.started = true;
            tracing::info!(node = %node.url(), "following bitcoind's mempool");
        }
        let unchanged = || Ok(node.best_block()?.hash == tip);
        match self.mirror.round(&mut self.news, unchanged) {
            Ok(changes) => {
                if !changes.is_empty() {
                    tracing::debug!(changes = changes.len(), in_mempool = self.mirror.len(), "mempool round");
                }
                for change in changes {
                    match change {
                        MempoolChange::Added { tx, spent, .. } => shared.transaction_added(&tx, &spent),
                        MempoolChange::Removed { txid, reason } => shared.transaction_removed(&txid, reason),
                    }
                }
            }
            Err(e) => {
                // Said once per failure streak, not every round.
                if !self.failing {
                    tracing::warn!(error = %e, "reading bitcoind's mempool failed; each round tries again");
                }
                self.failing = true;
                return;
            }
        }
        if std::mem::take(&mut self.failing) {
            tracing::info!("reading bitcoind's mempool works again");
        }
    }
}

fn apply(
    chain: &dyn HostChain,
    shared: &HostShared,
    step: TipStep,
    news: Option<&mut BlockNews>,
) -> Result<(), String> {
    match step {
        TipStep::Connect { hash, height } => {
            let block = chain.block_bytes(&hash).map_err(|e| e.to_string())?;
            let spent = chain.spent_bytes(&hash).map_err(|e| e.to_string())?;
            tracing::info!(height, %hash, "new block");
            shared.block_connected(&block, height, &spent);
            if let Some(n) = news {
                n.connected(&block);
            }
        }
        TipStep::Disconnect { hash, height } => {
            tracing::info!(height, %hash, "block disconnected");
            shared.block_disconnected(&hash, height);
            if let Some(n) = news {
                n.disconnected();
            }
        }
    }
    Ok(())
}
