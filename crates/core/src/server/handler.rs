//! Executes one request against the node: plain blocking functions, so the
//! connection decides whether to run them inline or on the blocking pool.

use bitcoin::consensus::Encodable;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};

use super::node::Node;
use super::query::{self, MempoolSlice, QueryError};
use super::ServerConfig;
use crate::index::{IndexError, SyncState};
use crate::protocol::Request;
use crate::protocol::{
    BlockRef, BlockSelector, Cursor, ErrorReply, Hello, HelloReply, Response, Status, SyncMode,
    SyncStatusReply, UtxoQuery, FEATURE_EVENT_REPLAY, FEATURE_MEMPOOL,
    FEATURE_SCRIPTHASH_SUBSCRIPTIONS, FEATURE_TX_INDEX, PROTOCOL_VERSION,
};
use crate::source::SourceError;
use crate::sync::SyncPhase;

/// Bytes a page needs besides its entries: header, the largest script, cursor.
const PAGE_OVERHEAD: u32 = 10_300;
/// Wire size of one UTXO entry with a spender.
const ENTRY_MAX_LEN: u32 = 81;

/// An error response's content.
pub fn error(status: Status, detail: u32, message: impl Into<String>) -> ErrorReply {
    ErrorReply {
        status,
        detail,
        message: message.into(),
    }
}

/// What HELLO settled for a connection.
#[derive(Clone, Copy, Debug)]
pub struct Negotiated {
    pub version: u16,
    pub features: u64,
    /// Largest frame the server may send this client.
    pub max_frame: u32,
    pub max_results: u32,
}

/// Feature bits this server offers.
pub fn offered_features(node: &Node) -> u64 {
    let mut f = FEATURE_MEMPOOL | FEATURE_SCRIPTHASH_SUBSCRIPTIONS | FEATURE_EVENT_REPLAY;
    if node.source.has_tx_index() {
        f |= FEATURE_TX_INDEX;
    }
    f
}

/// HELLO: picks the version and features, sizes pages to the client's frames.
pub fn hello(
    config: &ServerConfig,
    node: &Node,
    h: &Hello,
) -> Result<(HelloReply, Negotiated), ErrorReply> {
    if h.min_version > PROTOCOL_VERSION || h.max_version < 1 {
        return Err(error(
            Status::VersionUnsupported,
            PROTOCOL_VERSION as u32,
            format!(
                "this server speaks protocol version {PROTOCOL_VERSION}; the client asked for {}..={}",
                h.min_version, h.max_version
            ),
        ));
    }
    let version = h.max_version.min(PROTOCOL_VERSION);
    let max_frame = h.max_frame.min(config.max_frame);
    let max_results = config
        .max_results
        .min(max_frame.saturating_sub(PAGE_OVERHEAD) / ENTRY_MAX_LEN)
        .max(1);
    let features = h.features & offered_features(node);
    let tip = node
        .index()
        .map(|v| BlockRef {
            height: v.meta.tip.height,
            hash: v.meta.tip.hash,
        })
        .unwrap_or_default();
    let n = Negotiated {
        version,
        features,
        max_frame,
        max_results,
    };
    Ok((
        HelloReply {
            version,
            features,
            network: node.network.id(),
            max_frame,
            max_results,
            max_inflight: config.max_inflight as u32,
            max_scripthashes: config.max_scripthashes as u32,
            rate_limit: config.rate_limit,
            event_seq: node.hub.last_seq(),
            tip,
            server_name: config.server_name.clone(),
        },
        n,
    ))
}

fn index_error(e: IndexError) -> ErrorReply {
    match e {
        IndexError::Superseded => error(Status::NotReady, 0, "the index is being replaced; retry"),
        other => error(Status::Internal, 0, other.to_string()),
    }
}

fn source_error(e: SourceError) -> ErrorReply {
    match e {
        SourceError::NotFound(m) => error(Status::NotFound, 0, m),
        SourceError::Unsupported(m) | SourceError::Unavailable(m) => {
            error(Status::Unavailable, 0, m)
        }
        SourceError::Corrupt(m) => error(Status::Internal, 0, format!("chain data corrupt: {m}")),
    }
}

