//! A fake bitcoind for follow-mode tests: the JSON-RPC and REST answers a stock
//! Bitcoin Core 30+ started with `-rest -txindex` gives, over the fixture's REAL
//! recorded bytes (`testdata/regtest-small/chain.json`: every block's raw bytes and
//! the exact `GET /rest/spenttxouts/<hash>.bin` body bitcoind returned).
//!
//! Its active chain is scripted by the recorded connect/disconnect events:
//! [`FakeBitcoind::set_tip_after_steps`] applies the first `n` of them and moves
//! the tip in one jump, as a real node does after a reorg (a follower waiting at
//! branch A's tip sees branch B's tip appear at once). It speaks HTTP/1.1 with
//! keep-alive on 127.0.0.1, a thread per connection; it checks Basic auth on RPC
//! (not on REST, like Core); `waitfornewblock` blocks on a condition variable until
//! the tip changes or its timeout passes. Every request is logged
//! ([`FakeBitcoind::requests`]) so tests can prove e.g. that an idle follower only
//! long-polls. [`FakeBitcoind::kill`] makes it die like a crashed node: waiting
//! long-polls are cut off unanswered and new connections are refused.
//!
//! Self-contained (it needs `bitcoin` and `serde_json` only), so other test files —
//! the plugin's, with the real loader — can include it through `#[path]`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bitcoin::{BlockHash, Txid};
use serde_json::{json, Value};

/// One recorded block and the bytes bitcoind served for it.
#[derive(Clone, Debug)]
pub struct FakeBlock {
    pub hash: BlockHash,
    pub height: u32,
    pub prev: Option<BlockHash>,
    /// The block in consensus serialization (`GET /rest/block/<hash>.bin`).
    pub raw: Vec<u8>,
    /// The body of `GET /rest/spenttxouts/<hash>.bin`.
    pub spent_rest: Vec<u8>,
}

/// One recorded chain event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeEvent {
    Connect(BlockHash),
    Disconnect(BlockHash),
}

/// The fixture's recorded chain, genesis included.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub blocks: HashMap<BlockHash, FakeBlock>,
    pub events: Vec<FakeEvent>,
    /// Raw mempool transactions at the end of the recording.
    pub mempool: Vec<Vec<u8>>,
    /// Every transaction of every block: txid → (block, raw bytes).
    pub txs: HashMap<Txid, (BlockHash, Vec<u8>)>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("fixture hex"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads `testdata/regtest-small/chain.json` (fixture data: panics if broken).
pub fn load_recorded() -> Recorded {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/regtest-small/chain.json");
    let text = std::fs::read_to_string(&path).expect("read chain.json");
    let v: Value = serde_json::from_str(&text).expect("parse chain.json");
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
    let mut blocks = HashMap::new();
    blocks.insert(
        genesis.block_hash(),
        FakeBlock {
            hash: genesis.block_hash(),
            height: 0,
            prev: None,
            raw: bitcoin::consensus::serialize(&genesis),
            // One transaction (the coinbase), spending nothing: what Core answers.
            spent_rest: vec![1, 0],
        },
    );
    for b in v["blocks"].as_array().expect("blocks") {
        let field = |k: &str| b[k].as_str().expect("block field");
        let hash: BlockHash = field("hash").parse().expect("hash");
        blocks.insert(
            hash,
            FakeBlock {
                hash,
                height: b["height"].as_u64().expect("height") as u32,
                prev: Some(field("prev").parse().expect("prev")),
                raw: unhex(field("raw")),
                spent_rest: unhex(field("spent_outputs_rest_bin")),
            },
        );
    }
    let events = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let hash: BlockHash = e[1].as_str().expect("event hash").parse().expect("hash");
            match e[0].as_str() {
                Some("connect") => FakeEvent::Connect(hash),
                Some("disconnect") => FakeEvent::Disconnect(hash),
                other => panic!("unknown event {other:?}"),
            }
        })
        .collect();
    let mempool = v["mempool"]
        .as_array()
        .expect("mempool")
        .iter()
        .map(|t| unhex(t.as_str().expect("mempool tx")))
        .collect();
    let mut txs = HashMap::new();
    for b in blocks.values() {
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&b.raw).expect("block");
        for tx in &block.txdata {
            txs.insert(
                tx.compute_txid(),
                (b.hash, bitcoin::consensus::serialize(tx)),
            );
        }
    }
    Recorded {
        blocks,
        events,
        mempool,
        txs,
    }
}

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    pub user: String,
    pub password: String,
    /// `getblockchaininfo`'s `chain`.
    pub chain: String,
    /// `-txindex` (synced).
    pub txindex: bool,
    /// `-rest`.
    pub rest: bool,
    /// Whether `/rest/spenttxouts` exists (Core 30+).
    pub spenttxouts: bool,
    /// Whether `waitfornewblock` takes `current_tip` (recent Core); without it
    /// the fake answers an extra argument as an older Core does.
    pub current_tip_param: bool,
    /// Send REST bodies with `Transfer-Encoding: chunked`.
    pub chunked_rest: bool,
    /// Close each connection after one response without announcing it, as
    /// bitcoind does with connections idle longer than `-rpcservertimeout`.
    pub close_after_response: bool,
}

