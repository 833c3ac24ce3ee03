//! Arbitrary request frames against a real index: the bundled regtest datadir A
//! (3,904 UTXOs, 170 blocks), scanned once per process. Every read request (UTXO
//! queries with any filters, sorts, limits and cursors; status; block txids and
//! headers; transactions) goes through the server's own `handler::read_request`
//! with the feature bits and result limit taken from the frame's sequence number.
//! Nothing may panic; every answer must survive its own encoding; a page never
//! holds more than its limit, nor an output of another script, nor a value below
//! the query's minimum; and following a page's cursor (up to 50 pages) never
//! returns an output twice.
#![no_main]

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use opnet::chainstate::Chainstate;
use opnet::datadir::DatadirSource;
use opnet::protocol::{self, FrameDecoder, Request, Response};
use opnet::server::handler::{self, Negotiated};
use opnet::server::Node;
use opnet::sync::{Engine, EngineConfig};
use opnet::Network;
use sha2::{Digest, Sha256};

struct World {
    node: Arc<Node>,
    /// Kept alive for the process (it owns the index the node reads).
    _engine: Mutex<Engine>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let datadir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/regtest-small/datadir-A");
        let dir = std::env::temp_dir().join(format!("opnet-fuzz-requests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut engine =
            Engine::open(EngineConfig::new(&dir, Network::Regtest)).expect("index dir");
        let source =
            Arc::new(DatadirSource::open(&datadir, Network::Regtest).expect("fixture datadir"));
        let cs = datadir.join("chainstate");
        engine
            .sync(source.as_ref(), &|| Chainstate::open(&cs))
            .expect("scan the fixture");
        let node = Node::attach(&mut engine, source, 1 << 20).expect("attach");
        World {
            node,
            _engine: Mutex::new(engine),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut buf = BytesMut::from(data);
    let mut decoder = FrameDecoder::new(1 << 20);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let Ok(request) = Request::decode(frame.kind, &frame.body) else {
            continue;
        };
        let n = Negotiated {
            version: 1,
            features: u64::from(frame.seq & 0xff),
            max_frame: 1 << 20,
            max_results: 1 + (frame.seq >> 8) % 2000,
        };
        let query = match &request {
            Request::QueryUtxos(q) | Request::QueryUtxosPaginated(q, _) => Some(q.clone()),
            _ => None,
        };
        let mut request = request;
        let mut seen = HashSet::new();
        for _page in 0..50 {
            let Ok(response) = handler::read_request(&w.node, &n, &request) else {
                break;
            };
            let encoded = protocol::response_frame(frame.seq, &response);
            let decoded = Response::decode(encoded.kind, &encoded.body).expect("an answer decodes");
            // QUERY_UTXOS carries no cursor on the wire (§6.1).
            let mut sent = response.clone();
            if let Response::Utxos(page) = &mut sent {
                page.cursor = None;
            }
            assert!(decoded == sent, "an answer does not survive its encoding");
            let (Some(q), Response::Utxos(page) | Response::UtxosPage(page)) =
                (query.as_ref(), &response)
            else {
                break;
            };
            let limit = if q.limit == 0 {
                n.max_results
            } else {
                q.limit.min(n.max_results)
            };
            assert!(
                page.entries.len() <= limit as usize,
                "{} entries over limit {limit}",
                page.entries.len()
            );
            if !page.entries.is_empty() && !q.include_mempool {
                let hash: [u8; 32] = Sha256::digest(&page.script).into();
                assert_eq!(hash, q.scripthash, "entries of another script");
            }
            for e in &page.entries {
                assert!(
                    e.value >= q.min_value,
                    "value {} below min {}",
                    e.value,
                    q.min_value
                );
                assert!(seen.insert((e.txid, e.vout)), "an output returned twice");
            }
            match (&request, &page.cursor) {
                (Request::QueryUtxosPaginated(..), Some(c)) if page.more => {
                    request = Request::QueryUtxosPaginated(q.clone(), c.clone());
                }
                _ => break,
            }
        }
    }
});
