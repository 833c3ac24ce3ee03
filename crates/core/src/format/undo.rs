//! The outputs a block spent, in the two forms Bitcoin Core gives them out.
//!
//! * `CBlockUndo` (`undo.h`), the payload of a `rev*.dat` record: CompactSize(number
//!   of non-coinbase transactions), then per transaction CompactSize(number of inputs)
//!   and per input `VARINT(height*2 + coinbase)`, a legacy `VARINT(0)` version dummy
//!   when height > 0, and the output in `TxOutCompression` form.
//! * The REST `/rest/spenttxouts/<hash>.bin` body (`rest.cpp`): CompactSize(number of
//!   transactions, coinbase included), then per transaction CompactSize(n) and n plain
//!   `CTxOut`s (int64 LE amount, CompactSize script length, script). No heights.
//!
//! Both decode to [`BlockSpent`], which has one list per transaction of the block,
//! the coinbase's (always empty) list first, so index `i` matches `block.txdata[i]`.

use super::amount::MAX_MONEY;
use super::coin::{read_txout_compressed, write_txout_compressed};
use super::varint::{write_compact_size, write_varint};
use super::{FormatError, Reader, Result};

/// One output spent by an input of the block: what the index needs to remove it
/// (script, amount) and, from undo files, to restore it on a reorg (height, coinbase).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpentOutput {
    /// Value in satoshis.
    pub amount: u64,
    /// The spent output's scriptPubKey.
    pub script: Vec<u8>,
    /// Height of the block that created the output; `None` when the source (REST)
    /// does not carry it.
    pub height: Option<u32>,
    /// Whether the output was created by a coinbase; `None` when the source (REST)
    /// does not carry it.
    pub coinbase: Option<bool>,
}

/// The spent outputs of a block: one list per transaction in block order, the
/// coinbase's empty list included, each in the order of that transaction's inputs.
pub type BlockSpent = Vec<Vec<SpentOutput>>;

/// Smallest possible encoding of one undo entry: code, amount and a script size byte.
const MIN_UNDO_ENTRY: usize = 3;
/// Smallest possible encoding of one REST `CTxOut`: 8-byte amount and a length byte.
const MIN_REST_TXOUT: usize = 9;

/// Capacity for `count` items of at least `min_size` bytes each, never more than the
/// remaining input could hold, so a hostile count cannot force a huge allocation.
fn bounded_capacity(count: u64, remaining: usize, min_size: usize) -> usize {
    let fits = remaining / min_size.max(1);
    usize::try_from(count).map_or(fits, |c| c.min(fits))
}

/// Decodes a `CBlockUndo` (the bytes of a `rev*.dat` record between its header and
/// its checksum) and prepends the coinbase's empty list.
///
/// Heights and coinbase flags are `Some`. Rejects truncation, trailing bytes, codes
/// or version dummies beyond Core's `uint32_t`, amounts above `MAX_MONEY` and
/// scripts that cannot be decompressed.
pub fn decode_block_undo(bytes: &[u8]) -> Result<BlockSpent> {
    let mut r = Reader::new(bytes);
    let tx_count = r.compact_size("block undo transaction count")?;
    let mut spent = Vec::with_capacity(1 + bounded_capacity(tx_count, r.remaining(), 1));
    spent.push(Vec::new());
    for _ in 0..tx_count {
        let n = r.compact_size("transaction undo input count")?;
        let mut list = Vec::with_capacity(bounded_capacity(n, r.remaining(), MIN_UNDO_ENTRY));
        for _ in 0..n {
            list.push(read_undo_entry(&mut r)?);
        }
        spent.push(list);
    }
    r.finish("block undo")?;
    Ok(spent)
}

/// One `TxInUndoFormatter` entry.
fn read_undo_entry(r: &mut Reader<'_>) -> Result<SpentOutput> {
    let code = r.varint("undo entry code (height*2+coinbase)", u64::from(u32::MAX))?;
    // code <= u32::MAX, so code >> 1 fits.
    let height = (code >> 1) as u32;
    if height > 0 {
        // Old versions stored the creating transaction's version here; Core reads
        // and discards it as an `unsigned int`.
        r.varint("undo entry version dummy", u64::from(u32::MAX))?;
    }
    let (amount, script) = read_txout_compressed(r)?;
    Ok(SpentOutput {
        amount,
        script,
        height: Some(height),
        coinbase: Some(code & 1 == 1),
    })
}

