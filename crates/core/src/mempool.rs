//! The in-memory mempool view: transactions the host reported as entering the
//! mempool and not yet removed, indexed the way queries ask — outputs pending per
//! scripthash, and which outpoints a mempool transaction spends.
//!
//! It is fed by the host's mempool callbacks, which carry each transaction's spent
//! outputs (amount and script) the way block callbacks do: the index is keyed by
//! scripthash, so without the spent script an input could not be attributed to
//! the scripthash it spends from. Bitcoin Core does not signal transactions that
//! leave the mempool because a block confirmed them, so [`MempoolView::block_connected`]
//! drops those (and transactions the block conflicts with) itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::Transaction;

use crate::format::undo::SpentOutput;
use crate::index::{script_hash, ScriptHash};
use crate::protocol::{ActivityChange, RemovalReason};
use crate::sync::delta::is_unspendable;

/// A transaction output: txid (internal byte order) and index.
pub type Outpoint = ([u8; 32], u32);

/// An output of a mempool transaction, as a query returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOutput {
    pub amount: u64,
    pub script: Arc<[u8]>,
}

/// One change to a scripthash's outputs, for scripthash subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    pub script_hash: ScriptHash,
    pub outpoint: Outpoint,
    pub change: ActivityChange,
    pub amount: u64,
    /// Height of the block that created the output; 0 for a mempool output.
    pub height: u32,
}

/// What the view learned about an added transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    pub txid: [u8; 32],
    /// Sum of inputs minus sum of outputs.
    pub fee: u64,
    pub vsize: u32,
    pub inputs: u32,
    pub outputs: u32,
    pub activity: Vec<Activity>,
}

/// A transaction that left the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    pub txid: [u8; 32],
    pub reason: RemovalReason,
    pub activity: Vec<Activity>,
}

/// Why a mempool notification was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MempoolError {
    /// The spent outputs do not match the inputs, or the values do not add up.
    Inconsistent(String),
}

impl std::fmt::Display for MempoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MempoolError::Inconsistent(m) => write!(f, "inconsistent mempool transaction: {m}"),
        }
    }
}

impl std::error::Error for MempoolError {}

struct Entry {
    tx: Arc<Transaction>,
    /// (scripthash, outpoint spent, amount, height of the spent output or 0).
    spends: Vec<(ScriptHash, Outpoint, u64, u32)>,
    /// (scripthash, vout, amount) of the indexable outputs.
    outputs: Vec<(ScriptHash, u32, u64)>,
}

/// The mempool view (see the module doc).
#[derive(Default)]
pub struct MempoolView {
    txs: HashMap<[u8; 32], Entry>,
    pending: HashMap<ScriptHash, BTreeMap<Outpoint, PendingOutput>>,
    /// Outpoint → spending txid.
    spent: HashMap<Outpoint, [u8; 32]>,
    /// Scripthash → outpoints of it spent by mempool transactions.
    spent_by_script: HashMap<ScriptHash, BTreeMap<Outpoint, [u8; 32]>>,
}

impl MempoolView {
    /// An empty view.
    pub fn new() -> MempoolView {
        MempoolView::default()
    }

