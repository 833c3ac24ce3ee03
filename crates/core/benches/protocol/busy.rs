//! QUERY_UTXOS latency while mainnet-shaped blocks are being connected.
//!
//! Why this way: one client (`opnet::client::Client`, on its own thread) queries the
//! 10-UTXO scripthash back to back for the whole run; the main thread first leaves
//! the index idle (the baseline, same client, same index, same run), then connects
//! the blocks back to back through `Engine::connect`, as the host's writer thread
//! does when it catches up. Back to back is the worst case: on mainnet a block
//! arrives every ten minutes, so the share of queries that meet a commit is far
//! smaller, but the ones that do wait as long as here. Each query also records
//! whether the index was being written when it was sent
//! (`IndexStore::is_writing`), which separates the queries that waited for a
//! commit from the ones that only competed for the two cores.
//!
//! A back-to-back client has a blind spot: while one of its queries waits for a
//! commit it sends nothing, so a 40 ms stall costs it one slow sample where a
//! steady stream of requests would have had hundreds (coordinated omission). So a
//! second, open-loop client runs at the same time: it starts `open_rate` queries
//! per second on a fixed 1 ms schedule whether or not earlier ones have been
//! answered, each timed from its own start. Its percentiles are what a server with
//! steady traffic sees.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use opnet::client::{Client, ClientOptions};
use opnet::index::IndexStore;
use opnet::protocol::UtxoQuery;

use crate::util::{ms, summarize, us, Summary};
use crate::world::{Busy, TARGET_UTXOS};

/// Latencies of one client, idle and during the connects.
pub struct ClientFigures {
    pub idle: Summary,
    pub busy: Summary,
    pub busy_writing: Option<Summary>,
    pub busy_not_writing: Option<Summary>,
    pub over_2ms: usize,
}

pub struct BusyReport {
    pub utxos: u64,
    pub blocks: usize,
    pub block_kb: usize,
    pub open_rate: u32,
    pub closed: ClientFigures,
    pub open: ClientFigures,
    pub connect: Summary,
    pub window: Duration,
    pub connecting: Duration,
}

#[derive(Clone, Copy)]
struct Sample {
    start: Instant,
    took: Duration,
    writing: bool,
}

/// What both query threads share.
struct Querier {
    socket: PathBuf,
    query: UtxoQuery,
    store: Arc<IndexStore>,
    stop: Arc<AtomicBool>,
    ready: Arc<Barrier>,
}

impl Querier {
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    async fn connect(&self) -> Client {
        let client = Client::connect(&self.socket, ClientOptions::default())
            .await
            .expect("client connects");
        // Warm up the connection and the index's blocks.
        for _ in 0..1000 {
            client.query_utxos(self.query.clone()).await.expect("query");
        }
        client
    }

    /// One query after the other until told to stop.
    fn closed_loop(self) -> Vec<Sample> {
        Self::runtime().block_on(async {
            let client = self.connect().await;
            self.ready.wait();
            let mut samples = Vec::with_capacity(1 << 20);
            while !self.stop.load(Ordering::Relaxed) {
                let writing = self.store.is_writing();
                let start = Instant::now();
                let page = client.query_utxos(self.query.clone()).await.expect("query");
                let took = start.elapsed();
                assert_eq!(page.entries.len(), TARGET_UTXOS);
                samples.push(Sample {
                    start,
                    took,
                    writing,
                });
            }
            samples
        })
    }

    /// `per_ms` queries started every millisecond, each on its own task, until told
    /// to stop; then waits for the ones still out.
    fn open_loop(self, per_ms: u32) -> Vec<Sample> {
        Self::runtime().block_on(async {
            let client = self.connect().await;
            let samples = Arc::new(Mutex::new(Vec::with_capacity(1 << 20)));
            let mut tasks = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            self.ready.wait();
            while !self.stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..per_ms {
                    let (client, query) = (client.clone(), self.query.clone());
                    let (store, samples) = (self.store.clone(), samples.clone());
                    tasks.spawn(async move {
                        let writing = store.is_writing();
                        let start = Instant::now();
                        let page = client.query_utxos(query).await.expect("query");
                        let took = start.elapsed();
                        assert_eq!(page.entries.len(), TARGET_UTXOS);
                        samples.lock().unwrap().push(Sample {
                            start,
                            took,
                            writing,
                        });
                    });
                }
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
            let v = samples.lock().unwrap().clone();
            v
        })
    }
}

