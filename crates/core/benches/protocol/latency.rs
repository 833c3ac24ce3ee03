//! QUERY_UTXOS round trip of a 10-UTXO scripthash, next to a raw Unix-socket echo
//! of the same request and response sizes.
//!
//! Why this way: the echo is what any protocol over this socket must pay (two
//! syscalls each way, two context switches), so "query p50 / echo p50" is the cost
//! the server adds (frame decode, HELLO state, rate limit, index read, encode,
//! writer task) in units of the floor. Two echo servers are measured: a blocking
//! thread (the floor itself) and a tokio one with the server's runtime shape (2
//! workers, a task per connection), which separates tokio's wake-ups from our
//! work. The query is measured from two clients: a plain blocking `UnixStream`
//! with the codec (the protocol's own cost) and `opnet::client::Client` (adds its
//! connection task, channels and the caller's wake-up). All four run in
//! interleaved rounds in one process, so a noisy neighbour hits them alike.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use opnet::protocol::{self, Response, UtxoQuery};

use crate::util::{frame_bytes, query_request, rust_client, summarize, us, RawConn, Summary};
use crate::world::TARGET_UTXOS;

/// Serves echoes of fixed sizes on `path` from a plain thread: reads `req_len`
/// bytes, writes `resp` back, until the client goes away.
fn std_echo(path: &Path, req_len: usize, resp: Vec<u8>) {
    let listener = UnixListener::bind(path).expect("bind echo");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut req = vec![0u8; req_len];
        while s.read_exact(&mut req).is_ok() {
            if s.write_all(&resp).is_err() {
                break;
            }
        }
    });
}

/// The same echo on a tokio runtime shaped like the server's (2 workers).
fn tokio_echo(path: &Path, req_len: usize, resp: Vec<u8>) -> tokio::runtime::Runtime {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = {
        let _g = rt.enter();
        tokio::net::UnixListener::bind(path).expect("bind echo")
    };
    rt.spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut req = vec![0u8; req_len];
        while s.read_exact(&mut req).await.is_ok() {
            if s.write_all(&resp).await.is_err() {
                break;
            }
        }
    });
    rt
}

/// One echo round trip: write the request bytes, read exactly the response size.
fn echo_once(s: &mut UnixStream, req: &[u8], resp: &mut [u8]) {
    s.write_all(req).expect("write");
    s.read_exact(resp).expect("read");
}

pub struct LatencyReport {
    pub request_bytes: usize,
    pub response_bytes: usize,
    pub echo_std: Summary,
    pub echo_tokio: Summary,
    pub raw: Summary,
    pub rust: Summary,
}

/// Runs `requests` round trips per path in `rounds` interleaved rounds (plus a
/// warm-up of 1,000 each).
pub fn run(
    socket: &Path,
    work: &Path,
    target: [u8; 32],
    requests: usize,
    rounds: usize,
) -> LatencyReport {
    let req = query_request(target);
    // The exact bytes of the real request and of the server's real answer.
    let req_bytes = frame_bytes(&protocol::request_frame(1, &req));
    let mut raw = RawConn::connect(socket);
    let resp_bytes = match raw.call(&req) {
        Response::Utxos(page) => {
            assert_eq!(page.entries.len(), TARGET_UTXOS);
            frame_bytes(&protocol::response_frame(1, &Response::Utxos(page)))
        }
        other => panic!("QUERY_UTXOS answered with {other:?}"),
    };

    let std_path = work.join("echo-std.sock");
    let tokio_path = work.join("echo-tokio.sock");
    std_echo(&std_path, req_bytes.len(), resp_bytes.clone());
    let _echo_rt = tokio_echo(&tokio_path, req_bytes.len(), resp_bytes.clone());
    let mut echo_s = UnixStream::connect(&std_path).expect("connect echo");
    let mut echo_t = UnixStream::connect(&tokio_path).expect("connect echo");
    let mut resp_buf = vec![0u8; resp_bytes.len()];

    let (rt, client) = rust_client(socket);
    let query = UtxoQuery {
        scripthash: target,
        ..UtxoQuery::default()
    };

    let mut samples: [Vec<Duration>; 4] = Default::default();
    let per_round = requests.div_ceil(rounds.max(1));
    for round in 0..=rounds {
        // Round 0 is the warm-up, not recorded.
        let n = if round == 0 { 1_000 } else { per_round };
        let keep = round > 0;
        for _ in 0..n {
            let t = Instant::now();
            echo_once(&mut echo_s, &req_bytes, &mut resp_buf);
            if keep {
                samples[0].push(t.elapsed());
            }
        }
        for _ in 0..n {
            let t = Instant::now();
            echo_once(&mut echo_t, &req_bytes, &mut resp_buf);
            if keep {
                samples[1].push(t.elapsed());
            }
        }
        for _ in 0..n {
            let t = Instant::now();
            let answer = raw.call(&req);
            let d = t.elapsed();
            assert!(matches!(&answer, Response::Utxos(p) if p.entries.len() == TARGET_UTXOS));
            if keep {
                samples[2].push(d);
            }
        }
        rt.block_on(async {
            for _ in 0..n {
                let t = Instant::now();
                let page = client.query_utxos(query.clone()).await.expect("query");
                let d = t.elapsed();
                assert_eq!(page.entries.len(), TARGET_UTXOS);
                if keep {
                    samples[3].push(d);
                }
            }
        });
    }
    let [a, b, c, d] = samples;
    LatencyReport {
        request_bytes: req_bytes.len(),
        response_bytes: resp_bytes.len(),
        echo_std: summarize(a),
        echo_tokio: summarize(b),
        raw: summarize(c),
        rust: summarize(d),
    }
}

pub fn print(r: &LatencyReport, pinned: bool) {
    println!();
    println!(
        "QUERY_UTXOS round trip, 10 UTXOs with coin data: request {} B, response {} B (frames), {} sequential requests per path, {}:",
        r.request_bytes,
        r.response_bytes,
        r.rust.n,
        if pinned {
            "every thread pinned to CPU 0 (`taskset -c 0`)"
        } else {
            "default scheduling over both CPUs"
        }
    );
    println!();
    println!("| path | p50 µs | p99 µs | max µs | p50 / echo p50 | p99 / echo p99 | p50 / tokio echo p50 |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let base = r.echo_std;
    for (name, s) in [
        ("echo, blocking thread server (floor)", r.echo_std),
        ("echo, tokio server (2 workers)", r.echo_tokio),
        ("QUERY_UTXOS, raw blocking client + codec", r.raw),
        ("QUERY_UTXOS, `opnet::client::Client`", r.rust),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} |",
            us(s.p50),
            us(s.p99),
            us(s.max),
            s.p50.as_secs_f64() / base.p50.as_secs_f64(),
            s.p99.as_secs_f64() / base.p99.as_secs_f64(),
            s.p50.as_secs_f64() / r.echo_tokio.p50.as_secs_f64(),
        );
    }
}
