//! Follow mode's mempool: bitcoind's mempool mirrored as the plugin ABI's
//! transaction added/removed notifications.
//!
//! Each round compares bitcoind's `getrawmempool false true` (every txid, and the
//! mempool sequence that moves on every add and removal) with what was announced:
//! transactions that left are announced as removed, new ones as added, parents
//! before children, each with the outputs it spends (from a parent in the mempool,
//! else from bitcoind's UTXO set through REST `getutxos`). A round whose sequence
//! has not moved costs one `getmempoolinfo`. Because every round is a full
//! comparison, a missed round or a restarted bitcoind loses nothing: the next one
//! announces the difference.
//!
//! bitcoind does not say why a transaction left, so the reason is inferred the way
//! Bitcoin Core decides it: confirmed by a block just connected (`BLOCK`, not
//! announced: bitcoind does not announce those either, the plugin drops them when
//! it applies the block); an input spent by a block (`CONFLICT`) or by another
//! mempool transaction (`REPLACED`); right after a disconnect (`REORG`); while the
//! mempool trims by size (`SIZELIMIT`); else `EXPIRY`, the only reason left.
//! Descendants of a removed transaction take its reason.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bitcoin::consensus::{deserialize, serialize, Encodable};
use bitcoin::{Block, OutPoint, Transaction, TxOut, Txid};
use opnet::abi;
use opnet::source::SourceError;

use super::source::FollowSource;
use super::FollowError;

/// One notification for the plugins, in the order to make them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MempoolChange {
    /// A transaction entered the mempool: its bytes and its spent outputs in the
    /// ABI's single-transaction layout.
    Added { txid: Txid, tx: Vec<u8>, spent: Vec<u8> },
    /// A transaction left the mempool (`OPNET_REMOVED_*`).
    Removed { txid: Txid, reason: u32 },
}

/// What the blocks connected or disconnected since the last round explain.
#[derive(Default)]
pub struct BlockNews {
    confirmed: HashSet<Txid>,
    spent: HashSet<OutPoint>,
    disconnected: bool,
}

impl BlockNews {
    /// Notes a connected block's transactions and the outpoints they spend.
    pub fn connected(&mut self, block_bytes: &[u8]) {
        let Ok(block) = deserialize::<Block>(block_bytes) else {
            return;
        };
        for tx in &block.txdata {
            self.confirmed.insert(tx.compute_txid());
            if !tx.is_coinbase() {
                self.spent.extend(tx.input.iter().map(|i| i.previous_output));
            }
        }
    }

    /// Notes a disconnected block: removals that follow are reorg removals.
    pub fn disconnected(&mut self) {
        self.disconnected = true;
    }
}

/// A transaction as announced.
struct Known {
    inputs: Vec<OutPoint>,
    outputs: Vec<TxOut>,
}

/// The mempool as announced to the plugins.
pub struct MempoolMirror {
    source: Arc<FollowSource>,
    known: HashMap<Txid, Known>,
    /// The sequence and `getmempoolinfo` fingerprint of the last full round.
    last: Option<(u64, String)>,
    /// Counters for the log.
    pub announced_adds: u64,
    pub announced_removals: u64,
    /// Transactions left for a later round: an input could not be found (a block
    /// raced the lookup); the next round tries again.
    pub deferred: u64,
}

impl MempoolMirror {
    pub fn new(source: Arc<FollowSource>) -> MempoolMirror {
        MempoolMirror {
            source,
            known: HashMap::new(),
            last: None,
            announced_adds: 0,
            announced_removals: 0,
            deferred: 0,
        }
    }

