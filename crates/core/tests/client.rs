//! The Rust client against a real `opnet.sock` server over the fixture's replayed
//! chain (queries, paging, pipelining, events, reconnect), and against a scripted
//! fake server for what a real one never does (malformed answers, answers to no
//! request, dropped connections).
#![cfg(all(feature = "server", feature = "client"))]

mod common;
mod served;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bytes::{Bytes, BytesMut};
use common::{load_oracle, unhex, Oracle};
use opnet::client::{
    display_hash, script_hash, Client, ClientError, ClientEvent, ClientOptions, EventStream,
};
use opnet::protocol::{
    self, BlockRef, BlockSelector, Event, Frame, FrameDecoder, HelloReply, Request, Response, Sort,
    Status, SubscribeFrom, UtxoEntry, UtxoQuery, DEFAULT_MAX_FRAME, ENTRY_COINBASE, KIND_BLOCKS,
};
use opnet::replay::ReplayStep;
use opnet::Network;
use served::Served;

/// The P2WPKH script that received 2,500 outputs in one transaction.
const WHALE: &str = "00142a941deed62839991916d8a04ec99b548ee3f398";
/// Long enough for any answer here, short enough to fail a hung test quickly.
const WAIT: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn options() -> ClientOptions {
    ClientOptions {
        network: Some(Network::Regtest),
        ..ClientOptions::default()
    }
}

/// (txid in internal order, vout, sats, height, coinbase): what an entry and an
/// oracle line have in common.
type Row = ([u8; 32], u32, u64, u32, bool);

fn row(e: &UtxoEntry) -> Row {
    (
        e.txid,
        e.vout,
        e.value,
        e.height,
        e.flags & ENTRY_COINBASE != 0,
    )
}

/// The oracle's UTXOs of `script`, in outpoint order (txid bytes, then vout).
fn oracle_rows(oracle: &Oracle, script: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = oracle
        .utxos
        .iter()
        .filter(|u| u.0 == script)
        .map(|u| {
            let txid: bitcoin::Txid = u.1.parse().unwrap();
            (txid.to_byte_array(), u.2, u.3, u.4, u.5)
        })
        .collect();
    rows.sort_by_key(|r| (r.0, r.1));
    rows
}

fn whale_query(limit: u32) -> UtxoQuery {
    UtxoQuery {
        scripthash: script_hash(&unhex(WHALE)),
        limit,
        ..UtxoQuery::default()
    }
}

/// Reads the next stream item, failing the test after [`WAIT`].
async fn next(stream: &mut EventStream) -> ClientEvent {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event within the wait")
        .expect("the stream goes on")
        .expect("no stream error")
}

/// Checks that `event` is exactly what step `i` (0-based) of the script produced:
/// event number `i + 1`, the block's height, hash, parent, time and transaction
/// count, and the output counts the index logged for it.
fn assert_step_event(s: &Served, i: usize, event: &ClientEvent) {
    let (height, hash, prev) = s.step_block(i);
    let seq = i as u64 + 1;
    let block = BlockRef { height, hash };
    let logged = s.engine.store().unwrap().events_after(seq - 1).unwrap();
    let record = &logged[0];
    assert_eq!(record.seq, seq);
    match (s.steps[i], event) {
        (ReplayStep::Connect(h), ClientEvent::Event(ev)) => {
            let b = &s.block(&h).block;
            assert_eq!(
                ev,
                &Event::BlockConnected {
                    seq,
                    block,
                    prev_hash: prev,
                    time: b.header.time,
                    tx_count: b.txdata.len() as u32,
                    outputs_added: record.added,
                    outputs_removed: record.removed,
                },
                "step {i}"
            );
        }
        (ReplayStep::Disconnect(_), ClientEvent::Event(ev)) => {
            assert_eq!(
                ev,
                &Event::BlockDisconnected {
                    seq,
                    block,
                    prev_hash: prev,
                    outputs_added: record.added,
                    outputs_removed: record.removed,
                },
                "step {i}"
            );
        }
        (_, other) => panic!("step {i}: expected a block event, got {other:?}"),
    }
}

