//! Pipelined QUERY_UTXOS throughput on 1 and on N connections, the server at its
//! default configuration (max_inflight 32, rate limit 1,000,000/s per connection).
//!
//! Why this way: a client keeping `window` requests in flight per connection never
//! lets the server wait for it, so the rate is the server's (plus whatever the
//! client costs on the same two cores). Two clients are measured:
//! - `opnet::client::Client`: `window` tasks per connection, each sending its next
//!   query as soon as its answer came (decodes every answer fully);
//! - a raw pipelined client, one blocking thread per connection that tops the
//!   window up as answers arrive and checks only each answer's type and status
//!   byte, so as much of the machine as possible goes to the server.
//!
//! Only answers with status OK are counted; anything else (RATE_LIMITED) is
//! counted separately and reported. For reference the raw client also sends PING
//! (empty payload) the same way: the same framing, reader, rate limit and writer,
//! no index read, so the difference is what the index read costs.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use opnet::client::{Client, ClientOptions};
use opnet::protocol::{self, Request, UtxoQuery};

use crate::util::{frame_bytes, is_ok_answer, RawConn};
use crate::world::TARGET_UTXOS;

pub struct Rate {
    pub client: &'static str,
    pub connections: usize,
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// The Rust client: `window` tasks per connection on a 2-worker runtime.
pub fn rust_client(
    socket: &Path,
    target: [u8; 32],
    connections: usize,
    window: usize,
    secs: f64,
) -> Rate {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let query = UtxoQuery {
        scripthash: target,
        ..UtxoQuery::default()
    };
    rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..connections {
            clients.push(
                Client::connect(socket, ClientOptions::default())
                    .await
                    .expect("client connects"),
            );
        }
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for client in &clients {
            for _ in 0..window {
                let (client, query) = (client.clone(), query.clone());
                let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
                tasks.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match client.query_utxos(query.clone()).await {
                            Ok(p) if p.entries.len() == TARGET_UTXOS => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        while tasks.join_next().await.is_some() {}
        Rate {
            client: "Rust client",
            connections,
            ok: ok.load(Ordering::Relaxed),
            failed: failed.load(Ordering::Relaxed),
            elapsed: start.elapsed(),
        }
    })
}

/// The raw pipelined client: one blocking thread per connection, sending `req`.
pub fn raw_client(
    socket: &Path,
    req: &Request,
    label: &'static str,
    connections: usize,
    window: usize,
    secs: f64,
) -> Rate {
    let template = frame_bytes(&protocol::request_frame(1, req));
    let answer_kind = protocol::response_kind(req.kind());
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut threads = Vec::new();
    for _ in 0..connections {
        let mut conn = RawConn::connect(socket);
        let template = template.clone();
        let barrier = barrier.clone();
        threads.push(std::thread::spawn(move || {
            let mut out: Vec<u8> = Vec::with_capacity(template.len() * window);
            let mut seq = 1u32;
            let mut push = |out: &mut Vec<u8>| {
                seq = seq.wrapping_add(1).max(2);
                let at = out.len();
                out.extend_from_slice(&template);
                out[at + 5..at + 9].copy_from_slice(&seq.to_le_bytes());
            };
            barrier.wait();
            let start = Instant::now();
            let deadline = start + Duration::from_secs_f64(secs);
            for _ in 0..window {
                push(&mut out);
            }
            conn.stream.write_all(&out).expect("write");
            out.clear();
            let mut inflight = window;
            let (mut ok, mut failed) = (0u64, 0u64);
            while inflight > 0 {
                conn.fill();
                let open = Instant::now() < deadline;
                while let Some(frame) = conn.try_frame() {
                    inflight -= 1;
                    if is_ok_answer(&frame, answer_kind) {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                    if open {
                        push(&mut out);
                        inflight += 1;
                    }
                }
                if !out.is_empty() {
                    conn.stream.write_all(&out).expect("write");
                    out.clear();
                }
            }
            (ok, failed, start.elapsed())
        }));
    }
    barrier.wait();
    let mut rate = Rate {
        client: label,
        connections,
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
    };
    for t in threads {
        let (ok, failed, elapsed) = t.join().expect("client thread");
        rate.ok += ok;
        rate.failed += failed;
        rate.elapsed = rate.elapsed.max(elapsed);
    }
    rate
}

pub fn print(rates: &[Rate], window: usize, secs: f64) {
    println!();
    println!(
        "Pipelined QUERY_UTXOS (10 UTXOs), {window} requests in flight per connection, {secs} s per row, default server config (PING on one connection meets the rate limit: 1,000,000/s plus one second's burst; the rest is answered RATE_LIMITED):"
    );
    println!();
    println!("| client | connections | requests/s | answered OK | not OK |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for r in rates {
        println!(
            "| {} | {} | {:.0} | {} | {} |",
            r.client,
            r.connections,
            r.per_sec(),
            r.ok,
            r.failed
        );
    }
}
