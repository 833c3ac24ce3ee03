//! The opnet.sock server end to end, through a raw protocol client: queries against
//! Bitcoin Core's UTXO oracle, event replay (from a number and from a block on the
//! losing branch of the fixture's reorg), the mempool view, and hostile input.

#![cfg(feature = "server")]

mod common;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bytes::BytesMut;
use common::{load_chain, load_oracle, unhex, Utxo};
use opnet::index::script_hash;
use opnet::protocol::{
    self, kind, BlockRef, Cursor, Event, FrameDecoder, GapReason, Hello, HelloReply, Request,
    Response, Sort, Status, SubscribeFrom, UtxoEntry, UtxoQuery, DEFAULT_MAX_FRAME, ENTRY_PENDING,
    ENTRY_SPENT_IN_MEMPOOL, KIND_BLOCKS, KIND_MEMPOOL, KIND_SCRIPTHASHES,
};
use opnet::replay::{ReplayChain, ReplayStep};
use opnet::server::{self, Node, ServerConfig, ServerHandle};
use opnet::source::ChainSource;
use opnet::sync::{Engine, EngineConfig};
use opnet::Network;

const WHALE: &str = "00142a941deed62839991916d8a04ec99b548ee3f398";
const ALL_FEATURES: u64 = 0xF;

struct Harness {
    _tmp: tempfile::TempDir,
    engine: Engine,
    chain: Arc<ReplayChain>,
    steps: Vec<ReplayStep>,
    applied: usize,
    node: Arc<Node>,
    _server: Option<ServerHandle>,
    socket: PathBuf,
}

impl Harness {
    fn new(tune: impl FnOnce(&mut ServerConfig)) -> Harness {
        Harness::with_mempool_log(1 << 20, tune)
    }

    fn with_mempool_log(mempool_log: usize, tune: impl FnOnce(&mut ServerConfig)) -> Harness {
        let (blocks, steps) = load_chain();
        let chain = Arc::new(ReplayChain::new(Network::Regtest, blocks));
        let tmp = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(EngineConfig::new(tmp.path(), Network::Regtest)).unwrap();
        engine.init_at_genesis().unwrap();
        let node = Node::attach(&mut engine, chain.clone(), mempool_log).unwrap();
        let socket = tmp.path().join("opnet.sock");
        let mut config = ServerConfig::new(&socket);
        tune(&mut config);
        let server = server::start(config, node.clone()).unwrap();
        Harness {
            _tmp: tmp,
            engine,
            chain,
            steps,
            applied: 0,
            node,
            _server: Some(server),
            socket,
        }
    }

    /// Applies the scripted steps up to (excluding) `n`.
    fn replay_to(&mut self, n: usize) {
        while self.applied < n {
            let event = self.chain.step(self.steps[self.applied]).unwrap();
            self.engine
                .handle_event(&event, self.chain.as_ref())
                .unwrap();
            self.applied += 1;
        }
    }

    /// Index of the step that connects tip A (the oracle's first tip).
    fn tip_a_steps(&self) -> usize {
        let a = load_oracle("oracle-A.json");
        self.steps
            .iter()
            .position(|s| matches!(s, ReplayStep::Connect(h) if h.to_string() == a.tip_hash))
            .unwrap()
            + 1
    }
}

/// A blocking raw client: requests one at a time; events seen meanwhile are kept.
struct Raw {
    stream: UnixStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    seq: u32,
    events: VecDeque<Event>,
}

