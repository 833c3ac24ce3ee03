//! A real `opnet.sock` server over an index fed from the fixture's recorded chain,
//! for the client and CLI tests: the engine starts at genesis, the node is attached
//! before anything is replayed (so every block event is numbered and logged), and
//! the test replays the recorded connect/disconnect steps at its own pace.
//!
//! Used by `tests/client.rs` and by `crates/host/tests/cli.rs` (through `#[path]`);
//! it relies on the including crate declaring `mod common;`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use bitcoin::hashes::Hash;
use opnet::replay::{ReplayBlock, ReplayChain, ReplayStep};
use opnet::server::{self, Node, ServerConfig, ServerHandle, DEFAULT_MEMPOOL_LOG_BYTES};
use opnet::source::ChainSource;
use opnet::sync::{Engine, EngineConfig};
use opnet::Network;

use crate::common::load_chain;

/// The served chain (see the module doc).
pub struct Served {
    pub engine: Engine,
    pub chain: Arc<ReplayChain>,
    pub blocks: Vec<ReplayBlock>,
    pub steps: Vec<ReplayStep>,
    /// Steps applied so far.
    pub applied: usize,
    pub node: Arc<Node>,
    pub server: Option<ServerHandle>,
    pub socket: PathBuf,
    // Last: dropped after the engine and the server that use it.
    pub dir: tempfile::TempDir,
}

impl Served {
    /// An index at genesis, served at `<tmp>/opnet.sock`; no step applied yet.
    pub fn new() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let (blocks, steps) = load_chain();
        let chain = Arc::new(ReplayChain::new(Network::Regtest, blocks.clone()));
        let mut cfg = EngineConfig::new(&dir.path().join("opnet"), Network::Regtest);
        cfg.readers = 2;
        let mut engine = Engine::open(cfg).unwrap();
        let source: Arc<dyn ChainSource> = chain.clone();
        let node = Node::attach(&mut engine, source, DEFAULT_MEMPOOL_LOG_BYTES).unwrap();
        engine.init_at_genesis().unwrap();
        let socket = dir.path().join("opnet.sock");
        let mut served = Served {
            engine,
            chain,
            blocks,
            steps,
            applied: 0,
            node,
            server: None,
            socket,
            dir,
        };
        served.start_server();
        served
    }

    /// Starts a server for the node (again, after [`Served::stop_server`]).
    pub fn start_server(&mut self) {
        assert!(self.server.is_none(), "a server is already running");
        let handle = server::start(ServerConfig::new(&self.socket), self.node.clone()).unwrap();
        self.server = Some(handle);
    }

    /// Shuts the server down (CLOSING to every client); the node keeps numbering
    /// events.
    pub fn stop_server(&mut self) {
        if let Some(handle) = self.server.take() {
            handle.shutdown();
        }
    }

    /// Applies the recorded steps up to (not including) step `n`.
    pub fn replay_to(&mut self, n: usize) {
        assert!(n >= self.applied && n <= self.steps.len());
        for i in self.applied..n {
            let event = self.chain.step(self.steps[i]).unwrap();
            self.engine
                .handle_event(&event, self.chain.as_ref())
                .unwrap();
        }
        self.applied = n;
    }

    /// The number of steps that ends at the block with RPC hash `hash`.
    pub fn steps_to(&self, hash: &str) -> usize {
        let i = self
            .steps
            .iter()
            .position(|s| matches!(s, ReplayStep::Connect(h) if h.to_string() == hash))
            .expect("the script connects that block");
        i + 1
    }

    /// The recorded block with this hash.
    pub fn block(&self, hash: &bitcoin::BlockHash) -> &ReplayBlock {
        self.blocks
            .iter()
            .find(|b| b.block.block_hash() == *hash)
            .expect("a recorded block")
    }

    /// Height and internal-order hash of the block that step `i` (0-based) connects
    /// or disconnects, and its parent's hash (the tip after a disconnect).
    pub fn step_block(&self, i: usize) -> (u32, [u8; 32], [u8; 32]) {
        let (ReplayStep::Connect(h) | ReplayStep::Disconnect(h)) = self.steps[i];
        let b = self.block(&h);
        (
            b.height,
            h.to_byte_array(),
            b.block.header.prev_blockhash.to_byte_array(),
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop_server();
    }
}