#[test]
fn hello_and_whale_query_equal_the_oracle_at_both_tips() {
    let oracle_a = load_oracle("oracle-A.json");
    let oracle_b = load_oracle("oracle-B.json");
    let mut s = Served::new();
    let to_a = s.steps_to(&oracle_a.tip_hash);
    assert_eq!(to_a, 170);
    s.replay_to(to_a);
    let rt = runtime();
    let client = rt.block_on(Client::connect(&s.socket, options())).unwrap();
    let hello = client.hello();
    assert_eq!(hello.network, Network::Regtest.id());
    assert_eq!(client.network(), Some(Network::Regtest));
    // The replayed chain has no transaction index: everything but TX_INDEX.
    assert_eq!(hello.features, 0b0111);
    assert_eq!(hello.max_results, 10_000);
    assert_eq!(hello.event_seq, 170);
    assert_eq!(display_hash(&hello.tip.hash), oracle_a.tip_hash);

    let check = |oracle: &Oracle| {
        rt.block_on(async {
            let page = client.query_utxos(whale_query(0)).await.unwrap();
            assert_eq!(page.tip.height, oracle.tip_height);
            assert_eq!(display_hash(&page.tip.hash), oracle.tip_hash);
            assert_eq!(page.script, unhex(WHALE));
            assert!(!page.more);
            assert_eq!(page.cursor, None);
            let rows: Vec<Row> = page.entries.iter().map(row).collect();
            let want = oracle_rows(oracle, WHALE);
            assert!(want.len() > 1900, "the whale has {} UTXOs", want.len());
            assert_eq!(rows, want);

            let status = client.sync_status().await.unwrap();
            assert_eq!(status.index_tip, page.tip);
            assert_eq!(status.utxo_count, oracle.txouts);
            assert_eq!(status.total_value, oracle.total_amount);
        })
    };
    check(&oracle_a);
    let all = s.steps.len();
    s.replay_to(all);
    check(&oracle_b);
}

#[test]
fn utxo_stream_yields_every_utxo_once_in_order_page_by_page() {
    let oracle = load_oracle("oracle-A.json");
    let mut s = Served::new();
    let to_a = s.steps_to(&oracle.tip_hash);
    s.replay_to(to_a);
    let want = oracle_rows(&oracle, WHALE);
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&s.socket, options()).await.unwrap();

        // Pages of 100 with prefetch: every UTXO exactly once, in outpoint order.
        let mut stream = client.utxo_stream(whale_query(100));
        let mut rows = Vec::new();
        let mut sizes = Vec::new();
        while let Some(page) = stream.next_page().await {
            let page = page.unwrap();
            assert_eq!(page.script, unhex(WHALE));
            assert_eq!(page.more, page.cursor.is_some());
            sizes.push(page.entries.len());
            rows.extend(page.entries.iter().map(row));
        }
        let full = want.len() / 100;
        let mut want_sizes = vec![100; full];
        if want.len() % 100 != 0 {
            want_sizes.push(want.len() % 100);
        }
        assert_eq!(sizes, want_sizes);
        assert_eq!(rows, want);
        assert_eq!(stream.pages(), want_sizes.len() as u64);
        assert!(!stream.tip_changed());
        assert_eq!(stream.tip().map(|t| t.height), Some(170));
        assert!(stream.next_page().await.is_none(), "the stream is finished");

        // Entry by entry, no prefetch, capped at 250: three requests (100, 100, 50).
        let mut capped = client
            .utxo_stream(whale_query(100))
            .prefetch(false)
            .max_entries(250);
        let mut first = Vec::new();
        while let Some(e) = capped.next_entry().await {
            first.push(row(&e.unwrap()));
        }
        assert_eq!(first, want[..250].to_vec());
        assert_eq!(capped.pages(), 3);

        // Filters and another order, checked against the oracle: value ≥ 1,000,000
        // confirmed at or below height 150, largest first, ties by outpoint.
        let query = UtxoQuery {
            min_value: 1_000_000,
            max_height: Some(150),
            sort: Sort::ValueDesc,
            ..whale_query(37)
        };
        let mut stream = client.utxo_stream(query);
        let mut rows = Vec::new();
        while let Some(e) = stream.next_entry().await {
            rows.push(row(&e.unwrap()));
        }
        let mut sorted: Vec<Row> = want
            .iter()
            .filter(|r| r.2 >= 1_000_000 && r.3 <= 150)
            .copied()
            .collect();
        sorted.sort_by_key(|r| (std::cmp::Reverse(r.2), r.0, r.1));
        assert!(!sorted.is_empty());
        assert_eq!(rows, sorted);
    });
}

