//! Synthetic blocks that spend given coins, for connect/disconnect benchmarks.

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness,
};

use super::rng::{mix, Rng};
use super::scripts::{self, Kind, MIX_PPM};
use crate::format::coin::Coin;
use crate::format::undo::{BlockSpent, SpentOutput};

const DOMAIN_BLOCK: u64 = 0x626c;
const DOMAIN_OUTPUT_SCRIPT: u64 = 0x6f73_0000;

/// Outputs of the coinbase: the payout and the witness commitment.
const COINBASE_OUTPUTS: usize = 2;

/// Mainnet's difficulty bits around height 850,000.
const BITS: u32 = 0x1703_4219;

/// Builds a mainnet-shaped block at `height` on top of `prev` that spends exactly
/// the coins `spend` (txid in internal byte order, vout, coin), and the matching
/// spent outputs (with heights and coinbase flags, as from undo data).
///
/// Connect/disconnect benchmarks need blocks whose inputs really exist in a
/// (synthetic) chainstate and whose undo data is consistent, at realistic sizes.
///
/// The block has a coinbase (BIP34 height, witness reserved value, payout of subsidy
/// plus fees, and a correct witness commitment) and `n_tx - 1` transactions that
/// share the inputs (each at least one, some consolidating many, in an order
/// shuffled by `seed`) and the outputs (each at least one, some batch payouts).
/// `n_outputs` counts every output of the block, the coinbase's two included (the
/// commitment never becomes a coin), so the block creates `n_outputs - 1` coins.
/// Scripts follow the chainstate's mix; amounts conserve value (inputs = outputs +
/// a fee of 1–30 sat/vB, capped by the inputs). Scripts and witnesses are dummy
/// bytes of realistic sizes for the spent script's kind; signatures are not valid.
/// The merkle root is computed, so the header hash identifies the block, and it
/// changes with `seed`.
///
/// Counts are raised or lowered to what is possible: `n_tx - 1` is clamped to
/// 1..=`spend.len()` (0 when `spend` is empty) and `n_outputs` to at least the
/// coinbase's two plus one per other transaction.
pub fn make_block(
    prev: BlockHash,
    height: u32,
    spend: &[([u8; 32], u32, Coin)],
    n_tx: usize,
    n_outputs: usize,
    seed: u64,
) -> (Block, BlockSpent) {
    let block_seed = mix(seed) ^ u64::from(height);
    let mut rng = Rng::for_item(block_seed, DOMAIN_BLOCK, 0);
    let spenders = if spend.is_empty() {
        0
    } else {
        n_tx.saturating_sub(1).clamp(1, spend.len())
    };
    let outputs = n_outputs.saturating_sub(COINBASE_OUTPUTS).max(spenders);

    let inputs_per_tx = spread(spend.len(), spenders, 200_000, false, &mut rng);
    let outputs_per_tx = spread(outputs, spenders, 150_000, true, &mut rng);

    // Which coin each input spends: a shuffle, then consecutive runs per transaction.
    let mut order: Vec<usize> = (0..spend.len()).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }

    let mut txdata = Vec::with_capacity(spenders + 1);
    let mut spent: BlockSpent = Vec::with_capacity(spenders + 1);
    txdata.push(Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: Vec::new(),
        output: Vec::new(),
    });
    spent.push(Vec::new());

    let mut next_input = 0usize;
    let mut next_output = 0u64;
    let mut fees = 0u64;
    for (n_in, n_out) in inputs_per_tx.into_iter().zip(outputs_per_tx) {
        let mut input = Vec::with_capacity(n_in);
        let mut list = Vec::with_capacity(n_in);
        let mut in_total = 0u64;
        for &i in &order[next_input..next_input + n_in] {
            let (txid, vout, coin) = &spend[i];
            input.push(TxIn {
                previous_output: OutPoint {
                    txid: Txid::from_byte_array(*txid),
                    vout: *vout,
                },
                ..spending_input(&coin.script, &mut rng)
            });
            list.push(SpentOutput {
                amount: coin.amount,
                script: coin.script.clone(),
                height: Some(coin.height),
                coinbase: Some(coin.coinbase),
            });
            in_total = in_total.saturating_add(coin.amount);
        }
        next_input += n_in;

        let vsize = 11 + 68 * n_in as u64 + 31 * n_out as u64;
        let fee = (vsize * rng.range(1, 30)).min(in_total);
        fees = fees.saturating_add(fee);
        let amounts = split(in_total - fee, n_out, &mut rng);
        let output = amounts
            .into_iter()
            .map(|value| {
                let kind = Kind::ALL[rng.weighted(&MIX_PPM)];
                let mut script_rng =
                    Rng::for_item(block_seed, DOMAIN_OUTPUT_SCRIPT + kind as u64, next_output);
                next_output += 1;
                TxOut {
                    value: Amount::from_sat(value),
                    script_pubkey: ScriptBuf::from_bytes(scripts::build(kind, &mut script_rng)),
                }
            })
            .collect();

        let lock_time = if rng.chance(800_000) {
            LockTime::from_consensus(height.saturating_sub(1))
        } else {
            LockTime::ZERO
        };
        txdata.push(Transaction {
            version: Version::TWO,
            lock_time,
            input,
            output,
        });
        spent.push(list);
    }

    txdata[0] = coinbase(height, subsidy(height).saturating_add(fees), &mut rng);
    let mut block = Block {
        header: Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time: block_time(height, &mut rng),
            bits: CompactTarget::from_consensus(BITS),
            nonce: rng.next_u64() as u32,
        },
        txdata,
    };
    // The witness root ignores the coinbase (its wtxid counts as zero), so the
    // commitment can be filled in after the fact.
    if let Some(root) = block.witness_root() {
        let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
        let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        script.extend_from_slice(commitment.as_byte_array());
        block.txdata[0].output[1].script_pubkey = ScriptBuf::from_bytes(script);
    }
    if let Some(root) = block.compute_merkle_root() {
        block.header.merkle_root = root;
    }
    (block, spent)
}

