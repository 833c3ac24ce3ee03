//! The typed request methods of [`Client`]: one per request of docs/PROTOCOL.md
//! §6–§7.3, each turning the answer into the type the caller wants and an error
//! status into [`ClientError::Server`].

use bytes::Bytes;

use super::connection::{PendingReply, SinkChange};
use super::{Client, ClientError, UtxoStream};
use crate::protocol::{
    BlockRef, BlockSelector, Cursor, Request, Response, SyncStatusReply, UtxoPage, UtxoQuery,
    MAX_SCRIPTHASHES_PER_REQUEST,
};

/// The txids of one block (GET_BLOCK_TXIDS, §6.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTxids {
    /// The block, resolved (a height selector gets its hash and vice versa).
    pub block: BlockRef,
    /// In block order, internal byte order.
    pub txids: Vec<[u8; 32]>,
}

/// One raw transaction (GET_TX, §6.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxReply {
    /// The block holding it; none for a mempool transaction (or one found through
    /// the transaction index without its block).
    pub block: BlockRef,
    /// Consensus serialization with witness.
    pub raw: Vec<u8>,
}

impl TxReply {
    /// The transaction, decoded; bytes that are not one are the server's fault.
    pub fn decode(&self) -> Result<bitcoin::Transaction, ClientError> {
        bitcoin::consensus::deserialize(&self.raw).map_err(|e| {
            ClientError::Protocol(format!("GET_TX returned an invalid transaction: {e}"))
        })
    }
}

/// One block header (GET_BLOCK_HEADER, §6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderReply {
    /// The block, resolved.
    pub block: BlockRef,
    /// Consensus serialization.
    pub header: [u8; 80],
}

impl HeaderReply {
    /// The header, decoded.
    pub fn decode(&self) -> Result<bitcoin::block::Header, ClientError> {
        bitcoin::consensus::deserialize(&self.header).map_err(|e| {
            ClientError::Protocol(format!("GET_BLOCK_HEADER returned an invalid header: {e}"))
        })
    }
}

/// The outcome of (un)watching scripthashes (§7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchChange {
    /// Scripthashes actually added (or removed) by this call.
    pub changed: u32,
    /// Scripthashes this connection watches now.
    pub total: u32,
}

fn unexpected(what: &str, resp: Response) -> ClientError {
    ClientError::Protocol(format!("{what} answered with {resp:?}"))
}

impl Client {
    /// Sends `req` on the current connection and waits for the answer.
    async fn call(&self, req: Request) -> Result<Response, ClientError> {
        self.inner.current().call(req, SinkChange::Keep).await
    }

    /// Sends `req` and returns before the answer comes.
    pub(crate) async fn start(&self, req: Request) -> Result<PendingReply, ClientError> {
        self.inner.current().start(req, SinkChange::Keep).await
    }

    /// One page of a scripthash's UTXOs (QUERY_UTXOS, §6.1): up to `query.limit`
    /// entries (0 = the server's `max_results`); `more` says whether others match.
    pub async fn query_utxos(&self, query: UtxoQuery) -> Result<UtxoPage, ClientError> {
        match self.call(Request::QueryUtxos(query)).await? {
            Response::Utxos(page) => Ok(page),
            other => Err(unexpected("QUERY_UTXOS", other)),
        }
    }

    /// One page of a paginated query (QUERY_UTXOS_PAGINATED, §6.2): `None` for the
    /// first, then the previous page's `cursor` with the same query.
    pub async fn query_page(
        &self,
        query: UtxoQuery,
        cursor: Option<Cursor>,
    ) -> Result<UtxoPage, ClientError> {
        let pending = self.start_page(query, cursor).await?;
        page_of(pending.wait().await?)
    }

    pub(crate) async fn start_page(
        &self,
        query: UtxoQuery,
        cursor: Option<Cursor>,
    ) -> Result<PendingReply, ClientError> {
        self.start(Request::QueryUtxosPaginated(
            query,
            cursor.unwrap_or_default(),
        ))
        .await
    }

    /// Every UTXO matching `query`, page by page; `query.limit` is the page size
    /// (0 = the server's `max_results`). See [`UtxoStream`].
    pub fn utxo_stream(&self, query: UtxoQuery) -> UtxoStream {
        UtxoStream::new(self.clone(), query)
    }