#[test]
fn a_thousand_pipelined_pings_are_all_answered() {
    let s = Served::new();
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&s.socket, options()).await.unwrap();
        let payload = |i: u32| -> Bytes {
            let mut p = Vec::new();
            for _ in 0..(i % 40) {
                p.extend_from_slice(&i.to_le_bytes());
            }
            // One large payload among the small ones.
            if i == 500 {
                p = vec![0xA5; 1 << 20];
            }
            Bytes::from(p)
        };
        let tasks: Vec<_> = (0..1000u32)
            .map(|i| {
                let c = client.clone();
                tokio::spawn(async move { (i, c.ping(payload(i)).await) })
            })
            .collect();
        for t in tasks {
            let (i, echo) = t.await.unwrap();
            assert_eq!(echo.unwrap(), payload(i), "ping {i}");
        }
    });
}

#[test]
fn block_and_transaction_lookups_return_the_recorded_data() {
    let mut s = Served::new();
    s.replay_to(150);
    let b = s
        .blocks
        .iter()
        .find(|b| b.height == 120)
        .unwrap()
        .block
        .clone();
    let hash = b.block_hash().to_byte_array();
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&s.socket, options()).await.unwrap();
        let txids: Vec<[u8; 32]> = b
            .txdata
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect();
        let by_height = client
            .block_txids(BlockSelector::Height(120))
            .await
            .unwrap();
        assert_eq!(by_height.block, BlockRef { height: 120, hash });
        assert_eq!(by_height.txids, txids);
        let by_hash = client.block_txids(BlockSelector::Hash(hash)).await.unwrap();
        assert_eq!(by_hash, by_height);

        let header = client
            .block_header(BlockSelector::Height(120))
            .await
            .unwrap();
        assert_eq!(header.decode().unwrap(), b.header);
        assert_eq!(
            header.header.to_vec(),
            bitcoin::consensus::serialize(&b.header)
        );

        let tx = &b.txdata[b.txdata.len() - 1];
        let got = client
            .transaction(tx.compute_txid().to_byte_array(), Some(hash))
            .await
            .unwrap();
        assert_eq!(got.block, BlockRef { height: 120, hash });
        assert_eq!(got.raw, bitcoin::consensus::serialize(tx));
        assert_eq!(&got.decode().unwrap(), tx);

        // No transaction index and no block: UNAVAILABLE. Beyond the tip: NOT_FOUND.
        let e = client
            .transaction(tx.compute_txid().to_byte_array(), None)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(Status::Unavailable), "{e}");
        let e = client
            .block_header(BlockSelector::Height(151))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                ClientError::Server {
                    status: Status::NotFound,
                    ..
                }
            ),
            "{e}"
        );
        // The connection is still good after errors.
        assert_eq!(
            client.ping(&b"still here"[..]).await.unwrap(),
            &b"still here"[..]
        );
    });
}

#[test]
fn an_event_stream_gets_exactly_the_blocks_replayed_after_subscribing() {
    let mut s = Served::new();
    s.replay_to(100);
    let rt = runtime();
    let client = rt.block_on(Client::connect(&s.socket, options())).unwrap();
    let mut stream = rt
        .block_on(client.subscribe(KIND_BLOCKS, SubscribeFrom::Now))
        .unwrap();
    assert_eq!(stream.last_seq(), 100);
    // The rest of the script: branch A to 170, the reorg (three disconnects), then
    // branch B to 172.
    let all = s.steps.len();
    assert_eq!(all, 178);
    s.replay_to(all);
    rt.block_on(async {
        for i in 100..all {
            let ev = next(&mut stream).await;
            assert_step_event(&s, i, &ev);
        }
        assert_eq!(stream.last_seq(), 178);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), stream.next())
                .await
                .is_err(),
            "no event beyond the script"
        );

        // Replay from an event number: exactly the events after it. The new
        // subscription replaces the old one, whose stream ends.
        let mut replay = client
            .subscribe(KIND_BLOCKS, SubscribeFrom::AfterSeq(165))
            .await
            .unwrap();
        assert!(stream.next().await.is_none(), "the replaced stream ended");
        for i in 165..all {
            let ev = next(&mut replay).await;
            assert_step_event(&s, i, &ev);
        }
    });
}

