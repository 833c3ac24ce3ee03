//! The Node.js package (`opnet-native`, issue 5) against the same server, next to
//! the Rust client in the same run.
//!
//! Why this way: the Node side is `bench/node-client.mjs`, a child process using
//! the package exactly as OPNet would (`require('opnet-native')`'s index.js, the
//! napi addon). Latency: the same sequential 10-UTXO queryUtxos from both clients,
//! one after the other, so their ratio is measured under the same conditions.
//! Stream: the 1M-UTXO scripthash through `utxoStream` into JS objects summed in a
//! Writable. Slow consumer: the same stream read with a pause every 50 UTXOs for a
//! few seconds, RSS sampled every 50 ms (growth must stay bounded: the addon asks
//! for the next page only when the Readable wants more). Events: each block is
//! connected here (`Engine::connect`, the commit the plugin does) and the child
//! writes a line as soon as its `blockConnected` listener runs; the time from
//! `connect`'s return to reading that line here includes the pipe back, so it is
//! an upper bound of commit → listener.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opnet::client::to_hex;
use opnet::protocol::UtxoQuery;

use crate::fanout::COINS_PER_BLOCK;
use crate::util::{rust_client, summarize, us, Summary};
use crate::world::{small_block, Served};

pub struct NodeReport {
    pub rust: Summary,
    pub node: serde_json::Value,
    pub stream: serde_json::Value,
    pub slow: serde_json::Value,
    /// connect return → listener line read here, µs.
    pub events: Vec<f64>,
    pub connect: Vec<f64>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/node-client.mjs")
}

fn node(args: &[String]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(script())
        .args(args)
        .output()
        .expect("run node (build the addon first: npm run build)");
    assert!(
        out.status.success(),
        "node {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

fn rust_latency(socket: &Path, target: [u8; 32], requests: usize) -> Summary {
    let (rt, client) = rust_client(socket);
    let query = UtxoQuery {
        scripthash: target,
        ..UtxoQuery::default()
    };
    let mut samples = Vec::with_capacity(requests);
    rt.block_on(async {
        for i in 0..requests + 1_000 {
            let t = Instant::now();
            let page = client.query_page(query.clone(), None).await.expect("query");
            if i >= 1_000 {
                samples.push(t.elapsed());
            }
            assert_eq!(page.entries.len(), 10);
        }
    });
    summarize(samples)
}

/// Runs every Node measurement; `first_coin` is the first spendable coin not used
/// by the fan-out.
pub fn run(
    socket: &Path,
    served: &mut Served,
    requests: usize,
    slow_seconds: f64,
    blocks: usize,
    first_coin: usize,
) -> NodeReport {
    let target = to_hex(&served.target);
    let whale = to_hex(&served.whale);
    let sock = socket.display().to_string();
    eprintln!("node: latency…");
    let rust = rust_latency(socket, served.target, requests);
    let node_latency = node(&["latency".into(), sock.clone(), target, requests.to_string()]);
    eprintln!("node: stream…");
    let stream = node(&["stream".into(), sock.clone(), whale.clone()]);
    assert_eq!(
        stream["utxos"].as_u64(),
        Some(served.whale_utxos),
        "every UTXO streamed"
    );
    eprintln!("node: slow consumer…");
    let slow = node(&["slow".into(), sock.clone(), whale, slow_seconds.to_string()]);
    eprintln!("node: events…");
    let mut child = Command::new("node")
        .arg(script())
        .args(["events", &sock])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
    let (mut events, mut connect) = (Vec::new(), Vec::new());
    for b in 0..=blocks {
        let at = first_coin + b * COINS_PER_BLOCK;
        let spend = served.spendable[at..][..COINS_PER_BLOCK].to_vec();
        let (block, spent, height) = small_block(&served.engine, &spend, 10_000 + b as u64);
        std::thread::sleep(Duration::from_millis(20));
        let call = Instant::now();
        served
            .engine
            .connect(&block, height, &spent)
            .expect("connect");
        let ret = Instant::now();
        let seq = served.node.hub.last_seq();
        loop {
            let line = lines
                .next()
                .and_then(Result::ok)
                .expect("a blockConnected line");
            if line.trim() == seq.to_string() {
                break;
            }
        }
        let got = Instant::now();
        if b > 0 {
            events.push(us(got - ret));
            connect.push(us(ret - call));
        }
    }
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.flush();
    }
    let status = child.wait().expect("node exits");
    assert!(status.success(), "the events child failed");
    NodeReport {
        rust,
        node: node_latency,
        stream,
        slow,
        events,
        connect,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn p99(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[((v.len() as f64 * 0.99) as usize).min(v.len() - 1)]
}

pub fn print(r: &NodeReport) {
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let node_p50 = f(&r.node, "p50_us");
    println!();
    println!("### Node.js package (opnet-native) vs the Rust client, same run");
    println!();
    println!("| measure | Rust client | Node (index.js + addon) | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| queryUtxos, 10 UTXOs, p50 | {:.1} µs | {:.1} µs | {:.2}× |",
        us(r.rust.p50),
        node_p50,
        node_p50 / us(r.rust.p50)
    );
    println!(
        "| queryUtxos, 10 UTXOs, p99 | {:.1} µs | {:.1} µs | {:.2}× |",
        us(r.rust.p99),
        f(&r.node, "p99_us"),
        f(&r.node, "p99_us") / us(r.rust.p99)
    );
    println!();
    println!(
        "utxoStream of {} UTXOs into JS objects: {:.0} UTXOs/s ({:.2} s), peak RSS {:.1} MiB (at start {:.1} MiB)",
        r.stream["utxos"],
        f(&r.stream, "per_sec"),
        f(&r.stream, "seconds"),
        f(&r.stream, "peak_rss_mib"),
        f(&r.stream, "rss_before_mib")
    );
    println!(
        "slow consumer (1 ms pause every 50 UTXOs, {} s, {} UTXOs consumed): RSS {:.1} → {:.1} MiB, growth {:.1} MiB",
        r.slow["seconds"],
        r.slow["consumed"],
        f(&r.slow, "rss_start_mib"),
        f(&r.slow, "rss_max_mib"),
        f(&r.slow, "growth_mib")
    );
    println!(
        "block commit → JS blockConnected listener (+ pipe back), {} blocks: median {:.0} µs, p99 {:.0} µs (connect itself: median {:.0} µs)",
        r.events.len(),
        median(&r.events),
        p99(&r.events),
        median(&r.connect)
    );
}
