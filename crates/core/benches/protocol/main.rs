//! Benchmarks of the `opnet.sock` protocol (issue 3): query round trip against a
//! raw socket echo, pipelined throughput, query latency while blocks are being
//! connected, event fan-out to 100 subscribers, and a 1M-UTXO stream through the
//! Rust client.
//!
//! cargo bench -p opnet --bench protocol -- [--only latency,throughput,stream,fanout,node,busy]
//!     [--requests 20000] [--rounds 20] [--seconds 3] [--inflight 256] [--connections 1,8]
//!     [--subscribers 100] [--fanout-blocks 60] [--stream-utxos 1000000]
//!     [--pages 0,1000] [--stream-runs 3] [--busy-utxos 4000000] [--busy-blocks 100]
//!     [--idle-seconds 2] [--open-per-ms 2] [--pin-latency on|off] [--data DIR]
//!     [--node-blocks 60] [--slow-seconds 5]
//!
//! The `node` section runs `bench/node-client.mjs` with the npm package: build the
//! addon first (`npm ci && npm run build`).
//!
//! Each measurement is in its own module, with why it is measured that way. The
//! server runs in this process on its own runtime (2 workers, as in the plugin);
//! the stream's client runs in a child process (`--stream-client`, this binary) so
//! its memory is its own. The synthetic chainstate of the busy measurement is cached
//! in DIR (default `$CARGO_TARGET_DIR/bench-data`, else `target/bench-data`).
//! Prints markdown tables for docs/BENCHMARKS.md.

mod busy;
mod fanout;
mod latency;
mod node;
mod stream;
mod throughput;
mod util;
mod world;

use std::path::{Path, PathBuf};
use std::time::Duration;

use opnet::server::{self, ServerConfig};

struct Args {
    only: Vec<String>,
    requests: usize,
    rounds: usize,
    seconds: f64,
    inflight: usize,
    connections: Vec<usize>,
    subscribers: usize,
    fanout_blocks: usize,
    stream_utxos: u64,
    pages: Vec<u32>,
    stream_runs: usize,
    busy_utxos: u64,
    busy_blocks: usize,
    idle_seconds: f64,
    open_per_ms: u32,
    data: PathBuf,
    /// Also run the latency section with every thread on one CPU (a child under
    /// `taskset -c 0`).
    pin_latency: bool,
    /// This process is that child.
    pinned: bool,
    stream_client: Option<PathBuf>,
    scripthash: String,
    page: u32,
    node_blocks: usize,
    slow_seconds: f64,
}

const SECTIONS: [&str; 6] = ["latency", "throughput", "stream", "fanout", "node", "busy"];

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',')
        .map(|x| x.trim().parse().ok().expect("a number"))
        .collect()
}

