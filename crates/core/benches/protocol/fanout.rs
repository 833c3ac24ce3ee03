//! Fan-out of one BLOCK_CONNECTED event to 100 subscribed connections.
//!
//! Why this way: the event is produced the real way, by `Engine::connect` on the
//! engine the node is attached to (the node's observer publishes it to the hub
//! right after the commit, inside `connect`). Each subscriber is an
//! `opnet::client::Client` with `subscribe(KIND_BLOCKS, Now)` on its own task and
//! timestamps the event when its `EventStream` yields it, so the figure includes
//! the server's writers, the socket and the client's connection task and channel.
//! Per block, the figure is the *last* subscriber's receipt. The publish instant
//! lies between the call to `connect` and its return, so the latency is bracketed:
//! measured from the return it is a lower bound (the publish happened a few
//! microseconds earlier: blocks here are small, so little follows the publish in
//! `connect`), from the call an upper bound (adds the block's commit).
//!
//! The server allows 64 connections by default; this one is started with 128.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opnet::client::{Client, ClientEvent, ClientOptions};
use opnet::protocol::{Event, SubscribeFrom, KIND_BLOCKS};

use crate::util::percentile;
use crate::world::{small_block, Served};

/// Coins each fan-out block spends (10 transactions, 40 outputs).
pub const COINS_PER_BLOCK: usize = 20;

pub struct FanoutReport {
    pub subscribers: usize,
    pub blocks: usize,
    /// Per block: last receipt − connect return (µs, may be slightly negative).
    pub from_return: Vec<f64>,
    /// Per block: last receipt − connect call.
    pub from_call: Vec<f64>,
    /// Per block: first receipt − connect return.
    pub first: Vec<f64>,
    pub connect: Vec<f64>,
}

fn signed_us(t: Instant, since: Instant) -> f64 {
    if t >= since {
        (t - since).as_secs_f64() * 1e6
    } else {
        -((since - t).as_secs_f64() * 1e6)
    }
}

pub fn run(socket: &Path, served: &mut Served, subscribers: usize, blocks: usize) -> FanoutReport {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, rx) = mpsc::channel::<(usize, u64, Instant)>();
    rt.block_on(async {
        for i in 0..subscribers {
            let client = Client::connect(socket, ClientOptions::default())
                .await
                .expect("subscriber connects");
            let mut stream = client
                .subscribe(KIND_BLOCKS, SubscribeFrom::Now)
                .await
                .expect("subscribe");
            let tx = tx.clone();
            tokio::spawn(async move {
                let _client = client;
                while let Some(item) = stream.next().await {
                    if let Ok(ClientEvent::Event(Event::BlockConnected { seq, .. })) = item {
                        let _ = tx.send((i, seq, Instant::now()));
                    }
                }
            });
        }
    });
    drop(tx);
    assert!(
        served.spendable.len() >= (blocks + 1) * COINS_PER_BLOCK,
        "not enough spendable coins for {blocks} blocks"
    );
    let mut report = FanoutReport {
        subscribers,
        blocks,
        from_return: Vec::new(),
        from_call: Vec::new(),
        first: Vec::new(),
        connect: Vec::new(),
    };
    // One warm-up block, not recorded.
    for b in 0..=blocks {
        let spend = served.spendable[b * COINS_PER_BLOCK..][..COINS_PER_BLOCK].to_vec();
        let (block, spent, height) = small_block(&served.engine, &spend, b as u64);
        std::thread::sleep(Duration::from_millis(20));
        let call = Instant::now();
        served
            .engine
            .connect(&block, height, &spent)
            .expect("connect");
        let ret = Instant::now();
        let seq = served.node.hub.last_seq();
        let mut got = 0;
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        while got < subscribers {
            let (_, s, t) = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("every subscriber receives the event");
            if s != seq {
                continue;
            }
            got += 1;
            first = Some(first.map_or(t, |f| f.min(t)));
            last = Some(last.map_or(t, |l| l.max(t)));
        }
        if b == 0 {
            continue;
        }
        let (first, last) = (first.expect("receipts"), last.expect("receipts"));
        report.from_return.push(signed_us(last, ret));
        report.from_call.push(signed_us(last, call));
        report.first.push(signed_us(first, ret));
        report.connect.push((ret - call).as_secs_f64() * 1e6);
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    report
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v
}

pub fn print(r: &FanoutReport) {
    println!();
    println!(
        "Fan-out of BLOCK_CONNECTED to {} subscribed `Client`s (KIND_BLOCKS, Now), {} blocks of 10 tx (max over subscribers per block, then over blocks):",
        r.subscribers, r.blocks
    );
    println!();
    println!("| per block | median µs | p99 µs | max µs |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, v) in [
        (
            "last subscriber, from `connect` returning (lower bound)",
            &r.from_return,
        ),
        (
            "last subscriber, from `connect` called (upper bound)",
            &r.from_call,
        ),
        ("first subscriber, from `connect` returning", &r.first),
        ("`connect` itself (commit + publish)", &r.connect),
    ] {
        let s = sorted(v);
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            percentile(&s, 0.5),
            percentile(&s, 0.99),
            s.last().copied().unwrap_or(f64::NAN)
        );
    }
}