    /// Number of transactions in the view.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True when the view holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Adds a transaction with the outputs its inputs spend (one per input, in
    /// order). `spent_heights` supplies the creating height of a spent output when
    /// the host did not (0 = unknown or itself in the mempool). `None` when the
    /// transaction is already in the view (the host may repeat itself).
    pub fn add(
        &mut self,
        tx: Arc<Transaction>,
        spent: &[SpentOutput],
        spent_heights: &dyn Fn(&ScriptHash, &Outpoint) -> u32,
    ) -> Result<Option<Added>, MempoolError> {
        let txid = tx.compute_txid().to_byte_array();
        if self.txs.contains_key(&txid) {
            return Ok(None);
        }
        if tx.is_coinbase() {
            return Err(MempoolError::Inconsistent(
                "a coinbase cannot be in the mempool".into(),
            ));
        }
        if spent.len() != tx.input.len() {
            return Err(MempoolError::Inconsistent(format!(
                "{} inputs but {} spent outputs",
                tx.input.len(),
                spent.len()
            )));
        }
        let mut in_sum = 0u64;
        let mut activity = Vec::new();
        let mut spends = Vec::with_capacity(spent.len());
        for (input, out) in tx.input.iter().zip(spent) {
            let outpoint = (
                input.previous_output.txid.to_byte_array(),
                input.previous_output.vout,
            );
            in_sum = in_sum
                .checked_add(out.amount)
                .ok_or_else(|| MempoolError::Inconsistent("input sum overflows".into()))?;
            let sh = script_hash(&out.script);
            let height = out.height.unwrap_or_else(|| spent_heights(&sh, &outpoint));
            spends.push((sh, outpoint, out.amount, height));
            activity.push(Activity {
                script_hash: sh,
                outpoint,
                change: ActivityChange::SpentInMempool,
                amount: out.amount,
                height,
            });
        }
        let mut out_sum = 0u64;
        let mut outputs = Vec::new();
        for (vout, out) in tx.output.iter().enumerate() {
            out_sum = out_sum
                .checked_add(out.value.to_sat())
                .ok_or_else(|| MempoolError::Inconsistent("output sum overflows".into()))?;
            let script = out.script_pubkey.as_bytes();
            if is_unspendable(script) {
                continue;
            }
            let sh = script_hash(script);
            outputs.push((sh, vout as u32, out.value.to_sat()));
            activity.push(Activity {
                script_hash: sh,
                outpoint: (txid, vout as u32),
                change: ActivityChange::Added,
                amount: out.value.to_sat(),
                height: 0,
            });
        }
        let fee = in_sum.checked_sub(out_sum).ok_or_else(|| {
            MempoolError::Inconsistent(format!(
                "outputs ({out_sum} sats) exceed inputs ({in_sum} sats)"
            ))
        })?;
        for (sh, outpoint, _, _) in &spends {
            self.spent.insert(*outpoint, txid);
            self.spent_by_script
                .entry(*sh)
                .or_default()
                .insert(*outpoint, txid);
        }
        for (sh, vout, amount) in &outputs {
            let script: Arc<[u8]> = Arc::from(tx.output[*vout as usize].script_pubkey.as_bytes());
            self.pending.entry(*sh).or_default().insert(
                (txid, *vout),
                PendingOutput {
                    amount: *amount,
                    script,
                },
            );
        }
        let added = Added {
            txid,
            fee,
            vsize: tx.vsize() as u32,
            inputs: tx.input.len() as u32,
            outputs: tx.output.len() as u32,
            activity,
        };
        self.txs.insert(
            txid,
            Entry {
                tx,
                spends,
                outputs,
            },
        );
        Ok(Some(added))
    }

    /// Removes a transaction; `None` when it is not in the view.
    pub fn remove(&mut self, txid: &[u8; 32], reason: RemovalReason) -> Option<Removed> {
        let entry = self.txs.remove(txid)?;
        let mut activity = Vec::new();
        for (sh, outpoint, amount, height) in entry.spends {
            if self.spent.get(&outpoint) == Some(txid) {
                self.spent.remove(&outpoint);
            }
            if let Some(m) = self.spent_by_script.get_mut(&sh) {
                if m.get(&outpoint) == Some(txid) {
                    m.remove(&outpoint);
                }
                if m.is_empty() {
                    self.spent_by_script.remove(&sh);
                }
            }
            activity.push(Activity {
                script_hash: sh,
                outpoint,
                change: ActivityChange::UnspentInMempool,
                amount,
                height,
            });
        }
        for (sh, vout, amount) in entry.outputs {
            if let Some(m) = self.pending.get_mut(&sh) {
                m.remove(&(*txid, vout));
                if m.is_empty() {
                    self.pending.remove(&sh);
                }
            }
            activity.push(Activity {
                script_hash: sh,
                outpoint: (*txid, vout),
                change: ActivityChange::Removed,
                amount,
                height: 0,
            });
        }
        Some(Removed {
            txid: *txid,
            reason,
            activity,
        })
    }

    /// Drops what a connected block confirmed (`txids`) and what now conflicts with
    /// it (transactions spending an outpoint the block spent, `spent`).
    pub fn block_connected(
        &mut self,
        txids: &[[u8; 32]],
        spent: impl Iterator<Item = Outpoint>,
    ) -> Vec<Removed> {
        let mut out = Vec::new();
        for txid in txids {
            if let Some(r) = self.remove(txid, RemovalReason::Block) {
                out.push(r);
            }
        }
        for outpoint in spent {
            if let Some(spender) = self.spent.get(&outpoint).copied() {
                if let Some(r) = self.remove(&spender, RemovalReason::Conflict) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// Drops everything (the host resets its mempool, or the index was rebuilt).
    pub fn clear(&mut self) -> Vec<[u8; 32]> {
        let txids = self.txs.keys().copied().collect();
        *self = MempoolView::default();
        txids
    }

    /// Outputs of mempool transactions paying `sh`, in outpoint order.
    pub fn pending_for(&self, sh: &ScriptHash) -> Vec<(Outpoint, PendingOutput)> {
        self.pending
            .get(sh)
            .map(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }

    /// Outpoints of `sh` spent by mempool transactions, with the spender.
    pub fn spent_for(&self, sh: &ScriptHash) -> HashMap<Outpoint, [u8; 32]> {
        self.spent_by_script
            .get(sh)
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    /// A transaction in the view.
    pub fn transaction(&self, txid: &[u8; 32]) -> Option<Arc<Transaction>> {
        self.txs.get(txid).map(|e| e.tx.clone())
    }
}