/// Appends the `CBlockUndo` of `spent` exactly as Core writes it (the input of the
/// synthetic data generator).
///
/// `spent[0]` stands for the coinbase and is never written (Core has no undo entry
/// for it); any entries it holds are ignored. An entry whose `height` is `None` is
/// written with height 0 (hence without the version dummy) and one whose `coinbase`
/// is `None` as not coinbase, so REST-derived data encodes to a well-formed record
/// that decodes with `Some(0)`/`Some(false)`. As in Core, only the low 31 bits of a
/// height are kept.
pub fn encode_block_undo(spent: &BlockSpent, out: &mut Vec<u8>) {
    let txs = spent.get(1..).unwrap_or(&[]);
    write_compact_size(out, txs.len() as u64);
    for list in txs {
        write_compact_size(out, list.len() as u64);
        for entry in list {
            let height = entry.height.unwrap_or(0);
            let code = (height << 1) | u32::from(entry.coinbase.unwrap_or(false));
            write_varint(out, u64::from(code));
            if code >> 1 > 0 {
                write_varint(out, 0);
            }
            write_txout_compressed(out, entry.amount, &entry.script);
        }
    }
}

/// Decodes the body of Bitcoin Core's `GET /rest/spenttxouts/<hash>.bin`.
///
/// Heights and coinbase flags are `None` (the format has none). Rejects truncation,
/// trailing bytes, a transaction count of zero or a non-empty coinbase list (Core
/// always writes an empty one first), negative amounts, amounts above `MAX_MONEY`,
/// and script lengths beyond the input.
pub fn decode_rest_spent_txouts(bytes: &[u8]) -> Result<BlockSpent> {
    let mut r = Reader::new(bytes);
    let count_at = r.offset();
    let tx_count = r.compact_size("spenttxouts transaction count")?;
    if tx_count == 0 {
        return Err(FormatError::Invalid {
            what: "spenttxouts transaction count",
            offset: count_at,
            detail: "zero transactions: the coinbase's list is missing".into(),
        });
    }
    let mut spent = Vec::with_capacity(bounded_capacity(tx_count, r.remaining(), 1));
    for tx in 0..tx_count {
        let n_at = r.offset();
        let n = r.compact_size("spenttxouts input count")?;
        if tx == 0 && n != 0 {
            return Err(FormatError::Invalid {
                what: "spenttxouts coinbase input count",
                offset: n_at,
                detail: format!("the coinbase spends nothing, found {n} outputs"),
            });
        }
        let mut list = Vec::with_capacity(bounded_capacity(n, r.remaining(), MIN_REST_TXOUT));
        for _ in 0..n {
            list.push(read_plain_txout(&mut r)?);
        }
        spent.push(list);
    }
    r.finish("spenttxouts")?;
    Ok(spent)
}

/// Encodes `spent` as Bitcoin Core's REST `spenttxouts` body: the inverse of
/// [`decode_rest_spent_txouts`] (heights and coinbase flags are not part of it).
/// `spent[0]` stands for the coinbase and is written empty.
pub fn encode_rest_spent_txouts(spent: &BlockSpent, out: &mut Vec<u8>) {
    write_compact_size(out, spent.len().max(1) as u64);
    write_compact_size(out, 0);
    for list in spent.iter().skip(1) {
        encode_rest_tx_spent(list, out);
    }
}

/// One transaction's part of the REST layout: CompactSize(inputs), then each
/// spent `CTxOut`. Also how the plugin ABI passes a mempool transaction's spent
/// outputs.
pub fn encode_rest_tx_spent(list: &[SpentOutput], out: &mut Vec<u8>) {
    write_compact_size(out, list.len() as u64);
    for entry in list {
        out.extend_from_slice(&(entry.amount as i64).to_le_bytes());
        write_compact_size(out, entry.script.len() as u64);
        out.extend_from_slice(&entry.script);
    }
}

/// One plain `CTxOut`.
fn read_plain_txout(r: &mut Reader<'_>) -> Result<SpentOutput> {
    let amount_at = r.offset();
    let amount = r.i64_le("spent output amount")?;
    let amount = u64::try_from(amount)
        .ok()
        .filter(|&a| a <= MAX_MONEY)
        .ok_or_else(|| FormatError::Invalid {
            what: "spent output amount",
            offset: amount_at,
            detail: format!("{amount} sat is outside 0..=MAX_MONEY"),
        })?;
    let len = r.compact_size("spent output script length")?;
    // len <= MAX_SIZE (32 MiB) after the CompactSize check, so it fits in usize.
    let script = r.take(len as usize, "spent output script")?.to_vec();
    Ok(SpentOutput {
        amount,
        script,
        height: None,
        coinbase: None,
    })
}