/// Splits `total` items over `bins` bins, each getting at least one (if `total`
/// allows): `heavy_ppm` of the extra items go to the 1% of "heavy" bins (the first
/// ones, or the last ones if `heavy_last`), the rest uniformly.
fn spread(
    total: usize,
    bins: usize,
    heavy_ppm: u64,
    heavy_last: bool,
    rng: &mut Rng,
) -> Vec<usize> {
    let mut counts = vec![1usize; bins];
    if bins == 0 {
        return counts;
    }
    let heavy = (bins / 100).max(1) as u64;
    for _ in 0..total.saturating_sub(bins) {
        let bin = if rng.chance(heavy_ppm) {
            let i = rng.below(heavy) as usize;
            if heavy_last {
                bins - 1 - i
            } else {
                i
            }
        } else {
            rng.below(bins as u64) as usize
        };
        counts[bin] += 1;
    }
    counts
}

/// Splits `total` satoshis into `n` random parts that add up to it.
fn split(total: u64, n: usize, rng: &mut Rng) -> Vec<u64> {
    let weights: Vec<u64> = (0..n).map(|_| 1 + rng.below(1_000)).collect();
    let sum: u64 = weights.iter().sum::<u64>().max(1);
    let mut parts: Vec<u64> = weights
        .iter()
        .map(|&w| (u128::from(total) * u128::from(w) / u128::from(sum)) as u64)
        .collect();
    let assigned: u64 = parts.iter().sum();
    if let Some(last) = parts.last_mut() {
        *last += total - assigned;
    }
    parts
}

/// Block subsidy at `height` (mainnet halving schedule).
fn subsidy(height: u32) -> u64 {
    let halvings = height / 210_000;
    if halvings >= 64 {
        0
    } else {
        (50 * 100_000_000u64) >> halvings
    }
}

/// Ten minutes per block since the genesis timestamp, plus up to ten minutes of
/// jitter; saturates far in the future.
fn block_time(height: u32, rng: &mut Rng) -> u32 {
    let t = 1_231_006_505 + u64::from(height) * 600 + rng.below(600);
    u32::try_from(t).unwrap_or(u32::MAX)
}

/// The coinbase: BIP34 height push and an extra nonce in the scriptSig, the 32-byte
/// witness reserved value, a P2WPKH payout of `value` and a placeholder witness
/// commitment output (filled in by [`make_block`]).
fn coinbase(height: u32, value: u64, rng: &mut Rng) -> Transaction {
    let mut script_sig = bitcoin::script::Builder::new()
        .push_int(i64::from(height))
        .into_script()
        .into_bytes();
    let mut extra = [0u8; 8];
    rng.fill(&mut extra);
    script_sig.push(extra.len() as u8);
    script_sig.extend_from_slice(&extra);
    let tag = b"/opnet-synth/";
    script_sig.push(tag.len() as u8);
    script_sig.extend_from_slice(tag);
    let mut payout = vec![0x00, 20];
    payout.extend((0..20).map(|_| rng.next_u64() as u8));
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(script_sig),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::from_bytes(payout),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::new(),
            },
        ],
    }
}

/// A random DER-shaped ECDSA signature with SIGHASH_ALL: 72 bytes.
fn ecdsa_sig(rng: &mut Rng) -> Vec<u8> {
    let mut sig = vec![0x30, 0x45, 0x02, 0x21, 0x00];
    sig.extend((0..32).map(|_| rng.next_u64() as u8));
    sig.extend_from_slice(&[0x02, 0x20]);
    sig.extend((0..32).map(|_| rng.next_u64() as u8));
    sig.push(0x01);
    sig
}

