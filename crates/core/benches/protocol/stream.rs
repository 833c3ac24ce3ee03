//! A 1M-UTXO scripthash streamed through `Client::utxo_stream`: UTXOs/s and the
//! client's memory.
//!
//! Why this way: the client runs in a process of its own (this binary, re-executed
//! with `--stream-client`), so its VmHWM is the client's alone, not the server's or
//! the index's. It reports its resident set once connected (the binary, the
//! runtime, the connection) and its peak after the stream; the difference is what
//! the stream cost. Run with two page sizes, it shows whether that memory follows
//! the page (it should: at most two pages exist at once) or the 1M entries (a
//! `Vec<UtxoEntry>` of 1M would be ~90 MB). The client consumes whole pages
//! (`next_page`) and sums their values, so the figure is the protocol's and not a
//! per-entry callback's.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use opnet::client::{from_hex, to_hex, Client, ClientOptions};
use opnet::protocol::UtxoQuery;

use crate::util::{peak_rss_kib, rss_kib};

/// One child run.
#[derive(Clone, Debug)]
pub struct StreamRun {
    pub page: u32,
    pub utxos: u64,
    pub pages: u64,
    pub secs: f64,
    pub rss_connected_kib: u64,
    pub hwm_kib: u64,
}

/// The child side: streams every UTXO of `scripthash` in pages of `page` (0 = the
/// server's max_results) and prints one `STREAM` line.
pub fn child(socket: &Path, scripthash: &str, page: u32) {
    let scripthash: [u8; 32] = from_hex(scripthash)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = Client::connect(socket, ClientOptions::default())
            .await
            .expect("client connects");
        let connected = rss_kib();
        let t = Instant::now();
        let mut stream = client.utxo_stream(UtxoQuery {
            scripthash,
            limit: page,
            ..UtxoQuery::default()
        });
        let (mut n, mut sum) = (0u64, 0u64);
        while let Some(p) = stream.next_page().await {
            let p = p.expect("page");
            n += p.entries.len() as u64;
            sum = p.entries.iter().fold(sum, |s, e| s.wrapping_add(e.value));
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "STREAM utxos={n} pages={} secs={secs} rss_connected_kib={connected} hwm_kib={} sum={sum}",
            stream.pages(),
            peak_rss_kib()
        );
    });
}

fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// Runs the child `runs` times for each page size.
pub fn run(
    socket: &Path,
    scripthash: [u8; 32],
    expected: u64,
    pages: &[u32],
    runs: usize,
) -> Vec<StreamRun> {
    let exe = std::env::current_exe().expect("own path");
    let mut out = Vec::new();
    for &page in pages {
        for _ in 0..runs {
            let output = Command::new(&exe)
                .arg("--stream-client")
                .arg(socket)
                .args([
                    "--scripthash",
                    &to_hex(&scripthash),
                    "--page",
                    &page.to_string(),
                ])
                .output()
                .expect("run the stream client");
            assert!(
                output.status.success(),
                "stream client failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout
                .lines()
                .find(|l| l.starts_with("STREAM "))
                .expect("a STREAM line");
            let run = StreamRun {
                page,
                utxos: field(line, "utxos").parse().expect("number"),
                pages: field(line, "pages").parse().expect("number"),
                secs: field(line, "secs").parse().expect("number"),
                rss_connected_kib: field(line, "rss_connected_kib").parse().expect("number"),
                hwm_kib: field(line, "hwm_kib").parse().expect("number"),
            };
            assert_eq!(run.utxos, expected, "every UTXO streamed");
            out.push(run);
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

pub fn print(runs: &[StreamRun], max_results: u32) {
    let utxos = runs.first().map_or(0, |r| r.utxos);
    println!();
    println!(
        "{utxos} UTXOs of one scripthash through `Client::utxo_stream` (next_page, prefetch on), client in its own process; medians of {} runs per page size:",
        runs.iter().filter(|r| r.page == runs[0].page).count()
    );
    println!();
    println!("| page size | pages | s | UTXOs/s | client RSS connected MiB | client peak RSS MiB | peak − connected MiB |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut pages: Vec<u32> = runs.iter().map(|r| r.page).collect();
    pages.dedup();
    for page in pages {
        let rs: Vec<&StreamRun> = runs.iter().filter(|r| r.page == page).collect();
        let secs = median(rs.iter().map(|r| r.secs).collect());
        let connected = median(rs.iter().map(|r| r.rss_connected_kib as f64).collect());
        let hwm = median(rs.iter().map(|r| r.hwm_kib as f64).collect());
        let grew = median(
            rs.iter()
                .map(|r| r.hwm_kib as f64 - r.rss_connected_kib as f64)
                .collect(),
        );
        let label = if page == 0 {
            format!("{max_results} (default: max_results)")
        } else {
            page.to_string()
        };
        println!(
            "| {label} | {} | {:.3} | {:.0} | {:.1} | {:.1} | {:.1} |",
            rs[0].pages,
            secs,
            utxos as f64 / secs,
            connected / 1024.0,
            hwm / 1024.0,
            grew / 1024.0
        );
    }
}