#[test]
fn a_consumer_that_falls_behind_still_gets_every_event_once() {
    let mut s = Served::new();
    let all = s.steps.len();
    s.replay_to(all);
    let rt = runtime();
    rt.block_on(async {
        // A buffer of 8 events: the 178-event replay overflows it many times over,
        // and each time the stream resubscribes after what it delivered.
        let client = Client::connect(
            &s.socket,
            ClientOptions {
                event_buffer: 8,
                ..options()
            },
        )
        .await
        .unwrap();
        let mut stream = client
            .subscribe(KIND_BLOCKS, SubscribeFrom::AfterSeq(0))
            .await
            .unwrap();
        for i in 0..all {
            let ev = next(&mut stream).await;
            assert_step_event(&s, i, &ev);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(300), stream.next())
                .await
                .is_err(),
            "nothing repeated"
        );
    });
    s.stop_server();
}

#[test]
fn reconnect_resumes_with_exactly_the_missed_events() {
    let mut s = Served::new();
    s.replay_to(150);
    let rt = runtime();
    let watch = [script_hash(&unhex(WHALE))];
    let client = rt
        .block_on(Client::connect(
            &s.socket,
            ClientOptions {
                reconnect: true,
                ..options()
            },
        ))
        .unwrap();
    let mut stream = rt
        .block_on(async {
            let w = client.subscribe_scripthashes(&watch).await.unwrap();
            assert_eq!((w.changed, w.total), (1, 1));
            client.subscribe(KIND_BLOCKS, SubscribeFrom::Now).await
        })
        .unwrap();
    s.replay_to(160);
    rt.block_on(async {
        for i in 150..160 {
            assert_step_event(&s, i, &next(&mut stream).await);
        }
    });

    // The server goes away; blocks keep coming (through the reorg) while it is down.
    s.stop_server();
    s.replay_to(175);
    rt.block_on(async {
        match next(&mut stream).await {
            ClientEvent::Disconnected(ClientError::Closed {
                closing: Some(reply),
            }) => assert_eq!(reply.status, Status::ShuttingDown),
            other => panic!("expected a disconnect with CLOSING, got {other:?}"),
        }
        // Requests while disconnected fail at once; nothing is retried silently.
        let e = client.ping(&b"x"[..]).await.unwrap_err();
        assert!(matches!(e, ClientError::Closed { .. }), "{e}");
        // Let a few reconnect attempts fail against the missing socket.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let e = client.ping(&b"x"[..]).await.unwrap_err();
        assert!(matches!(e, ClientError::Closed { .. }), "{e}");
    });

    s.start_server();
    rt.block_on(async {
        match next(&mut stream).await {
            ClientEvent::Reconnected {
                hello,
                event_seq,
                resume_after,
            } => {
                assert_eq!((resume_after, event_seq), (160, 175));
                assert_eq!(hello.event_seq, 175);
            }
            other => panic!("expected Reconnected, got {other:?}"),
        }
        for i in 160..175 {
            assert_step_event(&s, i, &next(&mut stream).await);
        }
        assert_eq!(stream.last_seq(), 175);
        // The new connection serves requests and watches the same scripthash.
        assert_eq!(client.ping(&b"back"[..]).await.unwrap(), &b"back"[..]);
        let w = client.subscribe_scripthashes(&watch).await.unwrap();
        assert_eq!((w.changed, w.total), (0, 1), "the watch was restored");
    });

    // Live again.
    let all = s.steps.len();
    s.replay_to(all);
    rt.block_on(async {
        for i in 175..all {
            assert_step_event(&s, i, &next(&mut stream).await);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(300), stream.next())
                .await
                .is_err(),
            "nothing repeated"
        );
    });
}

