//! A running bitcoind as the index's chain source: the active chain and headers
//! through JSON-RPC, blocks and their spent outputs through REST's binary
//! endpoints (the exact bytes the plugin ABI carries, with no JSON or hex detour).

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Transaction, Txid};
use opnet::format::undo::{decode_rest_spent_txouts, BlockSpent};
use opnet::source::{ChainSource, ChainTip, HeaderInfo, SourceError};
use opnet::Network;
use serde_json::{json, Value};

use super::http::{excerpt, HttpLimits};
use super::rpc::{RpcAuth, RpcClient, RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER};
use super::FollowError;
use crate::chain::{HostChain, SpentBytes, SpentFormat};

/// A block's height and parent, from its header: what the follower walks back on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderLink {
    pub height: u32,
    /// `None` for the genesis block.
    pub prev: Option<BlockHash>,
}

/// How long bitcoind may take to write its chainstate when asked.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1800);

/// The chain of a running bitcoind (`-rest` enabled), shared by the plugin's sync
/// thread, its server and the [`Follower`](super::Follower).
pub struct FollowSource {
    rpc: RpcClient,
    network: Network,
    /// Whether bitcoind has a synced `-txindex`; `None` until known for good (a
    /// txindex still syncing is asked again).
    tx_index: Mutex<Option<bool>>,
}

impl FollowSource {
    /// Connects to the bitcoind at `url` (`http://host:port`) with default limits.
    /// See [`FollowSource::connect_with`].
    pub fn connect(
        url: &str,
        auth: RpcAuth,
        network: Network,
    ) -> Result<FollowSource, FollowError> {
        FollowSource::connect_with(url, auth, network, HttpLimits::default())
    }

    /// Connects with explicit timeouts and size bound, and checks before anything
    /// relies on it that the node runs `network`, accepts the credentials and
    /// serves the REST endpoints follow mode reads.
    pub fn connect_with(
        url: &str,
        auth: RpcAuth,
        network: Network,
        limits: HttpLimits,
    ) -> Result<FollowSource, FollowError> {
        let source = FollowSource {
            rpc: RpcClient::new(url, auth, limits)?,
            network,
            tx_index: Mutex::new(None),
        };
        source.check_network()?;
        source.check_rest()?;
        Ok(source)
    }

    /// The node's URL, for messages.
    pub fn url(&self) -> String {
        self.rpc.url()
    }

    /// The RPC client, for the follower's long-poll.
    pub(crate) fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    fn check_network(&self) -> Result<(), FollowError> {
        let info = self.rpc.call("getblockchaininfo", &[])?;
        let chain = info
            .get("chain")
            .and_then(Value::as_str)
            .ok_or_else(|| FollowError::Protocol("getblockchaininfo has no 'chain'".into()))?;
        if chain != self.network.name() {
            return Err(FollowError::WrongNetwork {
                url: self.url(),
                expected: self.network,
                found: chain.to_string(),
            });
        }
        Ok(())
    }

    /// REST must be on, and recent enough to serve spent outputs: probed on the
    /// genesis block, whose answer is two bytes.
    fn check_rest(&self) -> Result<(), FollowError> {
        let info = self.rpc.get("/rest/chaininfo.json")?;
        if matches!(info.status, 403 | 404) {
            return Err(FollowError::RestDisabled {
                url: self.url(),
                status: info.status,
            });
        }
        info.into_success("GET /rest/chaininfo.json")?;
        let genesis = self.network.genesis_hash();
        let path = format!("/rest/spenttxouts/{genesis}.bin");
        let spent = self.rpc.get(&path)?;
        if spent.status == 404 && spent.body.is_empty() {
            return Err(FollowError::NoSpentTxouts {
                url: self.url(),
                status: spent.status,
            });
        }
        let spent = spent.into_success(&format!("GET {path}"))?;
        match decode_rest_spent_txouts(&spent.body) {
            Ok(lists) if lists == vec![Vec::new()] => Ok(()),
            _ => Err(FollowError::Protocol(format!(
                "GET {path} is not the genesis block's empty spent-output list: {}",
                excerpt(&spent.body)
            ))),
        }
    }

