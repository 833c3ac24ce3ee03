//! `NativeClient`: one connection to opnet.sock, shared by the requests, the UTXO
//! cursors and the event stream made from it. `close()` ends every pending call
//! (the event stream's and cursors' waits resolve to `null`), so nothing keeps
//! Node's event loop alive afterwards.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::consensus::serialize;
use napi::bindgen_prelude::BigInt;
use napi::Result;
use napi_derive::napi;
use opnet::client::{
    display_hash, parse_display_hash, parse_target, to_hex, Client, ClientOptions,
};
use opnet::protocol::{
    BlockRef, BlockSelector, Cursor, Sort, SubscribeFrom, UtxoQuery, KIND_BLOCKS, KIND_MEMPOOL,
    KIND_SCRIPTHASHES,
};
use opnet::Network;
use tokio::sync::watch;

use crate::convert::{self, JsBlockRef, JsSyncStatus, JsUtxoPage};
use crate::cursor::NativeUtxoCursor;
use crate::error::{self, invalid};
use crate::events::NativeEventStream;

/// What a connection needs to know about itself.
pub(crate) struct State {
    pub client: Mutex<Option<Client>>,
    /// Set once by close(); every wait also watches it.
    pub closed: watch::Sender<bool>,
    pub network: Network,
}

impl State {
    pub fn client(&self) -> Result<Client> {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(error::closed)
    }
}

/// How to connect (index.d.ts `ConnectOptions`).
#[napi(object)]
pub struct NativeConnectOptions {
    pub client_name: Option<String>,
    pub network: Option<String>,
    pub reconnect: Option<bool>,
    pub connect_timeout_ms: Option<u32>,
}

/// A UTXO query's options (index.d.ts `UtxoQueryOptions`; index.js has turned
/// `minValue` into a BigInt).
#[napi(object)]
pub struct NativeQueryOptions {
    pub limit: Option<u32>,
    pub min_value: Option<BigInt>,
    pub max_height: Option<u32>,
    pub min_confirmations: Option<u32>,
    pub sort: Option<String>,
    pub include_mempool: Option<bool>,
    pub cursor: Option<String>,
}

/// A transaction.
#[napi(object, use_nullable = true)]
pub struct JsTransaction {
    pub txid: String,
    pub hex: String,
    pub block: Option<JsBlockRef>,
}

/// A block's txids.
#[napi(object)]
pub struct JsBlockTxids {
    pub block: JsBlockRef,
    pub txids: Vec<String>,
}

/// A block header, decoded.
#[napi(object)]
pub struct JsBlockHeader {
    pub block: JsBlockRef,
    pub hex: String,
    pub prev_hash: String,
    pub merkle_root: String,
    pub time: u32,
    pub bits: u32,
    pub nonce: u32,
    pub version: i32,
}

fn parse_network(s: &str) -> Result<Network> {
    s.parse().map_err(|_| {
        invalid(format!(
            "unknown network '{s}' (main, test, testnet4, signet, regtest)"
        ))
    })
}

fn query(
    target: &str,
    network: Network,
    o: Option<NativeQueryOptions>,
) -> Result<(UtxoQuery, Option<Cursor>)> {
    let scripthash = parse_target(target, network).map_err(invalid)?;
    let o = o.unwrap_or(NativeQueryOptions {
        limit: None,
        min_value: None,
        max_height: None,
        min_confirmations: None,
        sort: None,
        include_mempool: None,
        cursor: None,
    });
    let min_value = match &o.min_value {
        Some(b) => {
            let (negative, v, lossless) = b.get_u64();
            if negative || !lossless {
                return Err(invalid("minValue must be between 0 and 2^64-1 sats"));
            }
            v
        }
        None => 0,
    };
    let sort = match o.sort.as_deref() {
        None | Some("outpoint") => Sort::Outpoint,
        Some("value") => Sort::ValueDesc,
        Some("height") => Sort::HeightAsc,
        Some("heightDesc") => Sort::HeightDesc,
        Some(other) => {
            return Err(invalid(format!(
                "sort must be 'outpoint', 'value', 'height' or 'heightDesc', not '{other}'"
            )))
        }
    };
    let cursor = match &o.cursor {
        Some(c) => Some(Cursor(
            opnet::client::from_hex(c).map_err(|e| invalid(format!("cursor: {e}")))?,
        )),
        None => None,
    };
    Ok((
        UtxoQuery {
            scripthash,
            limit: o.limit.unwrap_or(0),
            min_value,
            max_height: o.max_height,
            min_confirmations: o.min_confirmations.unwrap_or(0),
            sort,
            include_mempool: o.include_mempool.unwrap_or(false),
        },
        cursor,
    ))
}