/// Answers a request that only reads the index or the chain source (queries,
/// status, blocks, transactions): no connection state, so the server runs it on
/// any thread and the `requests` fuzz target drives it directly.
pub fn read_request(
    node: &Node,
    n: &Negotiated,
    request: &Request,
) -> Result<Response, ErrorReply> {
    match request {
        Request::QueryUtxos(q) => query_utxos(node, n, q, None).map(Response::Utxos),
        Request::QueryUtxosPaginated(q, c) => {
            let cursor = (!c.0.is_empty()).then_some(c);
            query_utxos(node, n, q, cursor).map(Response::UtxosPage)
        }
        Request::GetSyncStatus => Ok(Response::SyncStatus(sync_status(node))),
        Request::GetBlockTxids(sel) => block_txids(node, sel),
        Request::GetBlockHeader(sel) => block_header(node, sel),
        Request::GetTx { txid, block_hash } => get_tx(node, n, txid, block_hash.as_ref()),
        _ => Err(error(
            Status::Internal,
            0,
            "request routed to the wrong handler",
        )),
    }
}

/// QUERY_UTXOS and QUERY_UTXOS_PAGINATED.
pub fn query_utxos(
    node: &Node,
    n: &Negotiated,
    q: &UtxoQuery,
    cursor: Option<&Cursor>,
) -> Result<crate::protocol::UtxoPage, ErrorReply> {
    crate::failpoint::check("query");
    if q.include_mempool && n.features & FEATURE_MEMPOOL == 0 {
        return Err(error(
            Status::FeatureNotNegotiated,
            FEATURE_MEMPOOL as u32,
            "the mempool view needs the MEMPOOL feature",
        ));
    }
    if q.limit > n.max_results {
        return Err(error(
            Status::LimitExceeded,
            n.max_results,
            format!("limit {} is above max_results {}", q.limit, n.max_results),
        ));
    }
    let limit = if q.limit == 0 { n.max_results } else { q.limit } as usize;
    // A store replaced by a rebuild mid-query answers Superseded: retry on the new one.
    for _ in 0..3 {
        let Some(view) = node.index() else {
            return Err(error(
                Status::NotReady,
                0,
                "no index yet: the first scan is running",
            ));
        };
        if view.meta.state != SyncState::Ready {
            return Err(error(
                Status::NotReady,
                0,
                "the index is stale (a reorg deeper than its undo log) and is being rebuilt",
            ));
        }
        let slice = {
            let mempool = node.mempool.read().unwrap_or_else(|p| p.into_inner());
            MempoolSlice::of(&mempool, q)
        };
        let tip = BlockRef {
            height: view.meta.tip.height,
            hash: view.meta.tip.hash,
        };
        match query::run(&view.store, tip, q, cursor, limit, &slice) {
            Ok(page) => return Ok(page),
            Err(QueryError::Index(IndexError::Superseded)) => continue,
            Err(QueryError::Index(e)) => return Err(index_error(e)),
            Err(QueryError::BadCursor(m)) => return Err(error(Status::BadCursor, 0, m)),
        }
    }
    Err(error(
        Status::NotReady,
        0,
        "the index is being replaced; retry",
    ))
}

/// GET_SYNC_STATUS.
pub fn sync_status(node: &Node) -> SyncStatusReply {
    let progress = node.status.snapshot();
    let view = node.index();
    let host_tip = node
        .source
        .tip()
        .map(|t| BlockRef {
            height: t.height,
            hash: t.hash.to_byte_array(),
        })
        .unwrap_or_default();
    // Following the host but not at its tip: a block is on its way, or the host is
    // behind the index (a restarted node catching up): not "synced" either way.
    let off_tip = view
        .as_ref()
        .is_some_and(|v| host_tip.hash != [0; 32] && v.meta.tip.hash != host_tip.hash);
    let mode = match (&view, progress.phase) {
        (_, SyncPhase::Failed) => SyncMode::Failed,
        (Some(v), _) if v.meta.state == SyncState::Stale => SyncMode::Stale,
        (_, SyncPhase::Scanning) => SyncMode::Scanning,
        (_, SyncPhase::CatchingUp) => SyncMode::CatchingUp,
        (_, SyncPhase::Live) if off_tip => SyncMode::CatchingUp,
        (_, SyncPhase::Live) => SyncMode::Synced,
        (_, SyncPhase::Starting) => SyncMode::Starting,
    };
    let scanning = progress.phase == SyncPhase::Scanning;
    SyncStatusReply {
        mode,
        index_tip: view
            .as_ref()
            .map(|v| BlockRef {
                height: v.meta.tip.height,
                hash: v.meta.tip.hash,
            })
            .unwrap_or_default(),
        host_tip,
        utxo_count: view.as_ref().map_or(0, |v| v.meta.utxo_count),
        total_value: view.as_ref().map_or(0, |v| v.meta.total_amount),
        event_seq: node.hub.last_seq(),
        scan_done: if scanning { progress.scanned_bytes } else { 0 },
        scan_total: if scanning { progress.total_bytes } else { 0 },
        scan_utxos: if scanning { progress.scanned_utxos } else { 0 },
        mempool_txs: node.mempool_len() as u32,
    }
}