    /// How many transactions are announced and not removed.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether nothing is announced.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// One round: the changes since the last one. `news` is what blocks did since
    /// (consumed). The caller must have announced every block up to the node's
    /// tip first; `tip_unchanged` re-reads the tip after listing the mempool, and a
    /// listing taken while the tip moved is discarded (the round is retried after
    /// the new block).
    pub fn round(
        &mut self,
        news: &mut BlockNews,
        tip_unchanged: impl Fn() -> Result<bool, FollowError>,
    ) -> Result<Vec<MempoolChange>, FollowError> {
        let fingerprint = self.source.mempool_fingerprint()?;
        if matches!(&self.last, Some((_, f)) if *f == fingerprint)
            && news.confirmed.is_empty()
            && !news.disconnected
        {
            return Ok(Vec::new());
        }
        let listing = self.source.mempool_txids()?;
        if !tip_unchanged()? {
            return Ok(Vec::new());
        }
        if matches!(&self.last, Some((s, _)) if *s == listing.sequence) {
            self.last = Some((listing.sequence, fingerprint));
            *news = BlockNews::default();
            return Ok(Vec::new());
        }
        let now: HashSet<Txid> = listing.txids.iter().copied().collect();
        let mut changes = self.removals(&now, news)?;
        let mut adds = Vec::new();
        let mut fetched = HashMap::new();
        for txid in listing.txids.iter().filter(|t| !self.known.contains_key(*t)) {
            match self.source.mempool_tx(txid).map_err(source_error)? {
                Some(bytes) => match deserialize::<Transaction>(&bytes) {
                    Ok(tx) if tx.compute_txid() == *txid => {
                        fetched.insert(*txid, (bytes, tx));
                    }
                    _ => {
                        return Err(FollowError::Protocol(format!(
                            "GET /rest/tx/{txid}.bin is not that transaction"
                        )))
                    }
                },
                // Left the mempool since the listing: the next round sees it gone.
                None => {}
            }
        }
        for txid in parents_first(&fetched) {
            let Some((bytes, tx)) = fetched.remove(&txid) else {
                continue;
            };
            match self.spent_outputs(&tx)? {
                Some(spent) => {
                    self.remember(txid, &tx);
                    adds.push(MempoolChange::Added {
                        txid,
                        tx: bytes,
                        spent: encode_spent(&spent),
                    });
                }
                None => {
                    self.deferred += 1;
                    tracing::debug!(%txid, "a mempool transaction's inputs are not found yet; retried next round");
                }
            }
        }
        self.announced_removals += changes.len() as u64;
        self.announced_adds += adds.len() as u64;
        changes.extend(adds);
        // A deferred transaction must be retried even if nothing else moves.
        let complete = self.known.len() == now.len();
        self.last = complete.then_some((listing.sequence, fingerprint));
        *news = BlockNews::default();
        Ok(changes)
    }

    /// Removals for announced transactions no longer in `now`, with reasons.
    fn removals(
        &mut self,
        now: &HashSet<Txid>,
        news: &BlockNews,
    ) -> Result<Vec<MempoolChange>, FollowError> {
        let gone: Vec<Txid> = self
            .known
            .keys()
            .filter(|t| !now.contains(*t))
            .copied()
            .collect();
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        let gone_set: HashSet<Txid> = gone.iter().copied().collect();
        let mut trimming = None;
        let mut reasons: HashMap<Txid, u32> = HashMap::new();
        // Roots first (no removed parent), so descendants inherit.
        let mut order = gone.clone();
        order.sort_by_key(|t| self.depth_within(t, &gone_set));
        let mut out = Vec::new();
        for txid in order {
            let Some(known) = self.known.get(&txid) else {
                continue;
            };
            let parent_reason = known
                .inputs
                .iter()
                .find_map(|i| reasons.get(&i.txid).copied());
            let reason = if news.confirmed.contains(&txid) {
                abi::REMOVED_BLOCK
            } else if let Some(r) = parent_reason {
                r
            } else if known.inputs.iter().any(|i| news.spent.contains(i)) {
                abi::REMOVED_CONFLICT
            } else if news.disconnected {
                abi::REMOVED_REORG
            } else if self.replaced(&txid, now)? {
                abi::REMOVED_REPLACED
            } else if *trimming.get_or_insert(self.source.mempool_is_trimming()?) {
                abi::REMOVED_SIZELIMIT
            } else {
                abi::REMOVED_EXPIRY
            };
            reasons.insert(txid, reason);
            if reason != abi::REMOVED_BLOCK {
                out.push(MempoolChange::Removed { txid, reason });
            }
        }
        // Children leave before their parents, as Bitcoin Core removes them.
        out.reverse();
        for txid in gone {
            self.forget(&txid);
        }
        Ok(out)
    }