#[test]
fn connect_errors_name_the_socket_and_the_network() {
    let s = Served::new();
    let rt = runtime();
    rt.block_on(async {
        let missing = s.dir.path().join("nowhere.sock");
        let e = Client::connect(&missing, options()).await.err().unwrap();
        match &e {
            ClientError::Connect { path, error } => {
                assert_eq!(path, &missing);
                assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Connect, got {other:?}"),
        }
        assert!(e.to_string().contains(&missing.display().to_string()));

        let e = Client::connect(
            &s.socket,
            ClientOptions {
                network: Some(Network::Main),
                ..options()
            },
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(
                e,
                ClientError::WrongNetwork {
                    expected: Network::Main,
                    got: 4
                }
            ),
            "{e}"
        );
        assert_eq!(e.to_string(), "the server serves regtest, not main");
    });
}

// ---- A scripted fake server, for what a real one never sends. ----

/// A server on its own thread that answers HELLO (or runs `hello` instead) and then
/// hands the connection to `script`.
fn fake_server(
    path: &Path,
    script: impl FnOnce(&mut Peer) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut peer = Peer {
            stream,
            buf: BytesMut::new(),
            dec: FrameDecoder::new(DEFAULT_MAX_FRAME),
        };
        script(&mut peer);
    })
}

struct Peer {
    stream: UnixStream,
    buf: BytesMut,
    dec: FrameDecoder,
}

impl Peer {
    /// The next frame from the client; `None` when it closed the connection.
    fn read(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn send(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        protocol::encode(frame, DEFAULT_MAX_FRAME, &mut out).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    fn send_raw(&mut self, kind: u8, seq: u32, body: &[u8]) {
        self.send(&Frame {
            kind,
            seq,
            body: Bytes::copy_from_slice(body),
        });
    }

    /// Answers the client's HELLO with a regtest server's reply.
    fn hello(&mut self, max_frame: u32) {
        let f = self.read().unwrap();
        assert_eq!(f.kind, protocol::kind::HELLO);
        let reply = HelloReply {
            version: 1,
            features: 0b0111,
            network: Network::Regtest.id(),
            max_frame,
            max_results: 100,
            max_inflight: 32,
            max_scripthashes: 10,
            rate_limit: 0,
            event_seq: 0,
            tip: BlockRef::default(),
            server_name: "fake".into(),
        };
        self.send(&protocol::response_frame(f.seq, &Response::Hello(reply)));
    }

    /// Reads a request, checking its type; returns its sequence number.
    fn request(&mut self, kind: u8) -> u32 {
        let f = self.read().unwrap();
        assert_eq!(f.kind, kind);
        assert!(Request::decode(f.kind, &f.body).is_ok());
        f.seq
    }

    /// True once the client has closed its side.
    fn closed_by_client(&mut self) -> bool {
        self.read().is_none()
    }
}

fn fake_path() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    (dir, path)
}

#[test]
fn a_malformed_answer_fails_the_request_and_closes_the_connection() {
    let (_dir, path) = fake_path();
    let server = fake_server(&path, |p| {
        p.hello(DEFAULT_MAX_FRAME);
        let seq = p.request(protocol::kind::GET_SYNC_STATUS);
        // Status OK and then two bytes of a body that needs 129.
        p.send_raw(0x83, seq, &[0, 3, 0]);
        assert!(p.closed_by_client());
    });
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&path, options()).await.unwrap();
        let e = client.sync_status().await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Protocol(m) if m.contains("0x83")),
            "{e}"
        );
        // The connection is gone, with the same reason.
        let e = client.ping(&b"x"[..]).await.unwrap_err();
        assert!(matches!(e, ClientError::Protocol(_)), "{e}");
    });
    server.join().unwrap();
}

#[test]
fn an_answer_to_no_request_closes_the_connection() {
    let (_dir, path) = fake_path();
    let server = fake_server(&path, |p| {
        p.hello(DEFAULT_MAX_FRAME);
        let seq = p.request(protocol::kind::PING);
        p.send_raw(0x8B, seq.wrapping_add(1000), &[0]);
        assert!(p.closed_by_client());
    });
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&path, options()).await.unwrap();
        let e = client.ping(&b"x"[..]).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Protocol(m) if m.contains("no request is waiting")),
            "{e}"
        );
    });
    server.join().unwrap();
}