impl Default for FakeConfig {
    fn default() -> FakeConfig {
        FakeConfig {
            user: "user".into(),
            password: "pass".into(),
            chain: "regtest".into(),
            txindex: true,
            rest: true,
            spenttxouts: true,
            current_tip_param: true,
            chunked_rest: false,
            close_after_response: false,
        }
    }
}

struct State {
    config: FakeConfig,
    /// The active chain, index = height.
    active: Vec<BlockHash>,
    steps: usize,
    dead: bool,
    /// Long-polls waiting right now.
    pollers: usize,
    log: Vec<String>,
}

struct Shared {
    recorded: Recorded,
    state: Mutex<State>,
    /// Signalled on every tip change, poller change and death.
    changed: Condvar,
    conns: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running fake (see the module doc). Dropping it kills it.
pub struct FakeBitcoind {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FakeBitcoind {
    /// A fake at genesis with `config`.
    pub fn start(config: FakeConfig) -> FakeBitcoind {
        FakeBitcoind::start_with(load_recorded(), config)
    }

    /// A fake over an already loaded recording, on a free port.
    pub fn start_with(recorded: Recorded, config: FakeConfig) -> FakeBitcoind {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        FakeBitcoind::start_on(any_port, recorded, config)
    }

    /// A fake listening on `addr`: a restarted node on the port of a killed one.
    pub fn start_on(addr: SocketAddr, recorded: Recorded, config: FakeConfig) -> FakeBitcoind {
        let listener = TcpListener::bind(addr).expect("bind the fake's address");
        let addr = listener.local_addr().expect("local addr");
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
        let shared = Arc::new(Shared {
            recorded,
            state: Mutex::new(State {
                config,
                active: vec![genesis],
                steps: 0,
                dead: false,
                pollers: 0,
                log: Vec::new(),
            }),
            changed: Condvar::new(),
            conns: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.state().dead {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    accept_shared
                        .conns
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(clone);
                }
                let conn_shared = accept_shared.clone();
                thread::spawn(move || serve(&conn_shared, stream));
            }
        });
        FakeBitcoind {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The recorded chain it serves.
    pub fn recorded(&self) -> &Recorded {
        &self.shared.recorded
    }

    /// Applies the first `n` recorded events to genesis and makes the result the
    /// active chain in one jump; waiting long-polls wake up.
    pub fn set_tip_after_steps(&self, n: usize) {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
        let mut active = vec![genesis];
        for event in &self.shared.recorded.events[..n] {
            match *event {
                FakeEvent::Connect(h) => active.push(h),
                FakeEvent::Disconnect(h) => {
                    assert_eq!(active.pop(), Some(h), "recorded disconnect of a non-tip");
                }
            }
        }
        let mut state = self.shared.state();
        state.active = active;
        state.steps = n;
        self.shared.changed.notify_all();
    }

    /// The number of events after which `hash` is the tip (its connect).
    pub fn steps_to(&self, hash: &BlockHash) -> usize {
        let events = &self.shared.recorded.events;
        events
            .iter()
            .position(|e| *e == FakeEvent::Connect(*hash))
            .map(|i| i + 1)
            .expect("hash is connected by some recorded event")
    }

    /// The active tip: (height, hash).
    pub fn tip(&self) -> (u32, BlockHash) {
        let state = self.shared.state();
        let height = state.active.len() - 1;
        (height as u32, state.active[height])
    }

    /// Every request so far: `rpc:<method>` or `rest:<path>` (in arrival order).
    pub fn requests(&self) -> Vec<String> {
        self.shared.state().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.state().log.clear();
    }

    /// Changes the accepted RPC credentials (a restarted node with a new cookie).
    pub fn set_credentials(&self, user: &str, password: &str) {
        let mut state = self.shared.state();
        state.config.user = user.to_string();
        state.config.password = password.to_string();
    }

    /// Turns the transaction index on or off.
    pub fn set_txindex(&self, on: bool) {
        self.shared.state().config.txindex = on;
    }

    /// Blocks until `n` long-polls are waiting, or `timeout` passes; returns
    /// whether they are.
    pub fn wait_for_pollers(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state();
        while state.pollers < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Dies like a crashed node: long-polls are cut off unanswered, open
    /// connections closed, new ones refused.
    pub fn kill(&mut self) {
        {
            let mut state = self.shared.state();
            if state.dead {
                return;
            }
            state.dead = true;
            self.shared.changed.notify_all();
        }
        for c in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `dead` and drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeBitcoind {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    auth: Option<String>,
    close: bool,
    body: Vec<u8>,
}

/// A response to write; `None` from a handler means "hang up without answering".
struct Response {
    status: u16,
    content_type: &'static str,
    extra: Vec<(&'static str, String)>,
    body: Vec<u8>,
    chunked: bool,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            extra: Vec::new(),
            body,
            chunked: false,
        }
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (mut len, mut auth, mut close) = (0usize, None, false);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => len = value.parse().ok()?,
            "authorization" => auth = Some(value.to_string()),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        auth,
        close,
        body,
    })
}

fn write_response(w: &mut TcpStream, resp: &Response) -> std::io::Result<()> {
    let reason = match resp.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Other",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\n",
        resp.status, resp.content_type
    );
    for (name, value) in &resp.extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut out = head.into_bytes();
    if resp.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in resp.body.chunks(1000) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", resp.body.len()).as_bytes());
        out.extend_from_slice(&resp.body);
    }
    w.write_all(&out)?;
    w.flush()
}

/// Serves one connection until the client closes it or the fake dies.
fn serve(shared: &Shared, stream: TcpStream) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let Some(resp) = handle(shared, &req) else {
            return;
        };
        if shared.state().dead || write_response(&mut writer, &resp).is_err() || req.close {
            return;
        }
        if shared.state().config.close_after_response {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn handle(shared: &Shared, req: &Request) -> Option<Response> {
    if req.method == "POST" && req.path == "/" {
        handle_rpc(shared, req)
    } else if req.method == "GET" && req.path.starts_with("/rest/") {
        shared.state().log.push(format!("rest:{}", req.path));
        Some(handle_rest(shared, &req.path))
    } else {
        Some(Response::new(404, "text/plain", Vec::new()))
    }
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn rest_error(status: u16, message: String) -> Response {
    Response::new(status, "text/plain", format!("{message}\r\n").into_bytes())
}

fn handle_rest(shared: &Shared, path: &str) -> Response {
    let state = shared.state();
    if !state.config.rest {
        // Without -rest the handlers are not registered: a bare 404.
        return Response::new(404, "text/plain", Vec::new());
    }
    let rest = &path["/rest/".len()..];
    if rest == "chaininfo.json" {
        let height = state.active.len() - 1;
        let body = json!({
            "chain": state.config.chain,
            "blocks": height,
            "headers": height,
            "bestblockhash": state.active[height].to_string(),
        });
        return Response::new(200, "application/json", format!("{body}\n").into_bytes());
    }
    let (kind, file) = match rest.split_once('/') {
        Some(("block", f)) => ("block", f),
        Some(("spenttxouts", f)) if state.config.spenttxouts => ("spenttxouts", f),
        _ => return Response::new(404, "text/plain", Vec::new()),
    };
    let Some(hash_str) = file.strip_suffix(".bin") else {
        return rest_error(404, "output format not found (available: .bin)".into());
    };
    let Ok(hash) = hash_str.parse::<BlockHash>() else {
        return rest_error(400, format!("Invalid hash: {hash_str}"));
    };
    let Some(block) = shared.recorded.blocks.get(&hash) else {
        return rest_error(404, format!("{hash_str} not found"));
    };
    let body = if kind == "block" {
        block.raw.clone()
    } else {
        block.spent_rest.clone()
    };
    let mut resp = Response::new(200, "application/octet-stream", body);
    resp.chunked = state.config.chunked_rest;
    resp
}

fn handle_rpc(shared: &Shared, req: &Request) -> Option<Response> {
    let expected = {
        let state = shared.state();
        format!(
            "Basic {}",
            base64(format!("{}:{}", state.config.user, state.config.password).as_bytes())
        )
    };
    if req.auth.as_deref() != Some(expected.as_str()) {
        shared.state().log.push("rpc:<unauthorized>".into());
        let mut resp = Response::new(401, "text/html", Vec::new());
        resp.extra
            .push(("WWW-Authenticate", "Basic realm=\"jsonrpc\"".into()));
        return Some(resp);
    }
    let Ok(call) = serde_json::from_slice::<Value>(&req.body) else {
        return Some(rpc_reply(Value::Null, Err((-32700, "Parse error".into()))));
    };
    let id = call["id"].clone();
    let method = call["method"].as_str().unwrap_or_default().to_string();
    let params = call["params"].as_array().cloned().unwrap_or_default();
    shared.state().log.push(format!("rpc:{method}"));
    let result = match method.as_str() {
        "waitfornewblock" => wait_for_new_block(shared, &params)?,
        _ => rpc_method(shared, &method, &params),
    };
    Some(rpc_reply(id, result))
}

type RpcResult = Result<Value, (i64, String)>;

/// Core's JSON-RPC 1.0 replies: errors with HTTP 500 (404 for an unknown method).
fn rpc_reply(id: Value, result: RpcResult) -> Response {
    let (status, body) = match result {
        Ok(v) => (200, json!({"result": v, "error": null, "id": id})),
        Err((code, message)) => (
            if code == -32601 { 404 } else { 500 },
            json!({"result": null, "error": {"code": code, "message": message}, "id": id}),
        ),
    };
    Response::new(status, "application/json", format!("{body}\n").into_bytes())
}

fn param_hash(params: &[Value], i: usize) -> Result<BlockHash, (i64, String)> {
    params
        .get(i)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or((-8, "hash must be of length 64 (not 0, for '')".into()))
}

fn rpc_method(shared: &Shared, method: &str, params: &[Value]) -> RpcResult {
    let state = shared.state();
    let height = state.active.len() - 1;
    let tip = state.active[height];
    let recorded = &shared.recorded;
    match method {
        "getblockchaininfo" => Ok(json!({
            "chain": state.config.chain,
            "blocks": height,
            "headers": height,
            "bestblockhash": tip.to_string(),
            "initialblockdownload": false,
            "pruned": false,
        })),
        "getbestblockhash" => Ok(json!(tip.to_string())),
        "getblockhash" => {
            let h = params.first().and_then(Value::as_i64).unwrap_or(-1);
            if h < 0 || h as usize > height {
                return Err((-8, "Block height out of range".into()));
            }
            Ok(json!(state.active[h as usize].to_string()))
        }
        "getblockheader" => {
            let hash = param_hash(params, 0)?;
            let Some(b) = recorded.blocks.get(&hash) else {
                return Err((-5, "Block not found".into()));
            };
            if params.get(1).and_then(Value::as_bool) == Some(false) {
                return Ok(json!(hex(&b.raw[..80])));
            }
            let on_active = state.active.get(b.height as usize) == Some(&hash);
            let mut v = json!({
                "hash": hash.to_string(),
                "confirmations": if on_active { height as i64 - b.height as i64 + 1 } else { -1 },
                "height": b.height,
                "nTx": 1,
            });
            if let Some(prev) = b.prev {
                v["previousblockhash"] = json!(prev.to_string());
            }
            if on_active {
                if let Some(next) = state.active.get(b.height as usize + 1) {
                    v["nextblockhash"] = json!(next.to_string());
                }
            }
            Ok(v)
        }
        "getindexinfo" => {
            if state.config.txindex {
                Ok(json!({"txindex": {"synced": true, "best_block_height": height}}))
            } else {
                Ok(json!({}))
            }
        }
        "getrawtransaction" => {
            let txid: Option<Txid> = params
                .first()
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            let Some(txid) = txid else {
                return Err((-8, "txid must be hexadecimal".into()));
            };
            let verbose = params.get(1).and_then(Value::as_bool).unwrap_or(false);
            let in_mempool = recorded.mempool.iter().find(|raw| {
                bitcoin::consensus::deserialize::<bitcoin::Transaction>(raw)
                    .map(|t| t.compute_txid() == txid)
                    .unwrap_or(false)
            });
            let found = match (in_mempool, recorded.txs.get(&txid)) {
                (Some(raw), _) => Some((None, raw.clone())),
                (None, Some((block, raw))) if state.config.txindex => {
                    Some((Some(*block), raw.clone()))
                }
                _ => None,
            };
            let Some((block, raw)) = found else {
                return Err((
                    -5,
                    if state.config.txindex {
                        "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."
                    } else {
                        "No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries. Use gettransaction for wallet transactions."
                    }
                    .into(),
                ));
            };
            if !verbose {
                return Ok(json!(hex(&raw)));
            }
            let mut v = json!({"txid": txid.to_string(), "hex": hex(&raw)});
            if let Some(block) = block {
                let b = &recorded.blocks[&block];
                let on_active = state.active.get(b.height as usize) == Some(&block);
                v["blockhash"] = json!(block.to_string());
                v["confirmations"] = json!(if on_active {
                    height as u32 - b.height + 1
                } else {
                    0
                });
            }
            Ok(v)
        }
        _ => Err((-32601, "Method not found".into())),
    }
}

/// `waitfornewblock timeout [current_tip]`: `None` when the fake dies meanwhile.
fn wait_for_new_block(shared: &Shared, params: &[Value]) -> Option<RpcResult> {
    let mut state = shared.state();
    if params.len() > 1 && !state.config.current_tip_param {
        // An older Core answers extra arguments with the method's help text.
        return Some(Err((
            -1,
            "waitfornewblock ( timeout )\n\nWaits for any new block and returns useful info about it.\n".into(),
        )));
    }
    let timeout_ms = params.first().and_then(Value::as_u64).unwrap_or(0);
    let start_tip = match params.get(1) {
        Some(_) => match param_hash(params, 1) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        },
        None => *state.active.last().expect("active chain has genesis"),
    };
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms));
    state.pollers += 1;
    shared.changed.notify_all();
    loop {
        if state.dead {
            state.pollers -= 1;
            return None;
        }
        if *state.active.last().expect("genesis") != start_tip {
            break;
        }
        match deadline {
            None => {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner())
            }
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    break;
                }
                state = shared
                    .changed
                    .wait_timeout(state, d - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
    state.pollers -= 1;
    shared.changed.notify_all();
    let height = state.active.len() - 1;
    Some(Ok(
        json!({"hash": state.active[height].to_string(), "height": height}),
    ))
}
