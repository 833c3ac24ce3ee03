//! A running bitcoind as the index's chain source: the active chain and headers
//! through JSON-RPC, blocks and their spent outputs through REST's binary
//! endpoints (the exact bytes the plugin ABI carries, with no JSON or hex detour).

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

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

    fn tx_index_cache(&self) -> MutexGuard<'_, Option<bool>> {
        self.tx_index.lock().unwrap_or_else(|e| e.into_inner())
    }
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
