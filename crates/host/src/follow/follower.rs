//! New tips of a running bitcoind as connect/disconnect steps. The follower
//! long-polls `waitfornewblock` on a connection of its own (so other calls are
//! never stuck behind it), and because a node may move several blocks or switch
//! branches between two answers, it does its own reorg detection: it remembers the
//! blocks it announced and walks back from each new tip to the first of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::BlockHash;
use opnet::source::ChainTip;
use serde_json::{json, Value};

use super::http::HttpConnection;
use super::rpc::RPC_MISC_ERROR;
use super::source::{FollowSource, HeaderLink};
use super::FollowError;

/// How many announced heights the follower remembers: reorgs deeper than this
/// are announced as a jump to the new tip (see [`Follower::next_steps`]).
pub const DEFAULT_MEMORY: usize = 1000;
/// How many blocks below the starting tip are remembered at start, so a reorg
/// right after start is still reported as steps.
const SEED_DEPTH: usize = 32;
/// How much longer than the long-poll itself the answer may take to arrive.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(15);

/// One change of the node's active chain, in the order to apply them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TipStep {
    /// `hash` became the tip at `height`.
    Connect { hash: BlockHash, height: u32 },
    /// `hash`, the tip at `height`, left the active chain.
    Disconnect { hash: BlockHash, height: u32 },
}

/// Turns bitcoind's tip changes into [`TipStep`]s, starting at the tip the node
/// had when the follower was made (the plugin catches up to that on its own).
pub struct Follower {
    source: Arc<FollowSource>,
    /// The long-poll's own connection.
    conn: HttpConnection,
    tip: ChainTip,
    /// Height → hash of the blocks announced (or seeded) on the current branch.
    announced: BTreeMap<u32, BlockHash>,
    capacity: usize,
    /// Whether the node takes `waitfornewblock`'s `current_tip` argument.
    current_tip_param: bool,
    warnings: Vec<String>,
}

/// What a new tip means relative to the announced blocks.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// The announced height the new branch builds on; `None` when the walk left
    /// the follower's memory.
    fork: Option<u32>,
    /// The new branch above the fork, highest first.
    branch: Vec<(u32, BlockHash)>,
}

/// Walks back from `new_tip` by parent hashes until a block in `announced`, at
/// most `capacity` blocks and never below the lowest announced height.
fn plan(
    announced: &BTreeMap<u32, BlockHash>,
    capacity: usize,
    new_tip: ChainTip,
    mut link: impl FnMut(&BlockHash) -> Result<HeaderLink, FollowError>,
) -> Result<Plan, FollowError> {
    let lowest = announced.keys().next().copied();
    let mut branch = Vec::new();
    let (mut height, mut hash) = (new_tip.height, new_tip.hash);
    loop {
        if announced.get(&height) == Some(&hash) {
            return Ok(Plan {
                fork: Some(height),
                branch,
            });
        }
        if lowest.is_none_or(|l| height < l) || branch.len() >= capacity {
            return Ok(Plan { fork: None, branch });
        }
        branch.push((height, hash));
        let l = link(&hash)?;
        if l.height != height {
            return Err(FollowError::Protocol(format!(
                "block {hash} is at height {} but was reached at height {height}",
                l.height
            )));
        }
        match (height.checked_sub(1), l.prev) {
            (Some(h), Some(prev)) => (height, hash) = (h, prev),
            // Genesis reached without meeting an announced block: another chain.
            _ => return Ok(Plan { fork: None, branch }),
        }
    }
}

impl Follower {
    /// A follower at the node's current tip, remembering [`DEFAULT_MEMORY`] heights.
    pub fn new(source: Arc<FollowSource>) -> Result<Follower, FollowError> {
        Follower::with_memory(source, DEFAULT_MEMORY)
    }

    /// A follower remembering `memory` heights (at least 2).
    pub fn with_memory(source: Arc<FollowSource>, memory: usize) -> Result<Follower, FollowError> {
        let capacity = memory.max(2);
        let tip = source.best_block()?;
        let mut announced = BTreeMap::new();
        announced.insert(tip.height, tip.hash);
        // Seed with the tip's ancestors, by parent hash so they are its branch even
        // if the node moves meanwhile.
        let (mut height, mut hash) = (tip.height, tip.hash);
        while announced.len() < SEED_DEPTH.min(capacity) && height > 0 {
            let Some(prev) = source.header_link(&hash)?.and_then(|l| l.prev) else {
                break;
            };
            height -= 1;
            hash = prev;
            announced.insert(height, hash);
        }
        let conn = source.rpc().dedicated_connection();
        Ok(Follower {
            source,
            conn,
            tip,
            announced,
            capacity,
            current_tip_param: true,
            warnings: Vec::new(),
        })
    }