    /// How many removed ancestors `txid` has on its longest path (0 for a root).
    fn depth_within(&self, txid: &Txid, gone: &HashSet<Txid>) -> usize {
        let mut depth = 0;
        let mut frontier = vec![*txid];
        let mut seen = HashSet::new();
        while !frontier.is_empty() && depth <= gone.len() {
            let mut next = Vec::new();
            for t in frontier {
                if let Some(k) = self.known.get(&t) {
                    for i in &k.inputs {
                        if gone.contains(&i.txid) && seen.insert(i.txid) {
                            next.push(i.txid);
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            depth += 1;
            frontier = next;
        }
        depth
    }

    /// Whether one of `txid`'s inputs is now spent by a mempool transaction
    /// other than itself (bitcoind's `gettxspendingprevout`).
    fn replaced(&self, txid: &Txid, now: &HashSet<Txid>) -> Result<bool, FollowError> {
        let Some(known) = self.known.get(txid) else {
            return Ok(false);
        };
        let spenders = self.source.mempool_spenders(&known.inputs)?;
        Ok(spenders
            .iter()
            .flatten()
            .any(|s| s != txid && now.contains(s)))
    }

    /// The outputs `tx` spends, in input order; `None` when one is not found
    /// (a block confirmed or conflicted it meanwhile).
    fn spent_outputs(&self, tx: &Transaction) -> Result<Option<Vec<TxOut>>, FollowError> {
        let mut spent: Vec<Option<TxOut>> = Vec::with_capacity(tx.input.len());
        let mut ask = Vec::new();
        for input in &tx.input {
            let o = input.previous_output;
            match self.known.get(&o.txid) {
                Some(parent) => spent.push(parent.outputs.get(o.vout as usize).cloned()),
                None => {
                    ask.push(o);
                    spent.push(None);
                }
            }
        }
        if !ask.is_empty() {
            let coins = self.source.confirmed_coins(&ask).map_err(source_error)?;
            let mut coins = coins.into_iter();
            for (slot, input) in spent.iter_mut().zip(&tx.input) {
                if !self.known.contains_key(&input.previous_output.txid) {
                    *slot = coins.next().flatten().map(|(_, out)| out);
                }
            }
        }
        Ok(spent.into_iter().collect())
    }

    fn remember(&mut self, txid: Txid, tx: &Transaction) {
        let inputs: Vec<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
        self.known.insert(
            txid,
            Known {
                inputs,
                outputs: tx.output.clone(),
            },
        );
    }

    fn forget(&mut self, txid: &Txid) {
        self.known.remove(txid);
    }
}

/// The fetched transactions in an order where a parent comes before its
/// children (Kahn's algorithm over in-batch parents; ties by txid so the order
/// is reproducible).
fn parents_first(batch: &HashMap<Txid, (Vec<u8>, Transaction)>) -> Vec<Txid> {
    let mut waiting: HashMap<Txid, usize> = HashMap::new();
    let mut children: HashMap<Txid, Vec<Txid>> = HashMap::new();
    for (txid, (_, tx)) in batch {
        let parents: HashSet<Txid> = tx
            .input
            .iter()
            .map(|i| i.previous_output.txid)
            .filter(|p| batch.contains_key(p) && p != txid)
            .collect();
        waiting.insert(*txid, parents.len());
        for p in parents {
            children.entry(p).or_default().push(*txid);
        }
    }
    let mut ready: Vec<Txid> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(t, _)| *t)
        .collect();
    ready.sort_unstable_by(|a, b| b.cmp(a));
    let mut order = Vec::with_capacity(batch.len());
    while let Some(t) = ready.pop() {
        order.push(t);
        let mut freed = Vec::new();
        for c in children.get(&t).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    freed.push(*c);
                }
            }
        }
        ready.extend(freed);
        ready.sort_unstable_by(|a, b| b.cmp(a));
    }
    order
}