/// Resolves a block selector to (height, hash) through the chain source.
fn resolve(node: &Node, sel: &BlockSelector) -> Result<(u32, BlockHash), ErrorReply> {
    match sel {
        BlockSelector::Height(h) => {
            let hash = node
                .source
                .hash_at_height(*h)
                .map_err(source_error)?
                .ok_or_else(|| error(Status::NotFound, 0, format!("no block at height {h}")))?;
            Ok((*h, hash))
        }
        BlockSelector::Hash(bytes) => {
            let hash = BlockHash::from_byte_array(*bytes);
            let info = node
                .source
                .header(&hash)
                .map_err(source_error)?
                .ok_or_else(|| error(Status::NotFound, 0, format!("unknown block {hash}")))?;
            Ok((info.height, hash))
        }
    }
}

/// GET_BLOCK_TXIDS.
pub fn block_txids(node: &Node, sel: &BlockSelector) -> Result<Response, ErrorReply> {
    let (height, hash) = resolve(node, sel)?;
    let block = node.source.block(&hash).map_err(source_error)?;
    Ok(Response::BlockTxids {
        block: BlockRef {
            height,
            hash: hash.to_byte_array(),
        },
        txids: block
            .txdata
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect(),
    })
}

/// GET_BLOCK_HEADER.
pub fn block_header(node: &Node, sel: &BlockSelector) -> Result<Response, ErrorReply> {
    let (height, hash) = resolve(node, sel)?;
    let info = node
        .source
        .header(&hash)
        .map_err(source_error)?
        .ok_or_else(|| error(Status::NotFound, 0, format!("unknown block {hash}")))?;
    let mut header = [0u8; 80];
    let mut buf = Vec::with_capacity(80);
    info.header
        .consensus_encode(&mut buf)
        .map_err(|e| error(Status::Internal, 0, e.to_string()))?;
    header.copy_from_slice(&buf);
    Ok(Response::BlockHeader {
        block: BlockRef {
            height,
            hash: hash.to_byte_array(),
        },
        header,
    })
}

fn raw(tx: &bitcoin::Transaction) -> Vec<u8> {
    bitcoin::consensus::encode::serialize(tx)
}

/// GET_TX: the mempool view, then the given block, then the source's tx index.
pub fn get_tx(
    node: &Node,
    n: &Negotiated,
    txid: &[u8; 32],
    block_hash: Option<&[u8; 32]>,
) -> Result<Response, ErrorReply> {
    if n.features & FEATURE_MEMPOOL != 0 {
        let found = node
            .mempool
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .transaction(txid);
        if let Some(tx) = found {
            return Ok(Response::Tx {
                block: BlockRef::default(),
                raw: raw(&tx),
            });
        }
    }
    let id = Txid::from_byte_array(*txid);
    match block_hash {
        Some(b) => {
            let (height, hash) = resolve(node, &BlockSelector::Hash(*b))?;
            let block = node.source.block(&hash).map_err(source_error)?;
            let tx = block
                .txdata
                .iter()
                .find(|t| t.compute_txid() == id)
                .ok_or_else(|| {
                    error(Status::NotFound, 0, format!("{id} is not in block {hash}"))
                })?;
            Ok(Response::Tx {
                block: BlockRef {
                    height,
                    hash: hash.to_byte_array(),
                },
                raw: raw(tx),
            })
        }
        None => {
            if n.features & FEATURE_TX_INDEX == 0 {
                return Err(error(
                    Status::Unavailable,
                    0,
                    format!("{id}: the chain source has no transaction index; give the block hash"),
                ));
            }
            match node.source.transaction(&id).map_err(source_error)? {
                Some(tx) => Ok(Response::Tx {
                    block: BlockRef::default(),
                    raw: raw(&tx),
                }),
                None => Err(error(
                    Status::NotFound,
                    0,
                    format!("unknown transaction {id}"),
                )),
            }
        }
    }
}