    /// Where the index and the host are (GET_SYNC_STATUS, §6.3).
    pub async fn sync_status(&self) -> Result<SyncStatusReply, ClientError> {
        match self.call(Request::GetSyncStatus).await? {
            Response::SyncStatus(s) => Ok(s),
            other => Err(unexpected("GET_SYNC_STATUS", other)),
        }
    }

    /// The txids of a block (GET_BLOCK_TXIDS, §6.4).
    pub async fn block_txids(&self, block: BlockSelector) -> Result<BlockTxids, ClientError> {
        match self.call(Request::GetBlockTxids(block)).await? {
            Response::BlockTxids { block, txids } => Ok(BlockTxids { block, txids }),
            other => Err(unexpected("GET_BLOCK_TXIDS", other)),
        }
    }

    /// A raw transaction (GET_TX, §6.5). Without `block_hash` the server needs a
    /// transaction index (the TX_INDEX feature) unless the transaction is in the
    /// mempool.
    pub async fn transaction(
        &self,
        txid: [u8; 32],
        block_hash: Option<[u8; 32]>,
    ) -> Result<TxReply, ClientError> {
        match self.call(Request::GetTx { txid, block_hash }).await? {
            Response::Tx { block, raw } => Ok(TxReply { block, raw }),
            other => Err(unexpected("GET_TX", other)),
        }
    }

    /// A block header (GET_BLOCK_HEADER, §6.6).
    pub async fn block_header(&self, block: BlockSelector) -> Result<HeaderReply, ClientError> {
        match self.call(Request::GetBlockHeader(block)).await? {
            Response::BlockHeader { block, header } => Ok(HeaderReply { block, header }),
            other => Err(unexpected("GET_BLOCK_HEADER", other)),
        }
    }

    /// Echoes `payload` (PING, §6.7): liveness and round-trip time.
    pub async fn ping(&self, payload: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        match self.call(Request::Ping(payload.into())).await? {
            Response::Pong(echo) => Ok(echo),
            other => Err(unexpected("PING", other)),
        }
    }

    /// Watches scripthashes for SCRIPTHASH_ACTIVITY (§7.3), in requests of at most
    /// 10,000. They are watched again after a reconnect. On an error, the requests
    /// before it were applied.
    pub async fn subscribe_scripthashes(
        &self,
        scripthashes: &[[u8; 32]],
    ) -> Result<WatchChange, ClientError> {
        let mut result = WatchChange {
            changed: 0,
            total: 0,
        };
        for chunk in request_chunks(scripthashes) {
            match self
                .call(Request::SubscribeScripthashes(chunk.to_vec()))
                .await?
            {
                Response::ScripthashesSubscribed { changed, total } => {
                    self.inner
                        .watched
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(chunk.iter().copied());
                    result.changed += changed;
                    result.total = total;
                }
                other => return Err(unexpected("SUBSCRIBE_SCRIPTHASHES", other)),
            }
        }
        Ok(result)
    }

    /// Stops watching scripthashes (§7.3).
    pub async fn unsubscribe_scripthashes(
        &self,
        scripthashes: &[[u8; 32]],
    ) -> Result<WatchChange, ClientError> {
        let mut result = WatchChange {
            changed: 0,
            total: 0,
        };
        for chunk in request_chunks(scripthashes) {
            match self
                .call(Request::UnsubscribeScripthashes(chunk.to_vec()))
                .await?
            {
                Response::ScripthashesUnsubscribed { changed, total } => {
                    let mut watched = self.inner.watched.lock().unwrap_or_else(|p| p.into_inner());
                    for sh in chunk {
                        watched.remove(sh);
                    }
                    result.changed += changed;
                    result.total = total;
                }
                other => return Err(unexpected("UNSUBSCRIBE_SCRIPTHASHES", other)),
            }
        }
        Ok(result)
    }
}

/// The requests a list of scripthashes takes (§5.1: at most 10,000 each); an empty
/// list still takes one, which reports the connection's total.
pub(crate) fn request_chunks(list: &[[u8; 32]]) -> Vec<&[[u8; 32]]> {
    if list.is_empty() {
        return vec![list];
    }
    list.chunks(MAX_SCRIPTHASHES_PER_REQUEST as usize).collect()
}

/// The page in a QUERY_UTXOS_PAGINATED answer.
pub(crate) fn page_of(resp: Response) -> Result<UtxoPage, ClientError> {
    match resp {
        Response::UtxosPage(page) => Ok(page),
        other => Err(unexpected("QUERY_UTXOS_PAGINATED", other)),
    }
}