    /// The tip of bitcoind's active chain. The height comes from the tip's own
    /// header, so the pair is consistent even if the tip moves meanwhile.
    pub fn best_block(&self) -> Result<ChainTip, FollowError> {
        let hash = parse_hash(&self.rpc.call("getbestblockhash", &[])?, "getbestblockhash")?;
        let link = self
            .header_link(&hash)?
            .ok_or_else(|| FollowError::Protocol(format!("the best block {hash} has no header")))?;
        Ok(ChainTip {
            height: link.height,
            hash,
        })
    }

    /// Has bitcoind write its UTXO set to `chainstate/` now, returning once it
    /// is written. `gettxoutsetinfo` flushes before anything else
    /// (`ForceFlushStateToDisk` in rpc/blockchain.cpp); asked for a block height
    /// on a node without `-coinstatsindex`, it then refuses the height with
    /// RPC_INVALID_PARAMETER instead of walking the whole UTXO set (minutes on
    /// mainnet), and with the index it answers from the index. Either answer
    /// means the chainstate was written. The wait is long: a node with a large,
    /// dirty cache writes gigabytes.
    pub fn flush_chainstate(&self) -> Result<(), FollowError> {
        let params = [json!("none"), json!(0), json!(true)];
        let mut conn = self.rpc.dedicated_connection();
        match self
            .rpc
            .call_on(&mut conn, "gettxoutsetinfo", &params, FLUSH_TIMEOUT)
        {
            Ok(_) => Ok(()),
            Err(FollowError::Rpc { error, .. }) if error.code == RPC_INVALID_PARAMETER => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Height and parent of a block, `None` if bitcoind does not know it.
    pub fn header_link(&self, hash: &BlockHash) -> Result<Option<HeaderLink>, FollowError> {
        let Some(v) = self.header_json(hash)? else {
            return Ok(None);
        };
        let height = v
            .get("height")
            .and_then(Value::as_u64)
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| {
                FollowError::Protocol(format!("getblockheader {hash}: no valid 'height'"))
            })?;
        let prev = match v.get("previousblockhash") {
            None if height == 0 => None,
            Some(p) => Some(parse_hash(p, "getblockheader previousblockhash")?),
            None => {
                return Err(FollowError::Protocol(format!(
                    "getblockheader {hash}: no 'previousblockhash' at height {height}"
                )))
            }
        };
        Ok(Some(HeaderLink { height, prev }))
    }

    /// `getblockheader <hash> true`, `None` for an unknown block.
    fn header_json(&self, hash: &BlockHash) -> Result<Option<Value>, FollowError> {
        not_found_as_none(
            self.rpc
                .call("getblockheader", &[json!(hash.to_string()), json!(true)]),
            RPC_INVALID_ADDRESS_OR_KEY,
        )
    }

    /// The body of `GET /rest/<kind>/<hash>.bin`. bitcoind answers 404 with a reason
    /// starting with the hash for a block it does not have (unknown, pruned, no
    /// undo data): that is `NotFound`. A 404 with no body means the endpoint itself
    /// is missing.
    fn rest_bytes(&self, kind: &str, hash: &BlockHash) -> Result<Vec<u8>, SourceError> {
        let path = format!("/rest/{kind}/{hash}.bin");
        let resp = self.rpc.get(&path)?;
        match resp.status {
            200 => Ok(resp.body),
            404 if !resp.body.is_empty() => Err(SourceError::NotFound(format!(
                "bitcoind at {}: {}",
                self.url(),
                excerpt(&resp.body)
            ))),
            404 => Err(SourceError::Unavailable(format!(
                "bitcoind at {} does not serve /rest/{kind}/ (was it restarted without -rest?)",
                self.url()
            ))),
            status => Err(SourceError::Unavailable(format!(
                "GET {path} from bitcoind at {}: HTTP status {status}: {}",
                self.url(),
                excerpt(&resp.body)
            ))),
        }
    }

    /// A confirmed transaction's bytes; `getrawtransaction` also finds mempool
    /// transactions, so the verbose form tells confirmed ones by their block.
    fn confirmed_tx(&self, txid: &Txid) -> Result<Option<(Vec<u8>, Transaction)>, SourceError> {
        if !self.has_tx_index() {
            return Err(SourceError::Unsupported(format!(
                "bitcoind at {} has no synced transaction index (start it with -txindex)",
                self.url()
            )));
        }
        let reply = not_found_as_none(
            self.rpc
                .call("getrawtransaction", &[json!(txid.to_string()), json!(true)]),
            RPC_INVALID_ADDRESS_OR_KEY,
        )?;
        let Some(v) = reply else {
            return Ok(None);
        };
        // Mempool transactions have no block; those of a stale block have zero
        // confirmations.
        let in_block = v.get("blockhash").is_some();
        let confirmations = v.get("confirmations").and_then(Value::as_i64).unwrap_or(0);
        if !in_block || confirmations < 1 {
            return Ok(None);
        }
        let bytes = v
            .get("hex")
            .and_then(Value::as_str)
            .and_then(|h| hex_bytes(h).ok())
            .ok_or_else(|| {
                SourceError::Corrupt(format!("getrawtransaction {txid}: no valid 'hex'"))
            })?;
        let tx: Transaction = bitcoin::consensus::deserialize(&bytes)
            .map_err(|e| SourceError::Corrupt(format!("transaction {txid} from bitcoind: {e}")))?;
        if tx.compute_txid() != *txid {
            return Err(SourceError::Corrupt(format!(
                "bitcoind returned transaction {} for {txid}",
                tx.compute_txid()
            )));
        }
        Ok(Some((bytes, tx)))
    }

    /// `getrawmempool false true`: every txid in the mempool and the mempool's
    /// sequence number, read together under the mempool's lock.
    pub fn mempool_txids(&self) -> Result<MempoolListing, FollowError> {
        let v = self
            .rpc
            .call("getrawmempool", &[json!(false), json!(true)])?;
        let sequence = v
            .get("mempool_sequence")
            .and_then(Value::as_u64)
            .ok_or_else(|| FollowError::Protocol("getrawmempool: no 'mempool_sequence'".into()))?;
        let list = v
            .get("txids")
            .and_then(Value::as_array)
            .ok_or_else(|| FollowError::Protocol("getrawmempool: no 'txids' array".into()))?;
        let txids = list
            .iter()
            .map(|t| {
                t.as_str()
                    .and_then(|s| Txid::from_str(s).ok())
                    .ok_or_else(|| FollowError::Protocol(format!("getrawmempool: not a txid: {t}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MempoolListing { txids, sequence })
    }

    /// What `getmempoolinfo` says that changes with any change of the mempool
    /// (count, bytes, memory use, fees): a cheap test for "nothing moved" before
    /// listing every txid.
    pub fn mempool_fingerprint(&self) -> Result<String, FollowError> {
        let v = self.rpc.call("getmempoolinfo", &[])?;
        let field = |k: &str| v.get(k).map(Value::to_string).unwrap_or_default();
        Ok(format!(
            "{}/{}/{}/{}/{}",
            field("size"),
            field("bytes"),
            field("usage"),
            field("total_fee"),
            field("mempoolminfee")
        ))
    }

    /// Whether the mempool is trimming by size: its minimum fee is above the
    /// relay minimum only after evictions (`TrimToSize` raises it).
    pub fn mempool_is_trimming(&self) -> Result<bool, FollowError> {
        let v = self.rpc.call("getmempoolinfo", &[])?;
        let sats = |k: &str| {
            v.get(k)
                .and_then(Value::as_f64)
                .map(|btc| (btc * 1e8).round() as i64)
        };
        Ok(matches!((sats("mempoolminfee"), sats("minrelaytxfee")), (Some(m), Some(r)) if m > r))
    }

    /// For each outpoint, the mempool transaction spending it, if any
    /// (`gettxspendingprevout`, Bitcoin Core 24+).
    pub fn mempool_spenders(&self, outpoints: &[bitcoin::OutPoint]) -> Result<Vec<Option<Txid>>, FollowError> {
        let ask: Vec<Value> = outpoints
            .iter()
            .map(|o| json!({"txid": o.txid.to_string(), "vout": o.vout}))
            .collect();
        let v = self.rpc.call("gettxspendingprevout", &[Value::Array(ask)])?;
        let list = v
            .as_array()
            .filter(|l| l.len() == outpoints.len())
            .ok_or_else(|| FollowError::Protocol(format!("gettxspendingprevout: expected {} entries, got {v}", outpoints.len())))?;
        Ok(list
            .iter()
            .map(|e| {
                e.get("spendingtxid")
                    .and_then(Value::as_str)
                    .and_then(|s| Txid::from_str(s).ok())
            })
            .collect())
    }

    /// A mempool transaction's bytes (`GET /rest/tx/<txid>.bin`); `None` when it
    /// is not in the mempool (any more) and not findable otherwise.
    pub fn mempool_tx(&self, txid: &Txid) -> Result<Option<Vec<u8>>, SourceError> {
        let path = format!("/rest/tx/{txid}.bin");
        let resp = self.rpc.get(&path)?;
        match resp.status {
            200 => Ok(Some(resp.body)),
            404 => Ok(None),
            status => Err(SourceError::Unavailable(format!(
                "GET {path} from bitcoind at {}: HTTP status {status}: {}",
                self.url(),
                excerpt(&resp.body)
            ))),
        }
    }

    /// The confirmed coins at `outpoints` from bitcoind's UTXO set (REST
    /// `getutxos` without `checkmempool`, 15 outpoints a request, bitcoind's
    /// limit), with the tip they were read at; `None` for a coin that is not
    /// there (spent in a block, or never confirmed).
    pub fn confirmed_coins(
        &self,
        outpoints: &[bitcoin::OutPoint],
    ) -> Result<Vec<Option<(u32, bitcoin::TxOut)>>, SourceError> {
        let mut out = Vec::with_capacity(outpoints.len());
        for chunk in outpoints.chunks(MAX_GETUTXOS) {
            let mut path = String::from("/rest/getutxos");
            for o in chunk {
                path.push_str(&format!("/{}-{}", o.txid, o.vout));
            }
            path.push_str(".bin");
            let resp = self.rpc.get(&path)?;
            if resp.status != 200 {
                return Err(SourceError::Unavailable(format!(
                    "GET {path} from bitcoind at {}: HTTP status {}: {}",
                    self.url(),
                    resp.status,
                    excerpt(&resp.body)
                )));
            }
            let coins = decode_getutxos(&resp.body, chunk.len()).map_err(|e| {
                SourceError::Corrupt(format!("GET {path} from bitcoind at {}: {e}", self.url()))
            })?;
            out.extend(coins);
        }
        Ok(out)
    }

    fn tx_index_cache(&self) -> MutexGuard<'_, Option<bool>> {
        self.tx_index.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// bitcoind's limit on outpoints per REST `getutxos` request.
const MAX_GETUTXOS: usize = 15;

/// `getrawmempool false true`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolListing {
    pub txids: Vec<Txid>,
    /// Bitcoin Core's mempool sequence: it moves on every add and removal.
    pub sequence: u64,
}

/// Decodes REST `getutxos` (BIP 64): int32 height, 32-byte tip hash, the hit
/// bitmap (CompactSize length + bytes, bit i = outpoint i found), then the found
/// coins (CompactSize count; each uint32 0, uint32 height, CTxOut) in order.
pub fn decode_getutxos(
    bytes: &[u8],
    asked: usize,
) -> Result<Vec<Option<(u32, bitcoin::TxOut)>>, String> {
    use bitcoin::consensus::Decodable;
    let mut r = bytes;
    let skip = |n: usize, r: &mut &[u8]| -> Result<(), String> {
        if r.len() < n {
            return Err("truncated".into());
        }
        *r = &r[n..];
        Ok(())
    };
    skip(4 + 32, &mut r)?;
    let bitmap: Vec<u8> = Decodable::consensus_decode(&mut r).map_err(|e| format!("bitmap: {e}"))?;
    if bitmap.len() != asked.div_ceil(8) {
        return Err(format!("a bitmap of {} bytes for {asked} outpoints", bitmap.len()));
    }
    let hits: Vec<bool> = (0..asked).map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0).collect();
    let count = bitcoin::VarInt::consensus_decode(&mut r).map_err(|e| format!("coin count: {e}"))?.0;
    let found = hits.iter().filter(|h| **h).count();
    if count != found as u64 {
        return Err(format!("{count} coins for {found} hits"));
    }
    let mut out = Vec::with_capacity(asked);
    for hit in hits {
        if !hit {
            out.push(None);
            continue;
        }
        skip(4, &mut r)?;
        let height = u32::consensus_decode(&mut r).map_err(|e| format!("coin height: {e}"))?;
        let txout = bitcoin::TxOut::consensus_decode(&mut r).map_err(|e| format!("coin: {e}"))?;
        out.push(Some((height, txout)));
    }
    if !r.is_empty() {
        return Err(format!("{} bytes after the coins", r.len()));
    }
    Ok(out)
}

/// An RPC error with `code` is an answer of "none", not a failure.
fn not_found_as_none(
    r: Result<Value, FollowError>,
    code: i64,
) -> Result<Option<Value>, FollowError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.rpc_code() == Some(code) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_hash(v: &Value, what: &str) -> Result<BlockHash, FollowError> {
    v.as_str()
        .and_then(|s| BlockHash::from_str(s).ok())
        .ok_or_else(|| FollowError::Protocol(format!("{what}: not a block hash: {v}")))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, ()> {
    use bitcoin::hex::FromHex;
    Vec::<u8>::from_hex(s).map_err(|_| ())
}

impl ChainSource for FollowSource {
    fn network(&self) -> Network {
        self.network
    }

    fn tip(&self) -> Result<ChainTip, SourceError> {
        Ok(self.best_block()?)
    }

    fn hash_at_height(&self, height: u32) -> Result<Option<BlockHash>, SourceError> {
        let reply = not_found_as_none(
            self.rpc.call("getblockhash", &[json!(height)]),
            RPC_INVALID_PARAMETER,
        )?;
        match reply {
            Some(v) => Ok(Some(parse_hash(&v, "getblockhash")?)),
            None => Ok(None),
        }
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        let bytes = self.block_bytes(hash)?;
        let corrupt =
            |why: String| SourceError::Corrupt(format!("block {hash} from bitcoind: {why}"));
        let block: Block =
            bitcoin::consensus::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if block.block_hash() != *hash {
            return Err(corrupt(format!(
                "the bytes are block {}",
                block.block_hash()
            )));
        }
        if !block.check_merkle_root() || !block.check_witness_commitment() {
            return Err(corrupt("transactions do not match the header".into()));
        }
        Ok(block)
    }

    fn spent_outputs(&self, hash: &BlockHash) -> Result<BlockSpent, SourceError> {
        let bytes = self.rest_bytes("spenttxouts", hash)?;
        decode_rest_spent_txouts(&bytes).map_err(|e| {
            SourceError::Corrupt(format!("spent outputs of block {hash} from bitcoind: {e}"))
        })
    }

    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderInfo>, SourceError> {
        let reply = not_found_as_none(
            self.rpc
                .call("getblockheader", &[json!(hash.to_string()), json!(false)]),
            RPC_INVALID_ADDRESS_OR_KEY,
        )?;
        let Some(v) = reply else {
            return Ok(None);
        };
        let header: Header = v
            .as_str()
            .and_then(|h| hex_bytes(h).ok())
            .and_then(|b| bitcoin::consensus::deserialize(&b).ok())
            .ok_or_else(|| {
                SourceError::Corrupt(format!("getblockheader {hash} false: not a header: {v}"))
            })?;
        if header.block_hash() != *hash {
            return Err(SourceError::Corrupt(format!(
                "bitcoind returned header {} for {hash}",
                header.block_hash()
            )));
        }
        let Some(link) = self.header_link(hash)? else {
            return Ok(None);
        };
        Ok(Some(HeaderInfo {
            header,
            height: link.height,
        }))
    }

    fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, SourceError> {
        Ok(self.confirmed_tx(txid)?.map(|(_, tx)| tx))
    }

    /// Asks `getindexinfo txindex` and caches the answer once it is final: no index
    /// (a restart would be needed to add one) or a synced one.
    fn has_tx_index(&self) -> bool {
        if let Some(known) = *self.tx_index_cache() {
            return known;
        }
        let Ok(info) = self.rpc.call("getindexinfo", &[json!("txindex")]) else {
            return false;
        };
        let synced = match info.get("txindex") {
            None => Some(false),
            Some(t) if t.get("synced").and_then(Value::as_bool) == Some(true) => Some(true),
            Some(_) => None,
        };
        *self.tx_index_cache() = synced;
        synced.unwrap_or(false)
    }
}

impl HostChain for FollowSource {
    fn block_bytes(&self, hash: &BlockHash) -> Result<Vec<u8>, SourceError> {
        self.rest_bytes("block", hash)
    }

    fn spent_bytes(&self, hash: &BlockHash) -> Result<SpentBytes, SourceError> {
        Ok(SpentBytes {
            format: SpentFormat::Rest,
            bytes: self.rest_bytes("spenttxouts", hash)?,
        })
    }

    fn transaction_bytes(&self, txid: &Txid) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.confirmed_tx(txid)?.map(|(bytes, _)| bytes))
    }
}

// Both the plugin's sync thread and the follower's thread use one source.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FollowSource>();
};