/// A random compressed-key-shaped 33-byte string.
fn pubkey(rng: &mut Rng) -> Vec<u8> {
    let mut key = vec![0x02 | (rng.next_u64() & 1) as u8];
    key.extend((0..32).map(|_| rng.next_u64() as u8));
    key
}

/// Appends a direct push of `data` (at most 75 bytes).
fn push(script: &mut Vec<u8>, data: &[u8]) {
    script.push(data.len() as u8);
    script.extend_from_slice(data);
}

/// An input (without its outpoint) with the scriptSig and witness a wallet would
/// use for `script`: P2WPKH and P2SH-wrapped P2WPKH sign with key and signature in
/// the witness, P2TR with a 64-byte key-path signature, P2WSH with a 2-of-3
/// multisig witness, the legacy forms in the scriptSig.
fn spending_input(script: &[u8], rng: &mut Rng) -> TxIn {
    let mut script_sig = Vec::new();
    let mut witness: Vec<Vec<u8>> = Vec::new();
    match scripts::classify(script) {
        Kind::P2wpkh => witness = vec![ecdsa_sig(rng), pubkey(rng)],
        Kind::P2pkh => {
            push(&mut script_sig, &ecdsa_sig(rng));
            push(&mut script_sig, &pubkey(rng));
        }
        Kind::P2tr => witness = vec![(0..64).map(|_| rng.next_u64() as u8).collect()],
        Kind::P2sh => {
            let mut redeem = vec![0x00, 20];
            redeem.extend((0..20).map(|_| rng.next_u64() as u8));
            push(&mut script_sig, &redeem);
            witness = vec![ecdsa_sig(rng), pubkey(rng)];
        }
        Kind::P2wsh => {
            let mut multisig = vec![0x52];
            for _ in 0..3 {
                push(&mut multisig, &pubkey(rng));
            }
            multisig.extend_from_slice(&[0x53, 0xae]);
            witness = vec![Vec::new(), ecdsa_sig(rng), ecdsa_sig(rng), multisig];
        }
        Kind::P2pkCompressed | Kind::P2pkUncompressed => push(&mut script_sig, &ecdsa_sig(rng)),
        Kind::Multisig => {
            script_sig.push(0x00);
            push(&mut script_sig, &ecdsa_sig(rng));
        }
        Kind::NonStandard => {
            let preimage: Vec<u8> = (0..32).map(|_| rng.next_u64() as u8).collect();
            push(&mut script_sig, &preimage);
        }
    }
    TxIn {
        previous_output: OutPoint::null(),
        script_sig: ScriptBuf::from_bytes(script_sig),
        sequence: Sequence(0xffff_fffd),
        witness: Witness::from_slice(&witness),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::undo::check_spent_matches;

    fn some_coins(n: usize) -> Vec<([u8; 32], u32, Coin)> {
        super::super::coins(&super::super::SynthSpec::new(n as u64, 4)).collect()
    }

    #[test]
    fn small_blocks_are_consistent() {
        let coins = some_coins(50);
        for (n_tx, n_out) in [(1, 0), (2, 1), (5, 20), (100, 3), (51, 51)] {
            let (block, spent) =
                make_block(BlockHash::all_zeros(), 900_000, &coins, n_tx, n_out, 1);
            check_spent_matches(&block, &spent).unwrap();
            let inputs: usize = block.txdata[1..].iter().map(|t| t.input.len()).sum();
            assert_eq!(inputs, 50);
            assert!(block.check_merkle_root());
            assert!(block.check_witness_commitment());
            assert_eq!(block.bip34_block_height(), Ok(900_000));
            for tx in &block.txdata[1..] {
                assert!(!tx.input.is_empty() && !tx.output.is_empty());
            }
        }
        let (block, spent) = make_block(BlockHash::all_zeros(), 1, &[], 10, 10, 1);
        assert_eq!(block.txdata.len(), 1);
        check_spent_matches(&block, &spent).unwrap();
    }

    #[test]
    fn value_is_conserved() {
        let coins = some_coins(300);
        let (block, _) = make_block(BlockHash::all_zeros(), 840_000, &coins, 40, 120, 9);
        let spent: u64 = coins.iter().map(|c| c.2.amount).sum();
        let created: u64 = block.txdata[1..]
            .iter()
            .flat_map(|t| &t.output)
            .map(|o| o.value.to_sat())
            .sum();
        let coinbase: u64 = block.txdata[0]
            .output
            .iter()
            .map(|o| o.value.to_sat())
            .sum();
        assert_eq!(coinbase, subsidy(840_000) + (spent - created));
        assert_eq!(subsidy(840_000), 312_500_000);
    }
}