/// The ABI's single-transaction spent-output layout: CompactSize(inputs), then
/// each spent CTxOut.
pub fn encode_spent(spent: &[TxOut]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = bitcoin::VarInt(spent.len() as u64).consensus_encode(&mut out);
    for o in spent {
        out.extend_from_slice(&serialize(o));
    }
    out
}

fn source_error(e: SourceError) -> FollowError {
    FollowError::Protocol(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{absolute, transaction, Amount, ScriptBuf, Sequence, TxIn, Witness};

    fn tx(inputs: &[OutPoint], outputs: usize, tag: u8) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|o| TxIn {
                    previous_output: *o,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: (0..outputs)
                .map(|i| TxOut {
                    value: Amount::from_sat(1000 + i as u64),
                    script_pubkey: ScriptBuf::from_bytes(vec![0x51, tag]),
                })
                .collect(),
        }
    }

    #[test]
    fn parents_come_before_children_whatever_the_txids() {
        let root = tx(&[OutPoint::new(Txid::from_byte_array([9; 32]), 0)], 2, 1);
        let r = root.compute_txid();
        let child = tx(&[OutPoint::new(r, 0)], 1, 2);
        let c = child.compute_txid();
        let grandchild = tx(&[OutPoint::new(c, 0), OutPoint::new(r, 1)], 1, 3);
        let g = grandchild.compute_txid();
        let batch: HashMap<Txid, (Vec<u8>, Transaction)> = [grandchild, child, root]
            .into_iter()
            .map(|t| (t.compute_txid(), (serialize(&t), t)))
            .collect();
        assert_eq!(parents_first(&batch), vec![r, c, g]);
    }

    #[test]
    fn spent_outputs_encode_as_the_abi_layout() {
        let outs = vec![
            TxOut {
                value: Amount::from_sat(5_000_000_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            },
            TxOut {
                value: Amount::from_sat(1),
                script_pubkey: ScriptBuf::from_bytes(vec![0x00, 0x14]),
            },
        ];
        let bytes = encode_spent(&outs);
        let mut want = vec![2u8];
        want.extend_from_slice(&5_000_000_000u64.to_le_bytes());
        want.extend_from_slice(&[1, 0x51]);
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&[2, 0x00, 0x14]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn getutxos_answers_decode_with_misses_in_place() {
        // Two asked, the second found: bitmap 0b10.
        let mut body = 7i32.to_le_bytes().to_vec();
        body.extend_from_slice(&[0xab; 32]);
        body.extend_from_slice(&[1, 0b10]);
        body.push(1);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&5u32.to_le_bytes());
        body.extend_from_slice(&42u64.to_le_bytes());
        body.extend_from_slice(&[1, 0x51]);
        let coins = super::super::source::decode_getutxos(&body, 2).unwrap();
        assert_eq!(coins[0], None);
        let (height, out) = coins[1].clone().unwrap();
        assert_eq!((height, out.value.to_sat(), out.script_pubkey.as_bytes()), (5, 42, &[0x51][..]));
        // A coin count that disagrees with the bitmap, and trailing bytes, are errors.
        let mut bad = body.clone();
        bad[4 + 32 + 2] = 2;
        assert!(super::super::source::decode_getutxos(&bad, 2).is_err());
        let mut long = body;
        long.push(0);
        assert!(super::super::source::decode_getutxos(&long, 2).is_err());
    }
}