fn selector(height: Option<u32>, hash: Option<String>) -> Result<BlockSelector> {
    match (height, hash) {
        (Some(h), None) => Ok(BlockSelector::Height(h)),
        (None, Some(s)) => Ok(BlockSelector::Hash(
            parse_display_hash(&s).map_err(|e| invalid(format!("block hash: {e}")))?,
        )),
        _ => Err(invalid("a block is a height or a hash")),
    }
}

fn scripthashes(targets: &[String], network: Network) -> Result<Vec<[u8; 32]>> {
    targets
        .iter()
        .map(|t| parse_target(t, network).map_err(invalid))
        .collect()
}

/// A connection to opnet.sock (wrapped by index.js's `OpnetClient`).
#[napi]
pub struct NativeClient {
    state: Arc<State>,
    server_name: String,
}

#[napi]
impl NativeClient {
    /// Connects and says HELLO.
    #[napi(factory)]
    pub async fn connect(
        path: String,
        options: Option<NativeConnectOptions>,
    ) -> Result<NativeClient> {
        let mut opts = ClientOptions {
            client_name: format!("opnet-native/{}", env!("CARGO_PKG_VERSION")),
            reconnect: true,
            connect_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        };
        if let Some(o) = options {
            if let Some(n) = o.client_name {
                opts.client_name = n;
            }
            if let Some(n) = o.network {
                opts.network = Some(parse_network(&n)?);
            }
            if let Some(r) = o.reconnect {
                opts.reconnect = r;
            }
            if let Some(ms) = o.connect_timeout_ms {
                opts.connect_timeout = Duration::from_millis(u64::from(ms.max(1)));
            }
        }
        let client = Client::connect(&path, opts).await.map_err(error::client)?;
        let network = client.network().ok_or_else(|| {
            error::coded("ERR_PROTOCOL", "the server announced an unknown network")
        })?;
        let server_name = client.hello().server_name.clone();
        let (closed, _) = watch::channel(false);
        Ok(NativeClient {
            state: Arc::new(State {
                client: Mutex::new(Some(client)),
                closed,
                network,
            }),
            server_name,
        })
    }

    /// The server's network.
    #[napi(getter)]
    pub fn network(&self) -> String {
        self.state.network.name().to_string()
    }

    /// The server's name and version.
    #[napi(getter)]
    pub fn server_name(&self) -> String {
        self.server_name.clone()
    }

    #[napi]
    pub async fn sync_status(&self) -> Result<JsSyncStatus> {
        let client = self.state.client()?;
        let s = client.sync_status().await.map_err(error::client)?;
        Ok(convert::sync_status(&s))
    }

    /// One page (QUERY_UTXOS_PAGINATED), with the cursor of the next.
    #[napi]
    pub async fn query_utxos(
        &self,
        target: String,
        options: Option<NativeQueryOptions>,
    ) -> Result<JsUtxoPage> {
        let (q, cursor) = query(&target, self.state.network, options)?;
        let client = self.state.client()?;
        let page = client.query_page(q, cursor).await.map_err(error::client)?;
        Ok(convert::page(&page))
    }

    /// Every page of a query, one `next()` at a time.
    #[napi]
    pub fn utxo_cursor(
        &self,
        target: String,
        options: Option<NativeQueryOptions>,
    ) -> Result<NativeUtxoCursor> {
        let (q, cursor) = query(&target, self.state.network, options)?;
        if cursor.is_some() {
            return Err(invalid(
                "utxos() and utxoStream() start at the first page; use queryUtxos() with a cursor",
            ));
        }
        let client = self.state.client()?;
        Ok(NativeUtxoCursor::new(
            client.utxo_stream(q),
            self.state.closed.subscribe(),
        ))
    }

    #[napi]
    pub async fn block_txids(
        &self,
        height: Option<u32>,
        hash: Option<String>,
    ) -> Result<JsBlockTxids> {
        let sel = selector(height, hash)?;
        let client = self.state.client()?;
        let r = client.block_txids(sel).await.map_err(error::client)?;
        Ok(JsBlockTxids {
            block: convert::block_always(&r.block),
            txids: r.txids.iter().map(display_hash).collect(),
        })
    }