    /// The last tip announced (or the starting tip).
    pub fn tip(&self) -> ChainTip {
        self.tip
    }

    /// Warnings since the last call, for the loader to log: a reorg beyond the
    /// follower's memory, or a node without `waitfornewblock`'s `current_tip`.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Waits up to `timeout` for the node's tip to differ from the follower's, then
    /// returns the steps from the announced chain to the node's tip: disconnects
    /// (highest first), then connects (ascending). Empty when nothing changed in
    /// time. A zero `timeout` checks once without waiting.
    ///
    /// A reorg deeper than the follower's memory is announced as a single connect
    /// of the new tip (with a warning): the plugin's engine catches up from the
    /// source whenever a block does not fit its tip, and the source is the truth.
    ///
    /// An error (bitcoind stopped or restarting) leaves the follower as it was:
    /// calling again reconnects and resumes from the last announced tip.
    pub fn next_steps(&mut self, timeout: Duration) -> Result<Vec<TipStep>, FollowError> {
        let new_tip = self.wait_for_change(timeout)?;
        if new_tip.hash == self.tip.hash {
            return Ok(Vec::new());
        }
        let source = &self.source;
        let plan = plan(&self.announced, self.capacity, new_tip, |hash| {
            source.header_link(hash)?.ok_or_else(|| {
                FollowError::Protocol(format!("bitcoind does not know the header of {hash}"))
            })
        })?;
        Ok(self.apply(new_tip, plan))
    }

    /// Records the plan as announced and returns its steps.
    fn apply(&mut self, new_tip: ChainTip, plan: Plan) -> Vec<TipStep> {
        let steps = match plan.fork {
            Some(fork) => {
                let above = self.announced.split_off(&(fork + 1));
                let disconnects = above
                    .into_iter()
                    .rev()
                    .map(|(height, hash)| TipStep::Disconnect { hash, height });
                let connects = plan
                    .branch
                    .iter()
                    .rev()
                    .map(|&(height, hash)| TipStep::Connect { hash, height });
                disconnects.chain(connects).collect()
            }
            None => {
                self.warnings.push(format!(
                    "bitcoind at {} switched to tip {} (height {}) through a reorg deeper than \
                     the {} blocks the follower remembers: announcing the new tip only, the \
                     index catches up from bitcoind",
                    self.source.url(),
                    new_tip.hash,
                    new_tip.height,
                    self.capacity
                ));
                self.announced.clear();
                vec![TipStep::Connect {
                    hash: new_tip.hash,
                    height: new_tip.height,
                }]
            }
        };
        self.announced.extend(plan.branch.iter().copied());
        while self.announced.len() > self.capacity {
            self.announced.pop_first();
        }
        self.tip = new_tip;
        steps
    }

    /// The node's tip once it differs from ours, or when `timeout` passes.
    fn wait_for_change(&mut self, timeout: Duration) -> Result<ChainTip, FollowError> {
        if timeout.is_zero() {
            return self.source.best_block();
        }
        if !self.current_tip_param {
            // Without current_tip the node waits for a change from its own tip at
            // the time of the call: a change since our last answer must be seen
            // first, or it would wait for the next one.
            let best = self.source.best_block()?;
            if best.hash != self.tip.hash {
                return Ok(best);
            }
        }
        // bitcoind reads the timeout as a C int of milliseconds; 0 means forever.
        let millis = timeout.as_millis().clamp(1, i32::MAX as u128) as u64;
        let mut params = vec![json!(millis)];
        if self.current_tip_param {
            params.push(json!(self.tip.hash.to_string()));
        }
        let read_timeout = timeout.saturating_add(LONG_POLL_MARGIN);
        let reply =
            self.source
                .rpc()
                .call_on(&mut self.conn, "waitfornewblock", &params, read_timeout);
        match reply {
            Ok(v) => parse_block_ref(&v),
            // An older node answers an unknown extra argument with its help text.
            Err(FollowError::Rpc { error, .. })
                if self.current_tip_param
                    && error.code == RPC_MISC_ERROR
                    && error.message.starts_with("waitfornewblock") =>
            {
                self.current_tip_param = false;
                self.warnings.push(format!(
                    "bitcoind at {} does not take waitfornewblock's current_tip: a tip change \
                     between two polls may be seen one poll late",
                    self.source.url()
                ));
                self.wait_for_change(timeout)
            }
            Err(e) => Err(e),
        }
    }
}

