//! Statistics, memory readings and a minimal blocking protocol client shared by the
//! measurements.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use opnet::protocol::{
    self, Frame, FrameDecoder, Hello, Request, Response, UtxoQuery, DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
};

/// Nearest-rank percentile of sorted samples (`p` in 0..=1).
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 / p99 / max of a set of latencies.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn summarize(mut v: Vec<Duration>) -> Summary {
    assert!(!v.is_empty(), "no samples");
    v.sort();
    Summary {
        n: v.len(),
        p50: percentile(&v, 0.5),
        p99: percentile(&v, 0.99),
        max: *v.last().expect("samples"),
    }
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// Peak resident set of this process so far, KiB (Linux VmHWM).
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resident set now, KiB (Linux VmRSS).
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// A frame as bytes on the wire.
pub fn frame_bytes(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    protocol::encode(frame, DEFAULT_MAX_FRAME, &mut out).expect("frame fits");
    out.to_vec()
}

/// The QUERY_UTXOS request the latency and throughput measurements send.
pub fn query_request(scripthash: [u8; 32]) -> Request {
    Request::QueryUtxos(UtxoQuery {
        scripthash,
        ..UtxoQuery::default()
    })
}

/// A plain blocking client of the protocol: one `UnixStream`, the crate's codec and
/// nothing else (no tasks, no channels), so its cost is the protocol's own.
pub struct RawConn {
    pub stream: UnixStream,
    pub buf: BytesMut,
    decoder: FrameDecoder,
    scratch: Vec<u8>,
    seq: u32,
}

impl RawConn {
    /// Connects and says HELLO (no features).
    pub fn connect(path: &Path) -> RawConn {
        let stream = UnixStream::connect(path).expect("connect to the server");
        let mut conn = RawConn {
            stream,
            buf: BytesMut::with_capacity(64 << 10),
            decoder: FrameDecoder::new(DEFAULT_MAX_FRAME),
            scratch: vec![0; 64 << 10],
            seq: 0,
        };
        let hello = Request::Hello(Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            max_frame: DEFAULT_MAX_FRAME,
            features: 0,
            client_name: "bench-raw".into(),
        });
        match conn.call(&hello) {
            Response::Hello(_) => {}
            other => panic!("HELLO answered with {other:?}"),
        }
        conn
    }

    /// Reads until one whole frame is buffered and returns it.
    pub fn read_frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).expect("a valid frame") {
                return frame;
            }
            self.fill();
        }
    }

    /// One blocking read into the buffer.
    pub fn fill(&mut self) {
        let n = self.stream.read(&mut self.scratch).expect("read");
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&self.scratch[..n]);
    }

    /// Takes a complete frame if one is buffered, without reading.
    pub fn try_frame(&mut self) -> Option<Frame> {
        self.decoder.decode(&mut self.buf).expect("a valid frame")
    }

    /// Encodes `req` under the next sequence number, sends it and decodes the answer.
    pub fn call(&mut self, req: &Request) -> Response {
        self.seq = self.seq.wrapping_add(1).max(1);
        let frame = protocol::request_frame(self.seq, req);
        let mut out = BytesMut::with_capacity(frame.body.len() + 9);
        protocol::encode(&frame, DEFAULT_MAX_FRAME, &mut out).expect("frame fits");
        self.stream.write_all(&out).expect("write");
        let answer = self.read_frame();
        assert_eq!(answer.seq, self.seq, "answer to the request just sent");
        Response::decode(answer.kind, &answer.body).expect("a valid response")
    }
}

/// True for an answer of type `kind` with status OK (what the pipelined client
/// counts).
pub fn is_ok_answer(frame: &Frame, kind: u8) -> bool {
    frame.kind == kind && frame.body.first() == Some(&0)
}

/// A current-thread runtime and a Rust client connected on it: how the latency
/// measurements drive the client (one request at a time, no cross-thread wake-ups
/// on the client side).
pub fn rust_client(socket: &Path) -> (tokio::runtime::Runtime, opnet::client::Client) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = rt
        .block_on(opnet::client::Client::connect(
            socket,
            opnet::client::ClientOptions::default(),
        ))
        .expect("client connects");
    (rt, client)
}