fn parse_args() -> Args {
    let data = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("bench-data");
    let mut a = Args {
        only: SECTIONS.iter().map(|s| s.to_string()).collect(),
        requests: 20_000,
        rounds: 20,
        seconds: 3.0,
        inflight: 256,
        connections: vec![1, 8],
        subscribers: 100,
        fanout_blocks: 60,
        stream_utxos: 1_000_000,
        pages: vec![0, 1000],
        stream_runs: 3,
        busy_utxos: 4_000_000,
        busy_blocks: 100,
        idle_seconds: 2.0,
        open_per_ms: 2,
        data,
        pin_latency: true,
        pinned: false,
        stream_client: None,
        scripthash: String::new(),
        page: 0,
        node_blocks: 60,
        slow_seconds: 5.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--only" => a.only = value().split(',').map(str::to_string).collect(),
            "--requests" => a.requests = value().parse().expect("number"),
            "--rounds" => a.rounds = value().parse().expect("number"),
            "--seconds" => a.seconds = value().parse().expect("number"),
            "--inflight" => a.inflight = value().parse().expect("number"),
            "--connections" => a.connections = list(&value()),
            "--subscribers" => a.subscribers = value().parse().expect("number"),
            "--fanout-blocks" => a.fanout_blocks = value().parse().expect("number"),
            "--stream-utxos" => a.stream_utxos = value().parse().expect("number"),
            "--pages" => a.pages = list(&value()),
            "--stream-runs" => a.stream_runs = value().parse().expect("number"),
            "--busy-utxos" => a.busy_utxos = value().parse().expect("number"),
            "--busy-blocks" => a.busy_blocks = value().parse().expect("number"),
            "--idle-seconds" => a.idle_seconds = value().parse().expect("number"),
            "--open-per-ms" => a.open_per_ms = value().parse().expect("number"),
            "--data" => a.data = PathBuf::from(value()),
            "--pin-latency" => a.pin_latency = value() == "on",
            "--pinned" => a.pinned = true,
            "--stream-client" => a.stream_client = Some(PathBuf::from(value())),
            "--scripthash" => a.scripthash = value(),
            "--page" => a.page = value().parse().expect("number"),
            "--node-blocks" => a.node_blocks = value().parse().expect("number"),
            "--slow-seconds" => a.slow_seconds = value().parse().expect("number"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    for s in &a.only {
        assert!(SECTIONS.contains(&s.as_str()), "unknown section {s}");
    }
    a
}

fn main() {
    let args = parse_args();
    if let Some(socket) = &args.stream_client {
        stream::child(socket, &args.scripthash, args.page);
        return;
    }
    let on = |s: &str| args.only.iter().any(|o| o == s);
    let work = args
        .data
        .join(format!("protocol-work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    println!(
        "cores: {}, server worker threads: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        ServerConfig::new(Path::new("x")).worker_threads
    );

    if on("latency") || on("throughput") || on("stream") || on("fanout") || on("node") {
        served_sections(&args, &work, &on);
    }
    if on("busy") {
        let mut b = world::build_busy(
            &args.data,
            &work.join("busy"),
            args.busy_utxos,
            args.busy_blocks,
        );
        let socket = work.join("busy.sock");
        let handle = server::start(ServerConfig::new(&socket), b.node.clone()).expect("server");
        let report = busy::run(
            &socket,
            &mut b,
            Duration::from_secs_f64(args.idle_seconds),
            args.open_per_ms,
        );
        busy::print(&report);
        handle.shutdown();
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// Runs the latency section again in a child with every thread on CPU 0 and prints
/// its table. On this VM a wake-up that crosses to the other vCPU costs tens of
/// microseconds (an IPI to a halted vCPU), and whether a server thread and its
/// client share a CPU is up to the kernel: on one CPU the comparison with the echo
/// measures software cost only.
fn pinned_latency(args: &Args) {
    eprintln!("latency, pinned to CPU 0…");
    let exe = std::env::current_exe().expect("own path");
    let output = std::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(exe)
        .args([
            "--only",
            "latency",
            "--pinned",
            "--stream-utxos",
            "0",
            "--fanout-blocks",
            "0",
        ])
        .args([
            "--requests",
            &args.requests.to_string(),
            "--rounds",
            &args.rounds.to_string(),
        ])
        .arg("--data")
        .arg(&args.data)
        .output()
        .expect("run taskset");
    assert!(
        output.status.success(),
        "pinned latency run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in String::from_utf8_lossy(&output.stdout).lines().skip(1) {
        println!("{line}");
    }
}

/// The measurements served from the written index, each against a server at its
/// default configuration except the fan-out's (128 connections).
fn served_sections(args: &Args, work: &Path, on: &dyn Fn(&str) -> bool) {
    let spendable = (args.fanout_blocks + 1 + args.node_blocks + 1) * fanout::COINS_PER_BLOCK;
    let mut served = world::build_served(&work.join("served"), args.stream_utxos, spendable);
    let socket = work.join("served.sock");
    let config = ServerConfig::new(&socket);
    let max_results = config.max_results;
    let handle = server::start(config, served.node.clone()).expect("server");
    if on("latency") {
        eprintln!("latency…");
        let r = latency::run(&socket, work, served.target, args.requests, args.rounds);
        latency::print(&r, args.pinned);
        if args.pin_latency && !args.pinned {
            pinned_latency(args);
        }
    }
    if on("throughput") {
        let mut rates = Vec::new();
        for &c in &args.connections {
            eprintln!("throughput, {c} connection(s)…");
            rates.push(throughput::rust_client(
                &socket,
                served.target,
                c,
                args.inflight,
                args.seconds,
            ));
            let query = util::query_request(served.target);
            rates.push(throughput::raw_client(
                &socket,
                &query,
                "raw pipelined client",
                c,
                args.inflight,
                args.seconds,
            ));
            let ping = opnet::protocol::Request::Ping(bytes::Bytes::new());
            rates.push(throughput::raw_client(
                &socket,
                &ping,
                "raw pipelined client, PING instead (no index read)",
                c,
                args.inflight,
                args.seconds,
            ));
        }
        throughput::print(&rates, args.inflight, args.seconds);
    }
    if on("stream") {
        eprintln!("stream…");
        let runs = stream::run(
            &socket,
            served.whale,
            served.whale_utxos,
            &args.pages,
            args.stream_runs,
        );
        stream::print(&runs, max_results);
    }
    handle.shutdown();
    if on("fanout") {
        eprintln!("fan-out…");
        let socket = work.join("fanout.sock");
        let mut config = ServerConfig::new(&socket);
        config.max_connections = 128;
        let handle = server::start(config, served.node.clone()).expect("server");
        let r = fanout::run(&socket, &mut served, args.subscribers, args.fanout_blocks);
        fanout::print(&r);
        handle.shutdown();
    }
    if on("node") {
        let socket = work.join("node.sock");
        let handle =
            server::start(ServerConfig::new(&socket), served.node.clone()).expect("server");
        let first_coin = (args.fanout_blocks + 1) * fanout::COINS_PER_BLOCK;
        let r = node::run(
            &socket,
            &mut served,
            args.requests,
            args.slow_seconds,
            args.node_blocks,
            first_coin,
        );
        node::print(&r);
        handle.shutdown();
    }
}