/// Checks that `spent` has the shape of `block`: one list per transaction, the
/// coinbase's empty, every other as long as that transaction's inputs. Run before
/// pairing inputs with spent outputs, so a mismatched undo record is an error
/// instead of a wrong index.
pub fn check_spent_matches(block: &bitcoin::Block, spent: &BlockSpent) -> Result<()> {
    if spent.len() != block.txdata.len() {
        return Err(FormatError::Mismatch {
            what: "spent outputs and block",
            detail: format!(
                "{} transaction lists for a block of {} transactions ({})",
                spent.len(),
                block.txdata.len(),
                block.block_hash()
            ),
        });
    }
    for (i, (tx, list)) in block.txdata.iter().zip(spent).enumerate() {
        let expected = if i == 0 { 0 } else { tx.input.len() };
        if list.len() != expected {
            return Err(FormatError::Mismatch {
                what: "spent outputs and block",
                detail: format!(
                    "transaction {i} ({}) of block {} has {expected} inputs to undo but {} spent outputs",
                    tx.compute_txid(),
                    block.block_hash(),
                    list.len()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::{all_prefixes_fail, XorShift};
    use crate::format::varint::MAX_SIZE;

    fn entry(amount: u64, script: &[u8], height: u32, coinbase: bool) -> SpentOutput {
        SpentOutput {
            amount,
            script: script.to_vec(),
            height: Some(height),
            coinbase: Some(coinbase),
        }
    }

    fn sample() -> BlockSpent {
        let p2pkh = {
            let mut s = vec![0x76, 0xa9, 20];
            s.extend_from_slice(&[0x11; 20]);
            s.extend_from_slice(&[0x88, 0xac]);
            s
        };
        vec![
            vec![],
            vec![entry(5_000_000_000, &p2pkh, 1, true)],
            vec![
                entry(1, &[0x51], 0, false),
                entry(MAX_MONEY, &[0x6a, 0x01, 0x02], 170, false),
            ],
            vec![],
        ]
    }

    #[test]
    fn undo_exact_bytes() {
        let mut bytes = Vec::new();
        encode_block_undo(&sample(), &mut bytes);
        let expected: Vec<u8> = [
            &[0x03][..],               // three non-coinbase transactions
            &[0x01],                   // tx 1: one input
            &[0x03, 0x00],             // code 1*2+1, version dummy
            &[0x32],                   // compress_amount(50 BTC) = 50
            &[0x00],                   // P2PKH form
            &[0x11; 20],               // hash
            &[0x02],                   // tx 2: two inputs
            &[0x00],                   // height 0: no dummy
            &[0x01],                   // amount 1
            &[0x07, 0x51],             // raw script of 1 byte
            &[0x81, 0x54, 0x00],       // code 340, dummy
            &[0x89, 0x80, 0xdd, 0x40], // compress_amount(MAX_MONEY) = 21,000,000
            &[0x09, 0x6a, 0x01, 0x02], // raw script of 3 bytes
            &[0x00],                   // tx 3: no inputs
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode_block_undo(&bytes), Ok(sample()));
    }

    #[test]
    fn undo_rejects_truncation_and_trailing_bytes() {
        let mut bytes = Vec::new();
        encode_block_undo(&sample(), &mut bytes);
        all_prefixes_fail(&bytes, decode_block_undo);
        bytes.push(0);
        assert!(matches!(
            decode_block_undo(&bytes),
            Err(FormatError::TrailingBytes { extra: 1, .. })
        ));
    }

    #[test]
    fn undo_encoding_of_missing_metadata() {
        let spent = vec![
            vec![entry(7, &[0x51], 9, true)],
            vec![SpentOutput {
                amount: 7,
                script: vec![0x51],
                height: None,
                coinbase: None,
            }],
        ];
        let mut bytes = Vec::new();
        encode_block_undo(&spent, &mut bytes);
        // compress_amount(7) = 1 + (0*9 + 7 - 1)*10 + 0 = 61.
        assert_eq!(bytes, [0x01, 0x01, 0x00, 61, 0x07, 0x51]);
        assert_eq!(
            decode_block_undo(&bytes),
            Ok(vec![vec![], vec![entry(7, &[0x51], 0, false)]])
        );
        let mut empty = Vec::new();
        encode_block_undo(&Vec::new(), &mut empty);
        assert_eq!(empty, [0x00]);
        assert_eq!(decode_block_undo(&empty), Ok(vec![vec![]]));
    }

    #[test]
    fn huge_counts_fail_without_allocating() {
        // A count of MAX_SIZE transactions / inputs with nothing behind it.
        let mut bytes = Vec::new();
        write_compact_size(&mut bytes, MAX_SIZE);
        assert!(matches!(
            decode_block_undo(&bytes),
            Err(FormatError::Truncated { .. })
        ));
        assert!(decode_rest_spent_txouts(&bytes).is_err());
        let bytes = [0x01, 0xfe, 0x00, 0x00, 0x00, 0x02];
        assert!(matches!(
            decode_block_undo(&bytes),
            Err(FormatError::Truncated { offset: 6, .. })
        ));
        let bytes = [0x02, 0x00, 0xfe, 0x00, 0x00, 0x00, 0x02];
        assert!(matches!(
            decode_rest_spent_txouts(&bytes),
            Err(FormatError::Truncated { offset: 7, .. })
        ));
    }

    fn rest_bytes(lists: &[&[(i64, &[u8])]]) -> Vec<u8> {
        let mut out = Vec::new();
        write_compact_size(&mut out, lists.len() as u64);
        for list in lists {
            write_compact_size(&mut out, list.len() as u64);
            for (amount, script) in *list {
                out.extend_from_slice(&amount.to_le_bytes());
                write_compact_size(&mut out, script.len() as u64);
                out.extend_from_slice(script);
            }
        }
        out
    }

    #[test]
    fn rest_encoding_is_the_inverse_of_decoding() {
        let long = [0xab; 300];
        let bytes = rest_bytes(&[&[], &[(5_000, b"\x51"), (7, &long)], &[(0, b"")]]);
        let spent = decode_rest_spent_txouts(&bytes).unwrap();
        let mut out = Vec::new();
        encode_rest_spent_txouts(&spent, &mut out);
        assert_eq!(out, bytes);
        let mut one = Vec::new();
        encode_rest_tx_spent(&spent[1], &mut one);
        assert_eq!(one, bytes[2..2 + one.len()].to_vec());
        assert_eq!(one.len(), 1 + 9 + 1 + 9 + 2 + 300);
    }

    #[test]
    fn rest_decoding() {
        let bytes = rest_bytes(&[
            &[],
            &[(1000, &[0x51]), (0, &[])],
            &[(MAX_MONEY as i64, &[0xaa; 300])],
        ]);
        let rest = |amount, script: &[u8]| SpentOutput {
            amount,
            script: script.to_vec(),
            height: None,
            coinbase: None,
        };
        assert_eq!(
            decode_rest_spent_txouts(&bytes),
            Ok(vec![
                vec![],
                vec![rest(1000, &[0x51]), rest(0, &[])],
                vec![rest(MAX_MONEY, &[0xaa; 300])],
            ])
        );
        all_prefixes_fail(&bytes, decode_rest_spent_txouts);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode_rest_spent_txouts(&trailing),
            Err(FormatError::TrailingBytes { .. })
        ));
        // The smallest valid body: a block with only a coinbase.
        assert_eq!(decode_rest_spent_txouts(&[0x01, 0x00]), Ok(vec![vec![]]));
    }

    #[test]
    fn rest_rejects_bad_amounts_and_shapes() {
        for amount in [-1i64, i64::MIN, MAX_MONEY as i64 + 1, i64::MAX] {
            let bytes = rest_bytes(&[&[], &[(amount, &[0x51])]]);
            assert!(
                matches!(
                    decode_rest_spent_txouts(&bytes),
                    Err(FormatError::Invalid {
                        what: "spent output amount",
                        offset: 3,
                        ..
                    })
                ),
                "amount {amount} accepted"
            );
        }
        assert!(decode_rest_spent_txouts(&[0x00]).is_err());
        let coinbase_spends = rest_bytes(&[&[(1, &[0x51])]]);
        assert!(matches!(
            decode_rest_spent_txouts(&coinbase_spends),
            Err(FormatError::Invalid { offset: 1, .. })
        ));
        // A script length beyond the buffer.
        let mut bytes = rest_bytes(&[&[], &[(1, &[0x51, 0x52])]]);
        bytes.pop();
        assert!(matches!(
            decode_rest_spent_txouts(&bytes),
            Err(FormatError::Truncated {
                what: "spent output script",
                ..
            })
        ));
    }

    #[test]
    fn undo_rejects_oversized_code_and_amount() {
        let mut bytes = vec![0x01, 0x01];
        write_varint(&mut bytes, 1 << 32);
        assert!(matches!(
            decode_block_undo(&bytes),
            Err(FormatError::Invalid { offset: 2, .. })
        ));
        let mut bytes = vec![0x01, 0x01, 0x00];
        write_varint(&mut bytes, crate::format::compress_amount(MAX_MONEY + 1));
        bytes.push(0x06);
        assert!(matches!(
            decode_block_undo(&bytes),
            Err(FormatError::Invalid {
                what: "compressed amount",
                offset: 3,
                ..
            })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(0x0bad_cafe);
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 64) as usize;
            let mut bytes = rng.bytes(len);
            // Keep counts small often enough to get past the first fields.
            if let Some(b) = bytes.first_mut() {
                *b %= 4;
            }
            if let Some(b) = bytes.get_mut(1) {
                *b %= 4;
            }
            let _ = decode_block_undo(&bytes);
            let _ = decode_rest_spent_txouts(&bytes);
        }
    }
}