/// `{"hash": .., "height": ..}` as the wait RPCs return it.
fn parse_block_ref(v: &Value) -> Result<ChainTip, FollowError> {
    let hash = v
        .get("hash")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<BlockHash>().ok());
    let height = v
        .get("height")
        .and_then(Value::as_u64)
        .and_then(|h| u32::try_from(h).ok());
    match (hash, height) {
        (Some(hash), Some(height)) => Ok(ChainTip { height, hash }),
        _ => Err(FollowError::Protocol(format!(
            "waitfornewblock: expected {{hash, height}}, got {v}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use std::collections::HashMap;

    /// A synthetic block hash: branch letter and height.
    fn h(branch: u8, height: u32) -> BlockHash {
        let mut b = [0u8; 32];
        b[0] = branch;
        b[1..5].copy_from_slice(&height.to_le_bytes());
        BlockHash::from_byte_array(b)
    }

    /// Branch `a` from 0 to `a_top`; branch `b` forks off `a` at `fork` up to `b_top`.
    fn chain(a_top: u32, fork: u32, b_top: u32) -> HashMap<BlockHash, HeaderLink> {
        let mut links = HashMap::new();
        for height in 0..=a_top {
            let prev = height.checked_sub(1).map(|p| h(b'a', p));
            links.insert(h(b'a', height), HeaderLink { height, prev });
        }
        for height in fork + 1..=b_top {
            let prev = if height == fork + 1 {
                h(b'a', fork)
            } else {
                h(b'b', height - 1)
            };
            links.insert(
                h(b'b', height),
                HeaderLink {
                    height,
                    prev: Some(prev),
                },
            );
        }
        links
    }

    fn announced(branch: u8, heights: std::ops::RangeInclusive<u32>) -> BTreeMap<u32, BlockHash> {
        heights.map(|height| (height, h(branch, height))).collect()
    }

    fn run(
        links: &HashMap<BlockHash, HeaderLink>,
        announced: &BTreeMap<u32, BlockHash>,
        capacity: usize,
        tip: (u8, u32),
    ) -> (Plan, usize) {
        let mut calls = 0;
        let new_tip = ChainTip {
            height: tip.1,
            hash: h(tip.0, tip.1),
        };
        let plan = plan(announced, capacity, new_tip, |hash| {
            calls += 1;
            Ok(links[hash])
        })
        .unwrap();
        (plan, calls)
    }

    #[test]
    fn extension_walks_back_to_the_announced_tip() {
        let links = chain(20, 20, 20);
        let (p, calls) = run(&links, &announced(b'a', 5..=10), 100, (b'a', 13));
        assert_eq!(p.fork, Some(10));
        assert_eq!(
            p.branch,
            vec![(13, h(b'a', 13)), (12, h(b'a', 12)), (11, h(b'a', 11))]
        );
        assert_eq!(calls, 3, "one header per new block");
    }

    #[test]
    fn reorg_finds_the_fork_and_lower_tips_need_no_walk() {
        let links = chain(10, 7, 12);
        let (p, _) = run(&links, &announced(b'a', 0..=10), 100, (b'b', 12));
        assert_eq!(p.fork, Some(7));
        assert_eq!(p.branch.len(), 5);
        // A tip that went back (invalidateblock) onto an announced block.
        let (p, calls) = run(&links, &announced(b'a', 0..=10), 100, (b'a', 8));
        assert_eq!((p.fork, p.branch.len(), calls), (Some(8), 0, 0));
    }

    #[test]
    fn walks_stop_at_the_memory_bounds() {
        let links = chain(10, 7, 12);
        // Fork at 7, memory from 8: beyond memory.
        let (p, _) = run(&links, &announced(b'a', 8..=10), 100, (b'b', 12));
        assert_eq!(p.fork, None);
        // The walk never takes more than `capacity` headers.
        let links = chain(5000, 5000, 5000);
        let (p, calls) = run(&links, &announced(b'a', 0..=10), 50, (b'a', 5000));
        assert_eq!((p.fork, calls), (None, 50));
    }

    #[test]
    fn genesis_without_a_match_is_another_chain() {
        let links = chain(3, 3, 3);
        let mut other = BTreeMap::new();
        other.insert(0, h(b'z', 0));
        let (p, calls) = run(&links, &other, 100, (b'a', 3));
        assert_eq!((p.fork, calls), (None, 4));
    }

    #[test]
    fn block_refs_parse_or_say_what_was_wrong() {
        let hash = h(b'a', 1);
        let ok = parse_block_ref(&json!({"hash": hash.to_string(), "height": 1})).unwrap();
        assert_eq!(ok, ChainTip { height: 1, hash });
        for bad in [
            json!({"hash": "zz", "height": 1}),
            json!({"hash": hash.to_string()}),
            json!(null),
        ] {
            assert!(parse_block_ref(&bad)
                .unwrap_err()
                .to_string()
                .contains("waitfornewblock"));
        }
    }
}
