//! Hostile clients (issue 6, suite 4): 1,000 connections at once, of four kinds
//! (idle after HELLO, slowloris stuck inside a frame header, garbage, and a
//! scripthash-subscription flood that never reads its answers), while a
//! well-behaved client keeps querying. The server must stay up, keep answering the
//! well-behaved client exactly, close the garbage, and its memory must stay
//! bounded. The well-behaved client's latency before and during the flood is
//! printed (a figure for docs/RELIABILITY.md, not an assertion).
#![cfg(all(feature = "server", feature = "client"))]

mod common;
mod served;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{load_oracle, Rng};
use opnet::client::{from_hex, script_hash, Client, ClientOptions};
use opnet::protocol::{
    self, Hello, Request, UtxoQuery, DEFAULT_MAX_FRAME, MAX_SCRIPTHASHES_PER_REQUEST,
};
use opnet::server::{self, ServerConfig};
use served::Served;

/// A P2WPKH script of the fixture with a few dozen UTXOs at tip A.
const SCRIPT: &str = "0014896e7c810e6b3c78ed9afb310b041f38456cf7e6";

fn frame_bytes(seq: u32, req: &Request) -> Vec<u8> {
    let mut out = BytesMut::new();
    protocol::encode(
        &protocol::request_frame(seq, req),
        DEFAULT_MAX_FRAME,
        &mut out,
    )
    .unwrap();
    out.to_vec()
}

fn hello() -> Vec<u8> {
    frame_bytes(
        1,
        &Request::Hello(Hello {
            min_version: 1,
            max_version: 1,
            max_frame: DEFAULT_MAX_FRAME,
            features: u64::MAX >> 60,
            client_name: "hostile".into(),
        }),
    )
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// `n` queries; returns (p50, p99) in µs, checking every answer.
fn measure(rt: &tokio::runtime::Runtime, client: &Client, want: usize, n: usize) -> (f64, f64) {
    let script = from_hex(SCRIPT).unwrap();
    let query = UtxoQuery {
        scripthash: script_hash(&script),
        ..UtxoQuery::default()
    };
    let mut v = Vec::with_capacity(n);
    rt.block_on(async {
        for _ in 0..n {
            let t = Instant::now();
            let page = client.query_utxos(query.clone()).await.expect("answered");
            v.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(page.entries.len(), want, "exact answer under load");
        }
    });
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[n / 2], v[(n * 99 / 100).min(n - 1)])
}

#[test]
fn a_thousand_hostile_connections_leave_the_server_up_bounded_and_answering() {
    let oracle = load_oracle("oracle-A.json");
    let want = oracle.utxos.iter().filter(|u| u.0 == SCRIPT).count();
    let mut s = Served::new();
    let a = s.steps_to(&oracle.tip_hash);
    s.replay_to(a);
    s.stop_server();
    let socket = s.dir.path().join("hostile.sock");
    let mut config = ServerConfig::new(&socket);
    config.max_connections = 1_100;
    let handle = server::start(config, s.node.clone()).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(Client::connect(&socket, ClientOptions::default()))
        .unwrap();
    let before = measure(&rt, &client, want, 2_000);
    let rss_before = rss_mib();

    let mut rng = Rng(0x0405_711e);
    let hello = hello();
    let mut held = Vec::new();
    // 600 idle after HELLO, never reading.
    for _ in 0..600 {
        let mut c = UnixStream::connect(&socket).unwrap();
        c.write_all(&hello).unwrap();
        held.push(c);
    }
    // 200 slowloris: two bytes of a frame length, then nothing.
    for _ in 0..200 {
        let mut c = UnixStream::connect(&socket).unwrap();
        c.write_all(&hello).unwrap();
        c.write_all(&[0x40, 0x00]).unwrap();
        held.push(c);
    }
    // 150 garbage: the server closes them.
    let mut garbage = Vec::new();
    for _ in 0..150 {
        let mut c = UnixStream::connect(&socket).unwrap();
        let bytes: Vec<u8> = (0..64).map(|_| rng.next() as u8).collect();
        let _ = c.write_all(&bytes);
        garbage.push(c);
    }
    // 50 subscription floods: 20,000 scripthashes each, answers never read.
    for i in 0..50u32 {
        let mut c = UnixStream::connect(&socket).unwrap();
        c.write_all(&hello).unwrap();
        for chunk in 0..2u32 {
            let list: Vec<[u8; 32]> = (0..MAX_SCRIPTHASHES_PER_REQUEST)
                .map(|n| {
                    let mut h = [0u8; 32];
                    h[..4].copy_from_slice(&i.to_le_bytes());
                    h[4..8].copy_from_slice(&chunk.to_le_bytes());
                    h[8..12].copy_from_slice(&n.to_le_bytes());
                    h
                })
                .collect();
            let _ = c.write_all(&frame_bytes(
                2 + chunk,
                &Request::SubscribeScripthashes(list),
            ));
        }
        held.push(c);
    }
    // Let the server take them all in.
    let deadline = Instant::now() + Duration::from_secs(20);
    while handle.connections() < 851 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let open_under_flood = handle.connections();
    let during = measure(&rt, &client, want, 2_000);
    let rss_during = rss_mib();

    // Garbage connections were closed by the server: reading gives EOF or a
    // CLOSING frame followed by EOF.
    let mut closed = 0;
    for mut c in garbage {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        if std::io::Read::read_to_end(&mut c, &mut buf).is_ok() {
            closed += 1;
        }
    }
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    while handle.connections() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = measure(&rt, &client, want, 500);
    eprintln!(
        "hostile: {open_under_flood} connections open under the flood; well-behaved query p50/p99 µs: before {:.0}/{:.0}, during {:.0}/{:.0}, after {:.0}/{:.0}; garbage closed by the server: {closed}/150; RSS {:.1} -> {:.1} MiB; connections after: {}",
        before.0, before.1, during.0, during.1, after.0, after.1, rss_before, rss_during, handle.connections()
    );
    assert!(
        open_under_flood >= 851,
        "the server took the 850 well-formed connections ({open_under_flood})"
    );
    assert_eq!(
        closed, 150,
        "every garbage connection is closed by the server"
    );
    assert_eq!(
        handle.connections(),
        1,
        "only the well-behaved client is left"
    );
    // 50 × 20,000 watched scripthashes is 32 MB of hashes; the rest is per-connection
    // buffers. A leak or an unbounded queue would be far above this.
    assert!(
        rss_during - rss_before < 400.0,
        "memory grew by {:.1} MiB",
        rss_during - rss_before
    );
    drop(client);
    handle.shutdown();
}
