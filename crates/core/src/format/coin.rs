//! Chainstate UTXO records (`Coin` in `coins.h`, `CoinEntry` in `txdb.cpp`).
//!
//! Key: `'C'` | txid (32 bytes, internal byte order) | VARINT(vout).
//! Value (after de-obfuscation): VARINT(height × 2 + coinbase), then the output in
//! `TxOutCompression` form: VARINT(compressed amount) and a compressed script.

use super::amount::{compress_amount, decompress_amount, MAX_MONEY};
use super::script::write_compressed_script;
use super::varint::write_varint;
use super::{FormatError, Reader, Result};

/// The key prefix of coin records in the chainstate database (`DB_COIN`).
pub const DB_COIN: u8 = b'C';

/// One unspent output as the chainstate stores it: what the index needs to file it
/// under its script and to report its height, amount and maturity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Coin {
    /// Value in satoshis (at most [`MAX_MONEY`] when decoded).
    pub amount: u64,
    /// Height of the block that created the output (31 bits in Core).
    pub height: u32,
    /// Whether the creating transaction is a coinbase (maturity rule).
    pub coinbase: bool,
    /// The full scriptPubKey.
    pub script: Vec<u8>,
}

/// Decodes a de-obfuscated chainstate coin value.
///
/// Rejects truncation, trailing bytes, a code that does not fit Core's `uint32_t`, and
/// an amount above [`MAX_MONEY`] (Core would load it, but no valid chain creates one,
/// so it can only be corruption or a wrong obfuscation key).
pub fn decode_coin(value: &[u8]) -> Result<Coin> {
    let mut r = Reader::new(value);
    let code = r.varint("coin code (height*2+coinbase)", u64::from(u32::MAX))?;
    let (amount, script) = read_txout_compressed(&mut r)?;
    r.finish("coin")?;
    Ok(Coin {
        amount,
        // code <= u32::MAX, so code >> 1 fits.
        height: (code >> 1) as u32,
        coinbase: code & 1 == 1,
        script,
    })
}

/// Reads `TxOutCompression`: VARINT(compressed amount) then a compressed script.
/// Shared by coins and undo records, which store outputs the same way.
pub(crate) fn read_txout_compressed(r: &mut Reader<'_>) -> Result<(u64, Vec<u8>)> {
    let amount_at = r.offset();
    let amount = decompress_amount(r.varint("compressed amount", u64::MAX)?);
    if amount > MAX_MONEY {
        return Err(FormatError::Invalid {
            what: "compressed amount",
            offset: amount_at,
            detail: format!("decompresses to {amount} sat, above MAX_MONEY"),
        });
    }
    let script = r.compressed_script()?;
    Ok((amount, script))
}

/// Appends `TxOutCompression` of an output.
pub(crate) fn write_txout_compressed(out: &mut Vec<u8>, amount: u64, script: &[u8]) {
    write_varint(out, compress_amount(amount));
    write_compressed_script(out, script);
}

/// Appends the chainstate value of `coin` (not obfuscated), byte for byte what Core
/// writes. Core keeps the height in 31 bits; a height ≥ 2^31 loses its top bit here
/// just as it would there.
pub fn encode_coin(coin: &Coin, out: &mut Vec<u8>) {
    let code = (coin.height << 1) | u32::from(coin.coinbase);
    write_varint(out, u64::from(code));
    write_txout_compressed(out, coin.amount, &coin.script);
}

/// Decodes a chainstate coin key into (txid in internal byte order, vout).
pub fn decode_coin_key(key: &[u8]) -> Result<([u8; 32], u32)> {
    let mut r = Reader::new(key);
    let [prefix] = r.array::<1>("coin key prefix")?;
    if prefix != DB_COIN {
        return Err(FormatError::Invalid {
            what: "coin key prefix",
            offset: 0,
            detail: format!("expected 0x{DB_COIN:02x} ('C'), found 0x{prefix:02x}"),
        });
    }
    let txid = r.array::<32>("coin key txid")?;
    let vout = r.varint("coin key vout", u64::from(u32::MAX))?;
    r.finish("coin key")?;
    // Bounded by u32::MAX above.
    Ok((txid, vout as u32))
}

/// Appends the chainstate key of outpoint (`txid` in internal byte order, `vout`).
pub fn encode_coin_key(txid: &[u8; 32], vout: u32, out: &mut Vec<u8>) {
    out.push(DB_COIN);
    out.extend_from_slice(txid);
    write_varint(out, u64::from(vout));
}

