//! What connecting one block does to the index, computed from the block and the
//! outputs it spends (Bitcoin Core's undo data). Pure: no I/O except the lookup the
//! caller provides for spent outputs whose height the source does not know.

use std::collections::HashMap;

use bitcoin::hashes::Hash;
use bitcoin::Block;

use super::SyncError;
use crate::format::undo::{check_spent_matches, BlockSpent};
use crate::index::{script_hash, IndexError, UndoRecord, UtxoKey, UtxoValue};

/// Bitcoin Core never adds these to the UTXO set (`CScript::IsUnspendable`).
pub fn is_unspendable(script: &[u8]) -> bool {
    script.first() == Some(&0x6a) || script.len() > 10_000
}

/// A block's effect on the index.
#[derive(Debug)]
pub struct BlockDelta {
    /// Created keys and spent entries, as stored for a later disconnect.
    pub undo: UndoRecord,
    /// Outputs the block leaves unspent, with their values.
    pub created: Vec<(UtxoKey, UtxoValue)>,
    pub created_amount: u64,
    pub spent_amount: u64,
    /// Txids of the block's transactions, in block order (the mempool view drops
    /// the ones a block confirms).
    pub txids: Vec<[u8; 32]>,
}

/// Keys of the outputs `block` spends whose height or coinbase flag the source did
/// not give (REST `spenttxouts`): the entries [`block_delta`] will need looked up.
pub fn keys_to_look_up(block: &Block, spent: &BlockSpent) -> Vec<UtxoKey> {
    let mut keys = Vec::new();
    for (tx, tx_spent) in block.txdata.iter().zip(spent) {
        if tx.is_coinbase() {
            continue;
        }
        for (input, out) in tx.input.iter().zip(tx_spent) {
            if out.height.is_none() || out.coinbase.is_none() {
                keys.push(UtxoKey {
                    script_hash: script_hash(&out.script),
                    txid: input.previous_output.txid.to_byte_array(),
                    vout: input.previous_output.vout,
                });
            }
        }
    }
    keys
}

/// Computes the delta of `block` at `height`. Outputs created and spent inside the
/// block never appear. `lookup` is asked for a spent entry only when the source gave
/// no height or coinbase flag (e.g. REST `spenttxouts`); a missing entry then means
/// the index disagrees with the chain.
pub fn block_delta(
    block: &Block,
    height: u32,
    spent: &BlockSpent,
    lookup: &mut dyn FnMut(&UtxoKey) -> Result<Option<UtxoValue>, IndexError>,
) -> Result<BlockDelta, SyncError> {
    let hash = block.block_hash();
    check_spent_matches(block, spent)
        .map_err(|e| SyncError::Inconsistent(format!("spent outputs of block {hash}: {e}")))?;
    let mut created: Vec<Option<(UtxoKey, UtxoValue)>> = Vec::new();
    let mut created_at: HashMap<([u8; 32], u32), usize> = HashMap::new();
    let mut spent_entries = Vec::new();
    let mut spent_amount = 0u64;
    let mut txids = Vec::with_capacity(block.txdata.len());
    for (tx, tx_spent) in block.txdata.iter().zip(spent) {
        let txid = tx.compute_txid().to_byte_array();
        txids.push(txid);
        if !tx.is_coinbase() {
            for (input, out) in tx.input.iter().zip(tx_spent) {
                let prev = (
                    input.previous_output.txid.to_byte_array(),
                    input.previous_output.vout,
                );
                if let Some(i) = created_at.remove(&prev) {
                    // Created earlier in this block: it never reaches the index.
                    created[i] = None;
                    continue;
                }
                let key = UtxoKey {
                    script_hash: script_hash(&out.script),
                    txid: prev.0,
                    vout: prev.1,
                };
                let value = match (out.height, out.coinbase) {
                    (Some(h), Some(cb)) => UtxoValue {
                        amount: out.amount,
                        height: h,
                        coinbase: cb,
                        script: out.script.clone(),
                    },
                    _ => {
                        let v = lookup(&key)?.ok_or_else(|| {
                            SyncError::Inconsistent(format!(
                                "block {hash} spends {}:{} which the index does not hold",
                                input.previous_output.txid, prev.1
                            ))
                        })?;
                        if v.amount != out.amount || v.script != out.script {
                            return Err(SyncError::Inconsistent(format!(
                                "block {hash} spends {}:{} with {} sats, the index holds {} sats",
                                input.previous_output.txid, prev.1, out.amount, v.amount
                            )));
                        }
                        v
                    }
                };
                spent_amount = spent_amount.checked_add(value.amount).ok_or_else(|| {
                    SyncError::Inconsistent(format!("spent amount overflow in block {hash}"))
                })?;
                spent_entries.push((key, value));
            }
        }
        for (vout, out) in tx.output.iter().enumerate() {
            let script = out.script_pubkey.as_bytes();
            if is_unspendable(script) {
                continue;
            }
            let key = UtxoKey {
                script_hash: script_hash(script),
                txid,
                vout: vout as u32,
            };
            let value = UtxoValue {
                amount: out.value.to_sat(),
                height,
                coinbase: tx.is_coinbase(),
                script: script.to_vec(),
            };
            created_at.insert((txid, vout as u32), created.len());
            created.push(Some((key, value)));
        }
    }
    let created: Vec<(UtxoKey, UtxoValue)> = created.into_iter().flatten().collect();
    let mut created_amount = 0u64;
    for (_, v) in &created {
        created_amount = created_amount.checked_add(v.amount).ok_or_else(|| {
            SyncError::Inconsistent(format!("created amount overflow in block {hash}"))
        })?;
    }
    Ok(BlockDelta {
        undo: UndoRecord {
            height,
            block_hash: hash.to_byte_array(),
            prev_hash: block.header.prev_blockhash.to_byte_array(),
            created: created.iter().map(|(k, v)| (*k, v.amount)).collect(),
            spent: spent_entries,
        },
        created,
        created_amount,
        spent_amount,
        txids,
    })
}