    #[napi]
    pub async fn transaction(
        &self,
        txid: String,
        block_hash: Option<String>,
    ) -> Result<JsTransaction> {
        let id = parse_display_hash(&txid).map_err(|e| invalid(format!("txid: {e}")))?;
        let block = match block_hash {
            Some(h) => {
                Some(parse_display_hash(&h).map_err(|e| invalid(format!("block hash: {e}")))?)
            }
            None => None,
        };
        let client = self.state.client()?;
        let r = client.transaction(id, block).await.map_err(error::client)?;
        Ok(JsTransaction {
            txid: display_hash(&id),
            hex: to_hex(&r.raw),
            block: convert::block(&r.block),
        })
    }

    #[napi]
    pub async fn block_header(
        &self,
        height: Option<u32>,
        hash: Option<String>,
    ) -> Result<JsBlockHeader> {
        let sel = selector(height, hash)?;
        let client = self.state.client()?;
        let r = client.block_header(sel).await.map_err(error::client)?;
        let h = r.decode().map_err(error::client)?;
        Ok(JsBlockHeader {
            block: convert::block_always(&r.block),
            hex: to_hex(&serialize(&h)),
            prev_hash: h.prev_blockhash.to_string(),
            merkle_root: h.merkle_root.to_string(),
            time: h.time,
            bits: h.bits.to_consensus(),
            nonce: h.nonce,
            version: h.version.to_consensus(),
        })
    }

    /// Starts (or replaces) the subscription to the chosen kinds, live or replayed
    /// from an event number or a block.
    #[napi]
    pub async fn subscribe(
        &self,
        blocks: bool,
        mempool: bool,
        scripthashes: bool,
        from_seq: Option<BigInt>,
        from_block: Option<JsBlockRef>,
    ) -> Result<NativeEventStream> {
        let mut kinds = 0u8;
        if blocks {
            kinds |= KIND_BLOCKS;
        }
        if mempool {
            kinds |= KIND_MEMPOOL;
        }
        if scripthashes {
            kinds |= KIND_SCRIPTHASHES;
        }
        if kinds == 0 {
            return Err(invalid(
                "subscribe to at least one of blocks, mempool, scripthashes",
            ));
        }
        let from = match (from_seq, from_block) {
            (Some(_), Some(_)) => return Err(invalid("give fromSeq or fromBlock, not both")),
            (Some(s), None) => {
                let (negative, v, lossless) = s.get_u64();
                if negative || !lossless {
                    return Err(invalid("fromSeq must be between 0 and 2^64-1"));
                }
                SubscribeFrom::AfterSeq(v)
            }
            (None, Some(b)) => SubscribeFrom::AfterBlock(BlockRef {
                height: b.height,
                hash: parse_display_hash(&b.hash)
                    .map_err(|e| invalid(format!("fromBlock.hash: {e}")))?,
            }),
            (None, None) => SubscribeFrom::Now,
        };
        let client = self.state.client()?;
        let stream = client.subscribe(kinds, from).await.map_err(error::client)?;
        Ok(NativeEventStream::new(
            stream,
            self.state.closed.subscribe(),
        ))
    }

    #[napi]
    pub async fn subscribe_scripthashes(&self, targets: Vec<String>) -> Result<u32> {
        let list = scripthashes(&targets, self.state.network)?;
        let client = self.state.client()?;
        let r = client
            .subscribe_scripthashes(&list)
            .await
            .map_err(error::client)?;
        Ok(r.total)
    }

    #[napi]
    pub async fn unsubscribe_scripthashes(&self, targets: Vec<String>) -> Result<u32> {
        let list = scripthashes(&targets, self.state.network)?;
        let client = self.state.client()?;
        let r = client
            .unsubscribe_scripthashes(&list)
            .await
            .map_err(error::client)?;
        Ok(r.total)
    }

    /// Ends the connection: pending waits resolve to null, later calls fail with
    /// ERR_CLOSED.
    #[napi]
    pub fn close(&self) {
        let _ = self.state.closed.send(true);
        self.state
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

/// The scripthash (hex) of an address or a scriptPubKey, as the server computes it.
// Registered with Node by the macro; a test build sees no caller.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn script_hash(address_or_script: String, network: Option<String>) -> Result<String> {
    let network = match network {
        Some(n) => parse_network(&n)?,
        None => Network::Main,
    };
    parse_target(&address_or_script, network)
        .map(|sh| to_hex(&sh))
        .map_err(invalid)
}
