//! The running plugin: the index engine on its own thread, the socket server, the
//! mempool feed and a progress reporter, built from the host's context at init and
//! torn down, in order, at shutdown.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use crossbeam_channel::{bounded, Receiver, Sender};
use opnet::abi;
use opnet::chainstate::ChainstateError;
use opnet::index::{IndexError, IndexStore};
use opnet::server::{self, Node, ServerHandle};
use opnet::snapshot;
use opnet::source::ChainSource;
use opnet::sync::live::SharedChainstateOpener;
use opnet::sync::{ChainEvent, Engine, LiveSync, SyncError, SyncPhase, SyncStatus};

use crate::config::PluginConfig;
use crate::host::{decode_spent, HostApi};
use crate::mempool_feed::{MempoolFeed, Notification};
use crate::scan_snapshot::{self, ScanSnapshot};

/// Everything the plugin runs; lives in the context's `user_data`.
pub struct Runtime {
    pub host: Arc<HostApi>,
    pub node: Arc<Node>,
    live: Option<Arc<LiveSync>>,
    server: Option<ServerHandle>,
    mempool: MempoolFeed,
    blocks_notified: AtomicU64,
    reporter: Option<(Sender<()>, JoinHandle<()>)>,
    snapshot_dir: PathBuf,
    /// A barrier queued by a wait that timed out, reused by the next wait.
    pending_barrier: Mutex<Option<Receiver<()>>>,
}

impl Runtime {
    /// Opens the index, starts serving and starts syncing to the host's tip.
    pub fn start(host: Arc<HostApi>, config: PluginConfig) -> Result<Runtime, String> {
        let opnet_dir = config.engine.opnet_dir.clone();
        if config.reindex {
            let index = config.engine.index_dir();
            tracing::warn!(index = %index.display(), "-opnetreindex: deleting the index; it is built again");
            IndexStore::destroy(&index).map_err(|e| format!("-opnetreindex: {e}"))?;
        }
        let mut engine = Engine::open(config.engine.clone()).map_err(|e| {
            let hint = match e {
                SyncError::Index(IndexError::Corrupt(_)) => "; -opnetreindex=1 does that",
                _ => "",
            };
            format!("opening the index in {}: {e}{hint}", opnet_dir.display())
        })?;
        let source: Arc<dyn ChainSource> = host.clone();
        let node = Node::attach(&mut engine, source.clone(), config.mempool_log_bytes)
            .map_err(|e| format!("reading the index's event log: {e}"))?;
        let can_scan = host.capabilities() & abi::CAP_CHAINSTATE_READ != 0;
        if engine.meta().is_none() && !can_scan {
            // No chainstate to scan (a replayed chain): build from genesis.
            tracing::info!("the host offers no chainstate; building the index from genesis");
            engine
                .init_at_genesis()
                .map_err(|e| format!("starting an index at genesis: {e}"))?;
        }
        let server = match &config.server {
            Some(s) => Some(
                server::start(s.clone(), node.clone())
                    .map_err(|e| format!("serving {}: {e}", s.socket_path.display()))?,
            ),
            None => None,
        };
        let snapshot_dir = scan_snapshot::snapshot_dir(&opnet_dir);
        let scan = ScanSnapshot {
            host: host.clone(),
            chainstate_dir: host.datadir.join("chainstate"),
            snapshot_dir: snapshot_dir.clone(),
            cancel: engine.cancel_flag(),
        };
        let opener: SharedChainstateOpener = Arc::new(move || {
            if !can_scan {
                return Err(ChainstateError::NoBestBlock(scan.chainstate_dir.clone()));
            }
            scan.open()
        });
        let status = engine.status();
        let live = LiveSync::start(engine, source, opener, config.block_queue)
            .map_err(|e| format!("starting the index thread: {e}"))?;
        let live = Arc::new(live);
        let mempool = MempoolFeed::start(node.clone(), live.clone(), config.mempool_queue)
            .map_err(|e| format!("starting the mempool thread: {e}"))?;
        let reporter = start_reporter(status).ok();
        Ok(Runtime {
            host,
            node,
            live: Some(live),
            server,
            mempool,
            blocks_notified: AtomicU64::new(0),
            reporter,
            snapshot_dir,
            pending_barrier: Mutex::new(None),
        })
    }

    fn notify(&self, event: ChainEvent) {
        self.blocks_notified.fetch_add(1, Ordering::Relaxed);
        if let Some(live) = &self.live {
            if !live.notify(event) {
                tracing::debug!("block queue full; the index will catch up from the host");
            }
        }
    }

    /// The host connected a block (callback: copy, decode, hand over).
    pub fn block_connected(&self, block: &[u8], height: u32, spent: &[u8], format: u32) {
        let decoded = deserialize::<Block>(block)
            .map_err(|e| format!("undecodable block at height {height}: {e}"))
            .and_then(|b| {
                decode_spent(format, spent)
                    .map(|s| (b, s))
                    .map_err(|e| format!("spent outputs of the block at height {height}: {e}"))
            });
        match decoded {
            Ok((block, spent)) => self.notify(ChainEvent::Connected {
                block: Arc::new(block),
                height,
                spent: Arc::new(spent),
            }),
            Err(e) => {
                // The host's chain access can serve the block again: catch up from it.
                tracing::error!(error = %e, "a block notification was not usable; catching up from the host instead");
                if let Some(live) = &self.live {
                    live.resync();
                }
            }
        }
    }

    /// Makes the index catch up from the host's chain (a notification was lost).
    pub fn resync(&self) {
        if let Some(live) = &self.live {
            live.resync();
        }
    }