/// XORs `value` in place with `key` repeated from its first byte: how Core obfuscates
/// chainstate values (and undoes it). An empty key leaves the value unchanged, as for
/// databases created before obfuscation existed.
pub fn deobfuscate(value: &mut [u8], key: &[u8]) {
    if key.is_empty() {
        return;
    }
    for (byte, k) in value.iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::{all_prefixes_fail, hex, XorShift};

    /// `ccoins_serialization` in Bitcoin Core's src/test/coins_tests.cpp.
    #[test]
    fn core_ccoins_serialization_vectors() {
        let good = [
            (
                "97f23c835800816115944e077fe7c803cfa57f29b36bf87c1d35",
                Coin {
                    amount: 60_000_000_000,
                    height: 203_998,
                    coinbase: false,
                    script: hex("76a914816115944e077fe7c803cfa57f29b36bf87c1d3588ac"),
                },
            ),
            (
                "8ddf77bbd123008c988f1a4a4de2161e0f50aac7f17e7f9555caa4",
                Coin {
                    amount: 110_397,
                    height: 120_891,
                    coinbase: true,
                    script: hex("76a9148c988f1a4a4de2161e0f50aac7f17e7f9555caa488ac"),
                },
            ),
            // "Smallest possible example".
            (
                "000006",
                Coin {
                    amount: 0,
                    height: 0,
                    coinbase: false,
                    script: vec![],
                },
            ),
        ];
        for (value, expected) in good {
            let value = hex(value);
            assert_eq!(decode_coin(&value), Ok(expected.clone()));
            let mut again = Vec::new();
            encode_coin(&expected, &mut again);
            assert_eq!(again, value);
        }
        // "scriptPubKey that ends beyond the end of the stream".
        assert!(matches!(
            decode_coin(&hex("000007")),
            Err(FormatError::Truncated {
                offset: 3,
                needed: 1,
                ..
            })
        ));
        // "Very large scriptPubKey (3*10^9 bytes) past the end of the stream".
        let mut x = Vec::new();
        write_varint(&mut x, 3_000_000_000);
        assert_eq!(x, hex("8a95c0bb00"));
        assert!(matches!(
            decode_coin(&hex("00008a95c0bb00")),
            Err(FormatError::Truncated { offset: 7, .. })
        ));
    }

    #[test]
    fn round_trip_various_coins() {
        let coins = [
            Coin {
                amount: 0,
                height: 0,
                coinbase: false,
                script: vec![],
            },
            Coin {
                amount: MAX_MONEY,
                height: (1 << 31) - 1,
                coinbase: true,
                script: vec![0x51],
            },
            Coin {
                amount: 12_345,
                height: 170,
                coinbase: false,
                script: hex("51205761249a9abfa6a9675bc4117f7f351e343ef8c3d90fb0ebe48ccee2e10008c1"),
            },
        ];
        for coin in coins {
            let mut bytes = Vec::new();
            encode_coin(&coin, &mut bytes);
            assert_eq!(decode_coin(&bytes), Ok(coin.clone()));
            all_prefixes_fail(&bytes, decode_coin);
            bytes.push(0);
            assert!(matches!(
                decode_coin(&bytes),
                Err(FormatError::TrailingBytes { extra: 1, .. })
            ));
        }
    }

    #[test]
    fn amount_above_max_money_is_rejected() {
        let mut bytes = vec![0x00];
        write_varint(&mut bytes, compress_amount(MAX_MONEY + 1));
        bytes.extend_from_slice(&[0x06]); // empty raw script
        assert!(matches!(
            decode_coin(&bytes),
            Err(FormatError::Invalid {
                what: "compressed amount",
                offset: 1,
                ..
            })
        ));
    }

    #[test]
    fn coin_keys() {
        let mut txid = [0u8; 32];
        txid.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        for vout in [0u32, 1, 127, 128, 2499, u32::MAX] {
            let mut key = Vec::new();
            encode_coin_key(&txid, vout, &mut key);
            assert_eq!(key[0], b'C');
            assert_eq!(&key[1..33], &txid);
            assert_eq!(decode_coin_key(&key), Ok((txid, vout)));
            all_prefixes_fail(&key, decode_coin_key);
        }
        // vout 128 is VARINT 80 00.
        let mut key = Vec::new();
        encode_coin_key(&txid, 128, &mut key);
        assert_eq!(&key[33..], &[0x80, 0x00]);
        // Wrong prefix, trailing bytes, vout beyond u32.
        let mut wrong = key.clone();
        wrong[0] = b'c';
        assert!(matches!(
            decode_coin_key(&wrong),
            Err(FormatError::Invalid { offset: 0, .. })
        ));
        let mut trailing = key.clone();
        trailing.push(0);
        assert!(matches!(
            decode_coin_key(&trailing),
            Err(FormatError::TrailingBytes { offset: 35, .. })
        ));
        let mut big = vec![b'C'];
        big.extend_from_slice(&txid);
        write_varint(&mut big, 1 << 32);
        assert!(matches!(
            decode_coin_key(&big),
            Err(FormatError::Invalid { offset: 33.., .. })
        ));
    }

    #[test]
    fn deobfuscation_repeats_the_key() {
        let mut value = vec![0u8; 11];
        deobfuscate(&mut value, &[1, 2, 3, 4]);
        assert_eq!(value, [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3]);
        deobfuscate(&mut value, &[1, 2, 3, 4]);
        assert_eq!(value, [0; 11]);
        let mut value = vec![9u8, 8, 7];
        deobfuscate(&mut value, &[]);
        assert_eq!(value, [9, 8, 7]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(0x5eed);
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 40) as usize;
            let bytes = rng.bytes(len);
            if let Ok(coin) = decode_coin(&bytes) {
                assert!(coin.amount <= MAX_MONEY);
            }
            let _ = decode_coin_key(&bytes);
        }
    }
}