fn figures(
    samples: &[Sample],
    idle: (Instant, Instant),
    busy: (Instant, Instant),
) -> ClientFigures {
    let within =
        |(a, b): (Instant, Instant)| samples.iter().filter(move |s| s.start >= a && s.start < b);
    let busy_s: Vec<&Sample> = within(busy).collect();
    let split = |w: bool| {
        let v: Vec<Duration> = busy_s
            .iter()
            .filter(|s| s.writing == w)
            .map(|s| s.took)
            .collect();
        (!v.is_empty()).then(|| summarize(v))
    };
    ClientFigures {
        idle: summarize(within(idle).map(|s| s.took).collect()),
        busy: summarize(busy_s.iter().map(|s| s.took).collect()),
        busy_writing: split(true),
        busy_not_writing: split(false),
        over_2ms: busy_s
            .iter()
            .filter(|s| s.took > Duration::from_millis(2))
            .count(),
    }
}

pub fn run(socket: &Path, busy: &mut Busy, idle: Duration, open_per_ms: u32) -> BusyReport {
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(3));
    let querier = || Querier {
        socket: socket.to_path_buf(),
        query: UtxoQuery {
            scripthash: busy.target,
            ..UtxoQuery::default()
        },
        store: busy.engine.store().expect("store"),
        stop: stop.clone(),
        ready: ready.clone(),
    };
    let closed = {
        let q = querier();
        std::thread::spawn(move || q.closed_loop())
    };
    let open = {
        let q = querier();
        std::thread::spawn(move || q.open_loop(open_per_ms))
    };
    ready.wait();
    let idle_start = Instant::now();
    std::thread::sleep(idle);
    let busy_start = Instant::now();
    let mut connects = Vec::new();
    let mut sizes = 0usize;
    for (block, spent, height) in &busy.blocks {
        sizes += bitcoin::consensus::serialize(block).len();
        let t = Instant::now();
        busy.engine.connect(block, *height, spent).expect("connect");
        connects.push(t.elapsed());
    }
    let busy_end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let closed = closed.join().expect("closed-loop thread");
    let open = open.join().expect("open-loop thread");
    let (idle_w, busy_w) = ((idle_start, busy_start), (busy_start, busy_end));
    BusyReport {
        utxos: busy.utxos,
        blocks: busy.blocks.len(),
        block_kb: sizes / busy.blocks.len().max(1) / 1000,
        open_rate: open_per_ms * 1000,
        closed: figures(&closed, idle_w, busy_w),
        open: figures(&open, idle_w, busy_w),
        connecting: connects.iter().sum(),
        connect: summarize(connects),
        window: busy_end - busy_start,
    }
}

pub fn print(r: &BusyReport) {
    println!();
    println!(
        "QUERY_UTXOS (10 UTXOs, `Client`) on a {}-UTXO index, idle and while {} blocks of 3,000 tx / 7,000 outputs / 6,000 inputs ({} KB) are connected back to back ({:.1} s, {:.0}% of it inside `connect`); two clients at once, one back to back, one open-loop at {}/s:",
        r.utxos,
        r.blocks,
        r.block_kb,
        r.window.as_secs_f64(),
        100.0 * r.connecting.as_secs_f64() / r.window.as_secs_f64(),
        r.open_rate
    );
    println!();
    println!("| client | queries | n | p50 µs | p99 µs | max µs | > 2 ms |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (client, f) in [("back to back", &r.closed), ("open loop", &r.open)] {
        let row = |name: &str, s: Summary, over: Option<usize>| {
            println!(
                "| {client} | {name} | {} | {:.0} | {:.0} | {:.0} | {} |",
                s.n,
                us(s.p50),
                us(s.p99),
                us(s.max),
                over.map_or(String::new(), |o| format!(
                    "{:.2}%",
                    100.0 * o as f64 / s.n as f64
                ))
            )
        };
        row("idle index", f.idle, None);
        row("during the block connects", f.busy, Some(f.over_2ms));
        if let Some(s) = f.busy_not_writing {
            row("… sent while no write was in progress", s, None);
        }
        if let Some(s) = f.busy_writing {
            row("… sent while a write held the index", s, None);
        }
    }
    println!();
    println!("| block connect | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| connect (commit included) | {:.1} | {:.1} | {:.1} |",
        ms(r.connect.p50),
        ms(r.connect.p99),
        ms(r.connect.max)
    );
}