    /// The host disconnected its tip.
    pub fn block_disconnected(&self, hash: [u8; 32], height: u32) {
        self.notify(ChainEvent::Disconnected {
            hash: BlockHash::from_byte_array(hash),
            height,
        });
    }

    /// A mempool notification.
    pub fn mempool(&self, notification: Notification) {
        self.mempool
            .push(notification, self.blocks_notified.load(Ordering::Relaxed));
    }

    /// Waits until the index has applied everything notified so far and is at the
    /// host's tip. A wait that runs out keeps its barrier for the next call, so a
    /// host asking every second during a long scan queues one barrier, not many.
    pub fn wait_synced(&self, timeout: Duration) -> abi::Status {
        let Some(live) = &self.live else {
            return abi::ERR_NOT_SYNCED;
        };
        let deadline = Instant::now() + timeout;
        let mut pending = self
            .pending_barrier
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Rounds of "apply everything, compare with the host's tip"; a tip that
        // still differs after a full catch-up three times means the sync fails.
        for _round in 0..3 {
            let left = deadline.saturating_duration_since(Instant::now());
            let barrier = match pending.take() {
                Some(b) => b,
                None => match live.barrier(left) {
                    Some(b) => b,
                    None => return abi::ERR_TIMEOUT,
                },
            };
            match barrier.recv_deadline(deadline) {
                Ok(()) => {}
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    *pending = Some(barrier);
                    return abi::ERR_TIMEOUT;
                }
                // The index thread stopped.
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return abi::ERR_NOT_SYNCED
                }
            }
            match self.host.tip() {
                Ok(tip) => {
                    if let Some(view) = self.node.index() {
                        if view.meta.tip.hash == tip.hash.to_byte_array() {
                            return abi::OK;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the host's tip is unknown"),
            }
            // Everything notified is applied, but the host's tip has moved on (its
            // notification is on the way) or a sync failed and is being retried:
            // ask the index thread to catch up, and wait again.
            if Instant::now() >= deadline {
                return abi::ERR_TIMEOUT;
            }
            live.resync();
        }
        tracing::error!("the index does not reach the host's tip; the errors above say why");
        abi::ERR_NOT_SYNCED
    }

    /// The sync progress in the ABI's layout.
    pub fn progress(&self) -> abi::Progress {
        let p = self.node.status.snapshot();
        abi::Progress {
            size: std::mem::size_of::<abi::Progress>() as u32,
            phase: match p.phase {
                SyncPhase::Starting => abi::PHASE_STARTING,
                SyncPhase::Scanning => abi::PHASE_SCANNING,
                SyncPhase::CatchingUp => abi::PHASE_CATCHING_UP,
                SyncPhase::Live => abi::PHASE_LIVE,
                SyncPhase::Failed => abi::PHASE_FAILED,
            },
            scanned_utxos: p.scanned_utxos,
            written_utxos: p.written_utxos,
            scanned_bytes: p.scanned_bytes,
            total_bytes: p.total_bytes,
            height: p.height,
            target_height: p.target_height,
        }
    }

    /// Stops everything, in order: mempool feed, index thread (a running scan is
    /// cancelled and resumes at the next start), server (clients get CLOSING), then
    /// the scan snapshot is removed.
    pub fn shutdown(mut self) {
        self.mempool.stop();
        if let Some((stop, handle)) = self.reporter.take() {
            drop(stop);
            let _ = handle.join();
        }
        if let Some(live) = self.live.take() {
            match Arc::try_unwrap(live) {
                Ok(live) => match live.shutdown() {
                    Ok(engine) => drop(engine),
                    Err(e) => tracing::error!(error = %e, "stopping the index thread"),
                },
                Err(_) => tracing::error!("the index thread is still shared at shutdown"),
            }
        }
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
        if let Err(e) = snapshot::remove(&self.snapshot_dir) {
            tracing::warn!(error = %e, "removing the chainstate snapshot");
        }
        let c = &self.mempool.counters;
        tracing::info!(
            mempool_applied = c.applied.load(Ordering::Relaxed),
            mempool_skipped = c.skipped.load(Ordering::Relaxed),
            mempool_before_live = c.before_live.load(Ordering::Relaxed),
            mempool_overflowed = c.overflowed.load(Ordering::Relaxed),
            "plugin stopped"
        );
    }
}

/// Logs the scan's and catch-up's progress every 10 s until told to stop.
fn start_reporter(status: Arc<SyncStatus>) -> std::io::Result<(Sender<()>, JoinHandle<()>)> {
    let (stop, stopped) = bounded::<()>(0);
    let handle = std::thread::Builder::new()
        .name("opnet-progress".into())
        .spawn(move || {
            let mut last = None;
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(10))
            {
                let p = status.snapshot();
                let line = match p.phase {
                    SyncPhase::Scanning => {
                        let pct = if p.total_bytes > 0 {
                            (p.scanned_bytes as f64 * 100.0 / p.total_bytes as f64).min(100.0)
                        } else {
                            0.0
                        };
                        format!(
                            "scanning the chainstate: {pct:.1}%, {} UTXOs read, {} written",
                            p.scanned_utxos, p.written_utxos
                        )
                    }
                    SyncPhase::CatchingUp => {
                        format!("catching up: block {} of {}", p.height, p.target_height)
                    }
                    _ => continue,
                };
                if last.as_ref() != Some(&line) {
                    tracing::info!("{line}");
                    last = Some(line);
                }
            }
        })?;
    Ok((stop, handle))
}