impl Raw {
    fn connect(path: &Path) -> Raw {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(DEFAULT_MAX_FRAME),
            seq: 0,
            events: VecDeque::new(),
        }
    }

    fn hello_with(path: &Path, features: u64) -> (Raw, HelloReply) {
        let mut c = Raw::connect(path);
        let r = c.request(&Request::Hello(Hello {
            min_version: 1,
            max_version: 1,
            max_frame: DEFAULT_MAX_FRAME,
            features,
            client_name: "server-test".into(),
        }));
        match r {
            Response::Hello(h) => (c, h),
            other => panic!("HELLO answered {other:?}"),
        }
    }

    fn hello(path: &Path) -> Raw {
        Raw::hello_with(path, ALL_FEATURES).0
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn send(&mut self, req: &Request) -> u32 {
        self.seq += 1;
        let frame = protocol::request_frame(self.seq, req);
        let mut out = BytesMut::new();
        protocol::encode(&frame, DEFAULT_MAX_FRAME, &mut out).unwrap();
        self.send_raw(&out);
        self.seq
    }

    /// The next frame, `None` at end of stream.
    fn frame(&mut self) -> Option<protocol::Frame> {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).unwrap();
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn response_to(&mut self, seq: u32) -> Response {
        loop {
            let f = self.frame().expect("connection closed before the response");
            if f.kind >= 0xE0 {
                self.events
                    .push_back(Event::decode(f.kind, &f.body).unwrap());
                continue;
            }
            assert_eq!(
                f.seq, seq,
                "responses come in order for sequential requests"
            );
            return Response::decode(f.kind, &f.body).unwrap();
        }
    }

    fn request(&mut self, req: &Request) -> Response {
        let seq = self.send(req);
        self.response_to(seq)
    }

    fn event(&mut self) -> Event {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        let f = self
            .frame()
            .expect("connection closed while waiting for an event");
        assert!(f.kind >= 0xE0, "expected an event, got type {:#x}", f.kind);
        Event::decode(f.kind, &f.body).unwrap()
    }

    fn error(&mut self, req: &Request) -> (Status, u32) {
        match self.request(req) {
            Response::Error { error, .. } => (error.status, error.detail),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

fn query(sh: [u8; 32]) -> UtxoQuery {
    UtxoQuery {
        scripthash: sh,
        limit: 0,
        min_value: 0,
        max_height: None,
        min_confirmations: 0,
        sort: Sort::Outpoint,
        include_mempool: false,
    }
}

fn oracle_entries(oracle: &common::Oracle, script: &str) -> Vec<Utxo> {
    oracle
        .utxos
        .iter()
        .filter(|u| u.0 == script)
        .cloned()
        .collect()
}

fn as_oracle(script: &str, e: &UtxoEntry) -> Utxo {
    (
        script.to_string(),
        bitcoin::Txid::from_byte_array(e.txid).to_string(),
        e.vout,
        e.value,
        e.height,
        e.flags & protocol::ENTRY_COINBASE != 0,
    )
}

fn paginate(c: &mut Raw, q: &UtxoQuery) -> (Vec<UtxoEntry>, usize) {
    let mut all = Vec::new();
    let mut cursor = Cursor(Vec::new());
    let mut pages = 0;
    loop {
        let page = match c.request(&Request::QueryUtxosPaginated(q.clone(), cursor.clone())) {
            Response::UtxosPage(p) => p,
            other => panic!("page answered {other:?}"),
        };
        pages += 1;
        all.extend(page.entries.iter().cloned());
        match page.cursor {
            Some(next) if page.more => cursor = next,
            _ => return (all, pages),
        }
    }
}

#[test]
fn queries_equal_bitcoin_cores_utxo_set_in_every_order_and_page_size() {
    let mut h = Harness::new(|_| {});
    let a = h.tip_a_steps();
    h.replay_to(a);
    let oracle = load_oracle("oracle-A.json");
    let mut c = Raw::hello(&h.socket);
    let sh = script_hash(&unhex(WHALE));
    let want = oracle_entries(&oracle, WHALE);
    assert_eq!(want.len(), 1984);

    // Outpoint order, pages of 300: every UTXO once, in key order.
    let q = UtxoQuery {
        limit: 300,
        ..query(sh)
    };
    let (got, pages) = paginate(&mut c, &q);
    assert_eq!(pages, 7);
    let keys: Vec<([u8; 32], u32)> = got.iter().map(|e| (e.txid, e.vout)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "outpoint order");
    let as_set: std::collections::BTreeSet<Utxo> =
        got.iter().map(|e| as_oracle(WHALE, e)).collect();
    assert_eq!(as_set.len(), got.len(), "no entry twice");
    assert_eq!(as_set.into_iter().collect::<Vec<_>>(), want);

    // Value descending, pages of 128: the same set, largest first, ties by outpoint.
    let q = UtxoQuery {
        limit: 128,
        sort: Sort::ValueDesc,
        ..query(sh)
    };
    let (by_value, _) = paginate(&mut c, &q);
    assert_eq!(by_value.len(), want.len());
    let mut expect = got.clone();
    expect.sort_by(|x, y| {
        y.value
            .cmp(&x.value)
            .then(x.txid.cmp(&y.txid))
            .then(x.vout.cmp(&y.vout))
    });
    assert_eq!(by_value, expect);

    // Filters: min value and min confirmations, counted against the oracle.
    let tip = oracle.tip_height;
    let min_value = 50_000_000;
    let q = UtxoQuery {
        min_value,
        min_confirmations: 100,
        sort: Sort::HeightAsc,
        ..query(sh)
    };
    let (filtered, _) = paginate(&mut c, &q);
    let expect: Vec<&Utxo> = want
        .iter()
        .filter(|u| u.3 >= min_value && tip - u.4 + 1 >= 100)
        .collect();
    assert_eq!(filtered.len(), expect.len());
    assert!(filtered.windows(2).all(|w| w[0].height <= w[1].height));

    // QUERY_UTXOS (one page): `more` says there is more.
    match c.request(&Request::QueryUtxos(UtxoQuery {
        limit: 10,
        ..query(sh)
    })) {
        Response::Utxos(p) => {
            assert_eq!(p.entries, got[..10].to_vec());
            assert!(p.more);
            assert_eq!(p.script, unhex(WHALE));
            assert_eq!(p.tip.height, tip);
            assert_eq!(
                bitcoin::BlockHash::from_byte_array(p.tip.hash).to_string(),
                oracle.tip_hash
            );
        }
        other => panic!("{other:?}"),
    }

    // Limits and cursors.
    let max = c_max_results(&h.socket);
    assert_eq!(
        c.error(&Request::QueryUtxos(UtxoQuery {
            limit: max + 1,
            ..query(sh)
        })),
        (Status::LimitExceeded, max)
    );
    let cursor_for_outpoint = Cursor(vec![0; 37]);
    assert_eq!(
        c.error(&Request::QueryUtxosPaginated(
            UtxoQuery {
                sort: Sort::ValueDesc,
                ..query(sh)
            },
            cursor_for_outpoint
        ))
        .0,
        Status::BadCursor
    );
    // An unknown scripthash is an empty answer, not an error.
    match c.request(&Request::QueryUtxos(query([0x42; 32]))) {
        Response::Utxos(p) => assert!(p.entries.is_empty() && !p.more && p.script.is_empty()),
        other => panic!("{other:?}"),
    }
}

fn c_max_results(path: &Path) -> u32 {
    Raw::hello_with(path, ALL_FEATURES).1.max_results
}

fn block_events(c: &mut Raw, n: usize) -> Vec<(u8, u64, u32, String)> {
    (0..n)
        .map(|_| match c.event() {
            Event::BlockConnected { seq, block, .. } => (
                kind::BLOCK_CONNECTED,
                seq,
                block.height,
                bitcoin::BlockHash::from_byte_array(block.hash).to_string(),
            ),
            Event::BlockDisconnected { seq, block, .. } => (
                kind::BLOCK_DISCONNECTED,
                seq,
                block.height,
                bitcoin::BlockHash::from_byte_array(block.hash).to_string(),
            ),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn subscribers_are_replayed_what_they_missed_from_a_number_or_a_stale_block() {
    let mut h = Harness::new(|_| {});
    let a = h.tip_a_steps();
    h.replay_to(a);
    let oracle_a = load_oracle("oracle-A.json");
    let tip_a = BlockRef {
        height: oracle_a.tip_height,
        hash: oracle_a
            .tip_hash
            .parse::<bitcoin::BlockHash>()
            .unwrap()
            .to_byte_array(),
    };
    let mut live = Raw::hello(&h.socket);
    match live.request(&Request::Subscribe {
        kinds: KIND_BLOCKS,
        from: SubscribeFrom::Now,
    }) {
        Response::Subscribed {
            event_seq,
            resume_after,
        } => assert_eq!((event_seq, resume_after), (a as u64, a as u64)),
        other => panic!("{other:?}"),
    }
    let rest = h.steps.len();
    h.replay_to(rest);
    // What the script did after tip A, as (type, number, height, hash).
    let expected: Vec<(u8, u64, u32, String)> = h.steps[a..]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (k, hash) = match s {
                ReplayStep::Connect(x) => (kind::BLOCK_CONNECTED, x),
                ReplayStep::Disconnect(x) => (kind::BLOCK_DISCONNECTED, x),
            };
            let height = h.chain.header(hash).unwrap().unwrap().height;
            (k, (a + i + 1) as u64, height, hash.to_string())
        })
        .collect();
    assert_eq!(expected.len(), 8);
    assert_eq!(
        expected
            .iter()
            .filter(|e| e.0 == kind::BLOCK_DISCONNECTED)
            .count(),
        3
    );
    assert_eq!(block_events(&mut live, 8), expected);

    // A client that last saw tip A (now on the losing branch) resumes after it:
    // the disconnects that unwind it, then the winning branch.
    let mut late = Raw::hello(&h.socket);
    match late.request(&Request::Subscribe {
        kinds: KIND_BLOCKS,
        from: SubscribeFrom::AfterBlock(tip_a),
    }) {
        Response::Subscribed { resume_after, .. } => assert_eq!(resume_after, a as u64),
        other => panic!("{other:?}"),
    }
    assert_eq!(block_events(&mut late, 8), expected);

    // From a number: everything after it, in order.
    let mut from_seq = Raw::hello(&h.socket);
    from_seq.request(&Request::Subscribe {
        kinds: KIND_BLOCKS,
        from: SubscribeFrom::AfterSeq(a as u64 + 3),
    });
    assert_eq!(block_events(&mut from_seq, 5), expected[3..].to_vec());

    // An unknown block: an explicit GAP, then live events.
    let mut unknown = Raw::hello(&h.socket);
    unknown.request(&Request::Subscribe {
        kinds: KIND_BLOCKS,
        from: SubscribeFrom::AfterBlock(BlockRef {
            height: 5,
            hash: [0x55; 32],
        }),
    });
    match unknown.event() {
        Event::Gap {
            last, next, reason, ..
        } => {
            assert_eq!(reason, GapReason::HistoryUnavailable);
            assert_eq!((last, next), (0, rest as u64 + 1));
        }
        other => panic!("{other:?}"),
    }
    // A number in the future is refused.
    assert_eq!(
        unknown
            .error(&Request::Subscribe {
                kinds: KIND_BLOCKS,
                from: SubscribeFrom::AfterSeq(10_000),
            })
            .0,
        Status::Malformed
    );
}

/// A P2WPKH script no fixture output pays.
fn fresh_script() -> Vec<u8> {
    let mut s = vec![0x00, 0x14];
    s.extend_from_slice(&[0xAA; 20]);
    s
}

/// A transaction spending `spent` (one whale UTXO) to a new script.
fn mempool_tx(prev: ([u8; 32], u32), value: u64) -> bitcoin::Transaction {
    use bitcoin::{
        absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness,
    };
    bitcoin::Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: bitcoin::Txid::from_byte_array(prev.0),
                vout: prev.1,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(value),
            script_pubkey: ScriptBuf::from_bytes(fresh_script()),
        }],
    }
}

#[test]
fn the_mempool_view_and_scripthash_activity_follow_mempool_transactions() {
    let mut h = Harness::new(|_| {});
    let a = h.tip_a_steps();
    h.replay_to(a);
    let whale = unhex(WHALE);
    let sh = script_hash(&whale);
    let mut c = Raw::hello(&h.socket);
    let first = match c.request(&Request::QueryUtxos(UtxoQuery {
        limit: 1,
        ..query(sh)
    })) {
        Response::Utxos(p) => p.entries[0],
        other => panic!("{other:?}"),
    };
    let mut watcher = Raw::hello(&h.socket);
    watcher.request(&Request::SubscribeScripthashes(vec![
        sh,
        script_hash(&fresh_script()),
    ]));
    watcher.request(&Request::Subscribe {
        kinds: KIND_MEMPOOL | KIND_SCRIPTHASHES,
        from: SubscribeFrom::Now,
    });

    let tx = Arc::new(mempool_tx((first.txid, first.vout), first.value - 1_000));
    let txid = tx.compute_txid().to_byte_array();
    let spent = vec![opnet::format::undo::SpentOutput {
        amount: first.value,
        script: whale.clone(),
        height: Some(first.height),
        coinbase: Some(first.flags & protocol::ENTRY_COINBASE != 0),
    }];
    assert!(h.node.mempool_added(tx.clone(), &spent).unwrap());
    assert!(
        !h.node.mempool_added(tx.clone(), &spent).unwrap(),
        "a repeat is ignored"
    );

    // The whale's UTXO is flagged as spent by the mempool transaction.
    let with_mempool = UtxoQuery {
        limit: 1,
        include_mempool: true,
        ..query(sh)
    };
    match c.request(&Request::QueryUtxos(with_mempool.clone())) {
        Response::Utxos(p) => {
            assert_eq!(
                p.entries[0].flags & ENTRY_SPENT_IN_MEMPOOL,
                ENTRY_SPENT_IN_MEMPOOL
            );
            assert_eq!(p.entries[0].spender, Some(txid));
        }
        other => panic!("{other:?}"),
    }
    // The new output is pending under its own scripthash.
    match c.request(&Request::QueryUtxos(UtxoQuery {
        include_mempool: true,
        ..query(script_hash(&fresh_script()))
    })) {
        Response::Utxos(p) => {
            assert_eq!(p.entries.len(), 1);
            let e = &p.entries[0];
            assert_eq!(
                (e.txid, e.vout, e.value, e.height),
                (txid, 0, first.value - 1_000, 0)
            );
            assert_eq!(e.flags, ENTRY_PENDING);
            assert_eq!(p.script, fresh_script());
        }
        other => panic!("{other:?}"),
    }
    // Without the mempool view neither shows.
    match c.request(&Request::QueryUtxos(query(script_hash(&fresh_script())))) {
        Response::Utxos(p) => assert!(p.entries.is_empty()),
        other => panic!("{other:?}"),
    }

    match watcher.event() {
        Event::MempoolTx {
            txid: t,
            change,
            seq,
        } => {
            assert_eq!(t, txid);
            assert_eq!(seq, a as u64 + 1);
            assert_eq!(
                change,
                protocol::MempoolChange::Added {
                    fee: 1_000,
                    vsize: tx.vsize() as u32,
                    inputs: 1,
                    outputs: 1
                }
            );
        }
        other => panic!("{other:?}"),
    }
    match watcher.event() {
        Event::ScripthashActivity {
            entries,
            final_part,
            txid: t,
            ..
        } => {
            assert!(final_part);
            assert_eq!(t, txid);
            let got: Vec<_> = entries
                .iter()
                .map(|e| (e.scripthash, e.txid, e.vout, e.change, e.value))
                .collect();
            assert_eq!(
                got,
                vec![
                    (
                        sh,
                        first.txid,
                        first.vout,
                        protocol::ActivityChange::SpentInMempool,
                        first.value
                    ),
                    (
                        script_hash(&fresh_script()),
                        txid,
                        0,
                        protocol::ActivityChange::Added,
                        first.value - 1_000
                    ),
                ]
            );
        }
        other => panic!("{other:?}"),
    }

    // Removal undoes both.
    assert!(h
        .node
        .mempool_removed(&tx.compute_txid(), protocol::RemovalReason::Replaced)
        .unwrap());
    match watcher.event() {
        Event::MempoolTx { change, .. } => assert_eq!(
            change,
            protocol::MempoolChange::Removed {
                reason: protocol::RemovalReason::Replaced
            }
        ),
        other => panic!("{other:?}"),
    }
    match c.request(&Request::QueryUtxos(with_mempool)) {
        Response::Utxos(p) => assert_eq!(p.entries[0].flags & ENTRY_SPENT_IN_MEMPOOL, 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_and_early_frames_get_errors_or_a_closing_never_a_crash() {
    let h = Harness::new(|c| {
        c.max_connections = 4;
        c.rate_limit = 50;
        c.max_scripthashes = 3;
    });
    // Before HELLO.
    let mut c = Raw::connect(&h.socket);
    assert_eq!(c.error(&Request::GetSyncStatus).0, Status::HelloRequired);
    // A version nobody speaks: refused, then closed.
    let r = c.request(&Request::Hello(Hello {
        min_version: 2,
        max_version: 9,
        max_frame: DEFAULT_MAX_FRAME,
        features: 0,
        client_name: "future".into(),
    }));
    match r {
        Response::Error { error, .. } => assert_eq!(
            (error.status, error.detail),
            (Status::VersionUnsupported, 1)
        ),
        other => panic!("{other:?}"),
    }
    assert!(c.frame().is_none(), "closed after the refusal");

    // Without features, feature-bound requests are refused.
    let (mut c, hello) = Raw::hello_with(&h.socket, 0);
    assert_eq!(hello.features, 0);
    assert_eq!(hello.rate_limit, 50);
    assert_eq!(
        c.error(&Request::QueryUtxos(UtxoQuery {
            include_mempool: true,
            ..query([1; 32])
        })),
        (Status::FeatureNotNegotiated, 1)
    );
    assert_eq!(
        c.error(&Request::SubscribeScripthashes(vec![[1; 32]])).0,
        Status::FeatureNotNegotiated
    );
    // A second HELLO, an unknown type, a malformed body: errors, the connection lives.
    assert_eq!(
        c.error(&Request::Hello(Hello {
            min_version: 1,
            max_version: 1,
            max_frame: DEFAULT_MAX_FRAME,
            features: 0,
            client_name: String::new(),
        }))
        .0,
        Status::HelloRequired
    );
    c.send_raw(&[5, 0, 0, 0, 0x5E, 9, 0, 0, 0]);
    match c.frame() {
        Some(f) => {
            assert_eq!((f.kind, f.seq), (0xDE, 9));
            match Response::decode(f.kind, &f.body).unwrap() {
                Response::Error { error, .. } => {
                    assert_eq!((error.status, error.detail), (Status::UnknownType, 0x5E))
                }
                other => panic!("{other:?}"),
            }
        }
        None => panic!("closed"),
    }
    c.send_raw(&[7, 0, 0, 0, kind::QUERY_UTXOS, 10, 0, 0, 0, 1, 2]);
    let f = c.frame().unwrap();
    match Response::decode(f.kind, &f.body).unwrap() {
        Response::Error { error, .. } => assert_eq!(error.status, Status::Malformed),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(c.request(&Request::Ping(bytes::Bytes::from_static(b"alive"))), Response::Pong(b) if &b[..] == b"alive")
    );

    // Rate limit: a burst above 50 per second is refused with a wait.
    let (mut r, _) = Raw::hello_with(&h.socket, ALL_FEATURES);
    let seqs: Vec<u32> = (0..80)
        .map(|_| r.send(&Request::Ping(bytes::Bytes::new())))
        .collect();
    let mut limited = 0;
    for s in seqs {
        if let Response::Error { error, .. } = r.response_to(s) {
            assert_eq!(error.status, Status::RateLimited);
            assert!(error.detail >= 1);
            limited += 1;
        }
    }
    assert!(limited >= 29, "{limited} of 80 refused");

    // Scripthash limit: nothing of an over-limit request is applied.
    let (mut s, _) = Raw::hello_with(&h.socket, ALL_FEATURES);
    assert!(matches!(
        s.request(&Request::SubscribeScripthashes(vec![[1; 32], [2; 32]])),
        Response::ScripthashesSubscribed {
            changed: 2,
            total: 2
        }
    ));
    assert!(matches!(
        s.request(&Request::SubscribeScripthashes(vec![[2; 32]])),
        Response::ScripthashesSubscribed {
            changed: 0,
            total: 2
        }
    ));
    assert_eq!(
        s.error(&Request::SubscribeScripthashes(vec![[3; 32], [4; 32]])),
        (Status::LimitExceeded, 3)
    );
    assert!(matches!(
        s.request(&Request::UnsubscribeScripthashes(vec![[1; 32], [9; 32]])),
        Response::ScripthashesUnsubscribed {
            changed: 1,
            total: 1
        }
    ));

    // Connection limit: 3 open (c, r, s) + 1 more allowed, the next gets CLOSING.
    let _fourth = Raw::hello(&h.socket);
    let mut fifth = Raw::connect(&h.socket);
    match fifth.frame() {
        Some(f) => match Event::decode(f.kind, &f.body).unwrap() {
            Event::Closing { status, detail, .. } => {
                assert_eq!((status, detail), (Status::TooManyConnections, 4))
            }
            other => panic!("{other:?}"),
        },
        None => panic!("closed without CLOSING"),
    }
    drop((c, r, s, _fourth, fifth));

    // An oversized length: CLOSING FRAME_TOO_LARGE, then end of stream.
    std::thread::sleep(Duration::from_millis(100));
    let mut big = Raw::hello(&h.socket);
    big.send_raw(&(DEFAULT_MAX_FRAME + 1).to_le_bytes());
    match big.frame().map(|f| Event::decode(f.kind, &f.body).unwrap()) {
        Some(Event::Closing { status, detail, .. }) => {
            assert_eq!((status, detail), (Status::FrameTooLarge, DEFAULT_MAX_FRAME))
        }
        other => panic!("{other:?}"),
    }
    assert!(big.frame().is_none());
    // A length below the header: CLOSING MALFORMED.
    let mut short = Raw::hello(&h.socket);
    short.send_raw(&[2, 0, 0, 0, 1, 2]);
    match short
        .frame()
        .map(|f| Event::decode(f.kind, &f.body).unwrap())
    {
        Some(Event::Closing { status, .. }) => assert_eq!(status, Status::Malformed),
        other => panic!("{other:?}"),
    }
    // Half-closed: a request then shutdown(write) still gets its answer.
    let mut half = Raw::hello(&h.socket);
    let seq = half.send(&Request::Ping(bytes::Bytes::from_static(b"x")));
    half.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(matches!(half.response_to(seq), Response::Pong(_)));
    assert!(half.frame().is_none());
    // Garbage after HELLO: whatever it parses as, the server answers or closes and
    // keeps serving others.
    let mut rng = common::Rng(7);
    for _ in 0..20 {
        let mut g = Raw::hello(&h.socket);
        let junk = rng.bytes(64);
        g.send_raw(&junk);
        g.stream.shutdown(std::net::Shutdown::Write).unwrap();
        while g.frame().is_some() {}
    }
    let mut ok = Raw::hello(&h.socket);
    assert!(matches!(
        ok.request(&Request::GetSyncStatus),
        Response::SyncStatus(_)
    ));
}

#[test]
fn status_headers_txids_and_transactions_come_from_the_chain_source() {
    let mut h = Harness::new(|_| {});
    let a = h.tip_a_steps();
    h.replay_to(a);
    let oracle = load_oracle("oracle-A.json");
    let mut c = Raw::hello(&h.socket);
    let status = match c.request(&Request::GetSyncStatus) {
        Response::SyncStatus(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        status.mode,
        protocol::SyncMode::Synced,
        "following the host's events"
    );
    assert_eq!(status.index_tip.height, oracle.tip_height);
    assert_eq!(status.host_tip, status.index_tip);
    assert_eq!(status.utxo_count, oracle.txouts);
    assert_eq!(status.total_value, oracle.total_amount);
    assert_eq!(status.event_seq, a as u64);
    let tip_hash = h.chain.hash_at_height(oracle.tip_height).unwrap().unwrap();
    let block = h.chain.block(&tip_hash).unwrap();
    let hash = block.block_hash().to_byte_array();
    match c.request(&Request::GetBlockHeader(protocol::BlockSelector::Height(
        oracle.tip_height,
    ))) {
        Response::BlockHeader { block: r, header } => {
            assert_eq!(r.hash, hash);
            assert_eq!(
                header.to_vec(),
                bitcoin::consensus::encode::serialize(&block.header)
            );
        }
        other => panic!("{other:?}"),
    }
    let txids: Vec<[u8; 32]> = block
        .txdata
        .iter()
        .map(|t| t.compute_txid().to_byte_array())
        .collect();
    match c.request(&Request::GetBlockTxids(protocol::BlockSelector::Hash(hash))) {
        Response::BlockTxids {
            txids: got,
            block: r,
        } => {
            assert_eq!(got, txids);
            assert_eq!(r.height, oracle.tip_height);
        }
        other => panic!("{other:?}"),
    }
    match c.request(&Request::GetTx {
        txid: txids[0],
        block_hash: Some(hash),
    }) {
        Response::Tx { raw, .. } => {
            assert_eq!(raw, bitcoin::consensus::encode::serialize(&block.txdata[0]))
        }
        other => panic!("{other:?}"),
    }
    // No transaction index and no block hash: a clear UNAVAILABLE.
    let (status, _) = c.error(&Request::GetTx {
        txid: txids[0],
        block_hash: None,
    });
    assert_eq!(status, Status::Unavailable);
    assert_eq!(
        c.error(&Request::GetBlockHeader(protocol::BlockSelector::Height(
            9_999
        )))
        .0,
        Status::NotFound
    );
    assert_eq!(
        c.error(&Request::GetBlockTxids(protocol::BlockSelector::Hash(
            [9; 32]
        )))
        .0,
        Status::NotFound
    );
}

#[test]
fn a_subscriber_that_stops_reading_costs_no_memory_and_gets_a_gap() {
    const BUDGET: usize = 256 << 10;
    let mut h = Harness::with_mempool_log(BUDGET, |_| {});
    let a = h.tip_a_steps();
    h.replay_to(a);
    let mut slow = Raw::hello(&h.socket);
    slow.request(&Request::Subscribe {
        kinds: KIND_MEMPOOL,
        from: SubscribeFrom::Now,
    });
    // 20,000 mempool transactions while the subscriber reads nothing: far more than
    // the socket buffers and the mempool history hold.
    let total = 20_000u32;
    for i in 0..total {
        let mut prev = [0u8; 32];
        prev[..4].copy_from_slice(&i.to_le_bytes());
        let tx = Arc::new(mempool_tx((prev, 0), 9_000));
        let spent = vec![opnet::format::undo::SpentOutput {
            amount: 10_000,
            script: fresh_script(),
            height: Some(1),
            coinbase: Some(false),
        }];
        assert!(h.node.mempool_added(tx, &spent).unwrap());
        assert!(h.node.hub.mempool_log_bytes() <= BUDGET);
    }
    let last = h.node.hub.last_seq();
    assert_eq!(last, a as u64 + total as u64);
    // Reading now: events in order, a GAP where the history ran out, then the rest
    // up to the latest, with nothing repeated.
    let mut seen = 0u64;
    let mut prev_seq = a as u64;
    let mut gaps = Vec::new();
    while prev_seq < last {
        match slow.event() {
            Event::MempoolTx { seq, .. } => {
                assert!(seq > prev_seq, "{seq} after {prev_seq}");
                if gaps.is_empty() {
                    assert_eq!(seq, prev_seq + 1, "contiguous before the gap");
                }
                prev_seq = seq;
                seen += 1;
            }
            Event::Gap {
                last: l,
                next,
                reason,
                ..
            } => {
                assert_eq!(reason, GapReason::MempoolHistoryLost);
                assert_eq!(l, prev_seq);
                gaps.push((l, next));
                prev_seq = next - 1;
            }
            other => panic!("{other:?}"),
        }
    }
    // The writer may stall on the full socket more than once while the history
    // keeps moving, so there can be several GAPs; together with the events they
    // account for every number exactly once.
    assert!(!gaps.is_empty());
    let skipped: u64 = gaps.iter().map(|(l, next)| next - l - 1).sum();
    assert_eq!(seen + skipped, total as u64, "{gaps:?}");
}

#[test]
fn scripthash_activity_across_the_reorg_turns_tip_a_into_tip_b() {
    let mut h = Harness::new(|_| {});
    let a = h.tip_a_steps();
    h.replay_to(a);
    let oracle_a = load_oracle("oracle-A.json");
    let oracle_b = load_oracle("oracle-B.json");
    // Every script that differs between the two tips, plus the whale.
    let mut scripts: std::collections::BTreeSet<String> = oracle_a
        .utxos
        .symmetric_difference(&oracle_b.utxos)
        .map(|u| u.0.clone())
        .collect();
    scripts.insert(WHALE.to_string());
    let hashes: Vec<[u8; 32]> = scripts.iter().map(|s| script_hash(&unhex(s))).collect();
    let by_hash: std::collections::HashMap<[u8; 32], String> = hashes
        .iter()
        .copied()
        .zip(scripts.iter().cloned())
        .collect();
    let mut c = Raw::hello(&h.socket);
    c.request(&Request::SubscribeScripthashes(hashes.clone()));
    c.request(&Request::Subscribe {
        kinds: KIND_BLOCKS | KIND_SCRIPTHASHES,
        from: SubscribeFrom::Now,
    });
    let rest = h.steps.len();
    h.replay_to(rest);

    // Apply what the subscriber is told to its copy of tip A's UTXOs.
    let mut set: std::collections::BTreeSet<Utxo> = oracle_a
        .utxos
        .iter()
        .filter(|u| scripts.contains(&u.0))
        .cloned()
        .collect();
    let mut blocks = 0;
    let mut activity_seqs = Vec::new();
    let mut last_block_seq = 0;
    // Until the last block's activity (it touches watched scripts) is in.
    while blocks < rest - a || activity_seqs.last() != Some(&(rest as u64)) {
        match c.event() {
            Event::BlockConnected { seq, .. } | Event::BlockDisconnected { seq, .. } => {
                blocks += 1;
                last_block_seq = seq;
            }
            Event::ScripthashActivity {
                seq,
                entries,
                final_part,
                ..
            } => {
                assert!(final_part);
                assert_eq!(seq, last_block_seq, "activity follows its block event");
                activity_seqs.push(seq);
                for e in entries {
                    let script = by_hash[&e.scripthash].clone();
                    let txid = bitcoin::Txid::from_byte_array(e.txid).to_string();
                    let found: Option<Utxo> = set
                        .iter()
                        .find(|u| u.0 == script && u.1 == txid && u.2 == e.vout)
                        .cloned();
                    match e.change {
                        protocol::ActivityChange::Added => {
                            assert!(found.is_none(), "added twice: {txid}:{}", e.vout);
                            // The coinbase flag is not carried by activity: take it
                            // from whichever oracle knows the output.
                            let coinbase = oracle_b
                                .utxos
                                .iter()
                                .chain(oracle_a.utxos.iter())
                                .find(|u| u.1 == txid && u.2 == e.vout)
                                .map(|u| u.5)
                                .unwrap_or(false);
                            set.insert((script, txid, e.vout, e.value, e.height, coinbase));
                        }
                        protocol::ActivityChange::Removed => {
                            let u = found.expect("removed an output the subscriber never had");
                            assert_eq!((u.3, u.4), (e.value, e.height));
                            set.remove(&u);
                        }
                        other => panic!("block activity {other:?}"),
                    }
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(!activity_seqs.is_empty());
    let want: std::collections::BTreeSet<Utxo> = oracle_b
        .utxos
        .iter()
        .filter(|u| scripts.contains(&u.0))
        .cloned()
        .collect();
    let extra: Vec<_> = set.difference(&want).collect();
    let missing: Vec<_> = want.difference(&set).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "extra {extra:?}\nmissing {missing:?}"
    );
}

#[test]
fn a_rebuild_after_a_too_deep_reorg_reaches_subscribers_and_queries_follow_it() {
    use opnet::chainstate::Chainstate;
    use opnet::datadir::DatadirSource;
    let (dir_a, dir_b) = (common::fixture("datadir-A"), common::fixture("datadir-B"));
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(tmp.path(), Network::Regtest);
    cfg.readers = 2;
    cfg.undo_retention = 2;
    let mut engine = Engine::open(cfg).unwrap();
    let source_a = DatadirSource::open(&dir_a, Network::Regtest).unwrap();
    let cs_a = dir_a.join("chainstate");
    engine.sync(&source_a, &|| Chainstate::open(&cs_a)).unwrap();
    let before = engine.event_clock().last();

    let source_b = Arc::new(DatadirSource::open(&dir_b, Network::Regtest).unwrap());
    let node = Node::attach(&mut engine, source_b.clone(), 1 << 20).unwrap();
    let socket = tmp.path().join("opnet.sock");
    let server = server::start(ServerConfig::new(&socket), node).unwrap();
    let mut c = Raw::hello(&socket);
    c.request(&Request::Subscribe {
        kinds: KIND_BLOCKS,
        from: SubscribeFrom::Now,
    });
    let old = c.request(&Request::QueryUtxos(query(script_hash(&unhex(WHALE)))));
    let cs_b = dir_b.join("chainstate");
    engine
        .sync(source_b.as_ref(), &|| Chainstate::open(&cs_b))
        .unwrap();

    // Two disconnects (all the undo log holds), then the rebuild from B's chainstate.
    for (i, height) in [170u32, 169].into_iter().enumerate() {
        match c.event() {
            Event::BlockDisconnected { seq, block, .. } => {
                assert_eq!((seq, block.height), (before + 1 + i as u64, height))
            }
            other => panic!("{other:?}"),
        }
    }
    let oracle_b = load_oracle("oracle-B.json");
    match c.event() {
        Event::IndexRebuilt { seq, tip } => {
            assert_eq!(seq, before + 3);
            assert_eq!(tip.height, oracle_b.tip_height);
            assert_eq!(
                bitcoin::BlockHash::from_byte_array(tip.hash).to_string(),
                oracle_b.tip_hash
            );
        }
        other => panic!("{other:?}"),
    }
    // Queries answer from the rebuilt index, not the replaced one.
    match c.request(&Request::QueryUtxos(query(script_hash(&unhex(WHALE))))) {
        Response::Utxos(p) => {
            assert_eq!(p.tip.height, oracle_b.tip_height);
            let want = oracle_entries(&oracle_b, WHALE);
            assert_eq!(p.entries.len(), want.len());
            let got: std::collections::BTreeSet<Utxo> =
                p.entries.iter().map(|e| as_oracle(WHALE, e)).collect();
            assert_eq!(got.into_iter().collect::<Vec<_>>(), want);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(old, Response::Utxos(_)));
    // UNSUBSCRIBE of the only kind is answered (the subscription ends).
    assert!(matches!(
        c.request(&Request::Unsubscribe { kinds: KIND_BLOCKS }),
        Response::Unsubscribed
    ));
    // Shutdown: every client is told, then the socket is gone.
    server.shutdown();
    match c.frame().map(|f| Event::decode(f.kind, &f.body).unwrap()) {
        Some(Event::Closing { status, .. }) => assert_eq!(status, Status::ShuttingDown),
        other => panic!("{other:?}"),
    }
    assert!(c.frame().is_none());
    assert!(!socket.exists());
}

#[test]
fn a_client_that_sends_without_reading_stops_only_itself() {
    let mut h = Harness::new(|c| c.max_inflight = 4);
    let a = h.tip_a_steps();
    h.replay_to(a);
    // Pipeline 200 large PINGs without reading: the server answers at most
    // max_inflight at a time, stops reading, and the socket buffers fill.
    let mut greedy = Raw::hello(&h.socket);
    greedy.stream.set_nonblocking(true).unwrap();
    let body = bytes::Bytes::from(vec![7u8; 256 << 10]);
    let frame = protocol::request_frame(1, &Request::Ping(body.clone()));
    let mut one = BytesMut::new();
    protocol::encode(&frame, DEFAULT_MAX_FRAME, &mut one).unwrap();
    let mut written = 0usize;
    let mut blocked = false;
    for _ in 0..200 {
        let mut off = 0;
        while off < one.len() {
            match greedy.stream.write(&one[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        written += off;
        if blocked {
            break;
        }
    }
    assert!(
        blocked,
        "the server stopped reading ({written} bytes taken)"
    );
    assert!(written < 200 * one.len());
    // Everyone else is served as usual.
    let mut other = Raw::hello(&h.socket);
    assert!(matches!(
        other.request(&Request::GetSyncStatus),
        Response::SyncStatus(_)
    ));
    assert!(matches!(
        other.request(&Request::QueryUtxos(UtxoQuery { limit: 5, ..query(script_hash(&unhex(WHALE))) })),
        Response::Utxos(p) if p.entries.len() == 5
    ));
}

/// A chain source whose block data is damaged (as a flipped byte in blk*.dat is).
struct DamagedBlocks(ReplayChain);

impl ChainSource for DamagedBlocks {
    fn network(&self) -> Network {
        self.0.network()
    }
    fn tip(&self) -> Result<opnet::source::ChainTip, opnet::source::SourceError> {
        self.0.tip()
    }
    fn hash_at_height(
        &self,
        height: u32,
    ) -> Result<Option<bitcoin::BlockHash>, opnet::source::SourceError> {
        self.0.hash_at_height(height)
    }
    fn block(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<bitcoin::Block, opnet::source::SourceError> {
        Err(opnet::source::SourceError::Corrupt(format!(
            "block {hash}: merkle root mismatch"
        )))
    }
    fn spent_outputs(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<opnet::format::undo::BlockSpent, opnet::source::SourceError> {
        self.0.spent_outputs(hash)
    }
    fn header(
        &self,
        hash: &bitcoin::BlockHash,
    ) -> Result<Option<opnet::source::HeaderInfo>, opnet::source::SourceError> {
        self.0.header(hash)
    }
    fn transaction(
        &self,
        txid: &bitcoin::Txid,
    ) -> Result<Option<bitcoin::Transaction>, opnet::source::SourceError> {
        self.0.transaction(txid)
    }
}

#[test]
fn damaged_chain_data_is_an_internal_error_naming_it() {
    let (blocks, steps) = load_chain();
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(EngineConfig::new(tmp.path(), Network::Regtest)).unwrap();
    engine.init_at_genesis().unwrap();
    let chain = ReplayChain::new(Network::Regtest, blocks);
    chain.step(steps[0]).unwrap();
    let source = Arc::new(DamagedBlocks(chain));
    let node = Node::attach(&mut engine, source, 1 << 20).unwrap();
    let socket = tmp.path().join("opnet.sock");
    let _server = server::start(ServerConfig::new(&socket), node).unwrap();
    let mut c = Raw::hello(&socket);
    match c.request(&Request::GetBlockTxids(protocol::BlockSelector::Height(1))) {
        Response::Error { error, .. } => {
            assert_eq!(error.status, Status::Internal);
            assert!(
                error.message.contains("merkle root mismatch"),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
    // The connection and the server carry on.
    assert!(matches!(
        c.request(&Request::GetSyncStatus),
        Response::SyncStatus(_)
    ));
}

#[test]
fn status_is_not_synced_while_the_host_is_at_another_tip() {
    let mut h = Harness::new(|_| {});
    let a = h.tip_a_steps();
    h.replay_to(a - 1);
    let mut c = Raw::hello(&h.socket);
    let status = |c: &mut Raw| match c.request(&Request::GetSyncStatus) {
        Response::SyncStatus(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(status(&mut c).mode, protocol::SyncMode::Synced);
    // The host connects a block the index has not applied yet.
    let event = h.chain.step(h.steps[a - 1]).unwrap();
    let s = status(&mut c);
    assert_eq!(s.mode, protocol::SyncMode::CatchingUp, "{s:?}");
    assert_eq!(s.host_tip.height, s.index_tip.height + 1);
    // Applied: synced again, at the host's tip.
    h.engine.handle_event(&event, h.chain.as_ref()).unwrap();
    h.applied = a;
    let s = status(&mut c);
    assert_eq!(s.mode, protocol::SyncMode::Synced);
    assert_eq!(s.host_tip, s.index_tip);
}