#[test]
fn an_unknown_status_fails_only_its_request() {
    let (_dir, path) = fake_path();
    let server = fake_server(&path, |p| {
        p.hello(DEFAULT_MAX_FRAME);
        let seq = p.request(protocol::kind::PING);
        let mut body = vec![200];
        body.extend_from_slice(&7u32.to_le_bytes());
        body.extend_from_slice(&3u16.to_le_bytes());
        body.extend_from_slice(b"new");
        p.send_raw(0x8B, seq, &body);
        let seq = p.request(protocol::kind::PING);
        p.send_raw(0x8B, seq, b"\0ok");
    });
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&path, options()).await.unwrap();
        match client.ping(&b"a"[..]).await.unwrap_err() {
            ClientError::UnknownStatus {
                code,
                detail,
                message,
            } => assert_eq!((code, detail, message.as_str()), (200, 7, "new")),
            other => panic!("expected UnknownStatus, got {other:?}"),
        }
        assert_eq!(client.ping(&b"b"[..]).await.unwrap(), &b"ok"[..]);
    });
    server.join().unwrap();
}

#[test]
fn requests_in_flight_fail_with_closed_when_the_connection_drops() {
    let (_dir, path) = fake_path();
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let server = fake_server(&path, move |p| {
        p.hello(DEFAULT_MAX_FRAME);
        // Take two requests, answer neither, hang up.
        p.request(protocol::kind::PING);
        p.request(protocol::kind::GET_SYNC_STATUS);
        got_tx.send(()).unwrap();
    });
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&path, options()).await.unwrap();
        let c = client.clone();
        let ping = tokio::spawn(async move { c.ping(&b"x"[..]).await });
        let c = client.clone();
        let status = tokio::spawn(async move { c.sync_status().await });
        let ping = ping.await.unwrap().unwrap_err();
        let status = status.await.unwrap().unwrap_err();
        assert!(
            matches!(ping, ClientError::Closed { closing: None }),
            "{ping}"
        );
        assert!(
            matches!(status, ClientError::Closed { closing: None }),
            "{status}"
        );
    });
    got_rx.recv().unwrap();
    server.join().unwrap();
}

#[test]
fn closing_instead_of_hello_and_oversized_frames_are_reported() {
    let (_dir, path) = fake_path();
    let server = fake_server(&path, |p| {
        p.read().unwrap();
        let closing = Event::Closing {
            seq: 0,
            status: Status::TooManyConnections,
            detail: 64,
            message: "the server allows 64 connections".into(),
        };
        p.send(&protocol::event_frame(&closing));
    });
    let rt = runtime();
    rt.block_on(async {
        let e = Client::connect(&path, options()).await.err().unwrap();
        assert_eq!(e.status(), Some(Status::TooManyConnections), "{e}");
        assert!(e.to_string().contains("TOO_MANY_CONNECTIONS"), "{e}");
    });
    server.join().unwrap();

    // A server that negotiates 4,096-byte frames and then sends a larger one.
    let (_dir, path) = fake_path();
    let server = fake_server(&path, |p| {
        p.hello(4096);
        let f = p.read().unwrap();
        assert_eq!((f.kind, &f.body[..]), (protocol::kind::PING, &b"small"[..]));
        p.send_raw(0x8B, f.seq, &[0; 5000]);
        assert!(p.closed_by_client());
    });
    rt.block_on(async {
        let client = Client::connect(
            &path,
            ClientOptions {
                max_frame: 4096,
                ..options()
            },
        )
        .await
        .unwrap();
        // A request above the negotiated maximum is refused before it is sent.
        let e = client.ping(vec![0u8; 5000]).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Invalid(m) if m.contains("4096")),
            "{e}"
        );
        let e = client.ping(&b"small"[..]).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Protocol(m) if m.contains("exceeds")),
            "{e}"
        );
    });
    server.join().unwrap();
}
