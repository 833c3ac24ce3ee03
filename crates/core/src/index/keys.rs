//! Key layout of the index LevelDB.
//!
//! One key per UTXO, prefixed by the SHA-256 of its scriptPubKey, so every UTXO of a
//! script is one contiguous, sorted range: a query is a single range read and a cursor
//! is simply "the last key returned". The vout is big-endian so outputs of one
//! transaction sort numerically.

use sha2::{Digest, Sha256};

/// Prefix of UTXO entries: `'u' | scripthash | txid | vout (BE)`.
pub const UTXO_PREFIX: u8 = b'u';
/// Prefix of undo records: `'r' | height (BE)` (big-endian so pruning is a range).
pub const UNDO_PREFIX: u8 = b'r';
/// The single metadata key.
pub const META_KEY: &[u8] = b"mstate";

/// Length of a UTXO key.
pub const UTXO_KEY_LEN: usize = 1 + 32 + 32 + 4;

/// SHA-256 of a scriptPubKey, in the digest's natural byte order. Address-type
/// agnostic: the same 32 bytes identify P2PKH, P2TR or a non-standard script.
pub type ScriptHash = [u8; 32];

/// Hashes a scriptPubKey into the index's scripthash.
pub fn script_hash(script: &[u8]) -> ScriptHash {
    Sha256::digest(script).into()
}

/// A UTXO's position in the index: which script it pays and which output it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtxoKey {
    pub script_hash: ScriptHash,
    /// Transaction id in internal (little-endian, on-the-wire) byte order.
    pub txid: [u8; 32],
    pub vout: u32,
}

impl UtxoKey {
    /// The LevelDB key bytes.
    pub fn encode(&self) -> [u8; UTXO_KEY_LEN] {
        let mut k = [0u8; UTXO_KEY_LEN];
        k[0] = UTXO_PREFIX;
        k[1..33].copy_from_slice(&self.script_hash);
        k[33..65].copy_from_slice(&self.txid);
        k[65..69].copy_from_slice(&self.vout.to_be_bytes());
        k
    }

    /// Parses key bytes; `None` when they are not a UTXO key.
    pub fn decode(key: &[u8]) -> Option<UtxoKey> {
        if key.len() != UTXO_KEY_LEN || key[0] != UTXO_PREFIX {
            return None;
        }
        let mut script_hash = [0u8; 32];
        script_hash.copy_from_slice(&key[1..33]);
        let mut txid = [0u8; 32];
        txid.copy_from_slice(&key[33..65]);
        let mut vout = [0u8; 4];
        vout.copy_from_slice(&key[65..69]);
        Some(UtxoKey {
            script_hash,
            txid,
            vout: u32::from_be_bytes(vout),
        })
    }
}

/// First key of a scripthash's range.
pub fn script_range_start(script_hash: &ScriptHash) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = UTXO_PREFIX;
    k[1..].copy_from_slice(script_hash);
    k
}

/// Exclusive end of a scripthash's range (the next scripthash, or the next prefix).
pub fn script_range_end(script_hash: &ScriptHash) -> Vec<u8> {
    let mut k = script_range_start(script_hash).to_vec();
    // Increment as a big-endian number; the prefix byte absorbs a full carry.
    for i in (0..k.len()).rev() {
        if k[i] == 0xff {
            k[i] = 0;
        } else {
            k[i] += 1;
            break;
        }
    }
    k
}

/// Key of the undo record of the block at `height`.
pub fn undo_key(height: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = UNDO_PREFIX;
    k[1..].copy_from_slice(&height.to_be_bytes());
    k
}

/// Height of an undo key, `None` when the key is not one.
pub fn undo_key_height(key: &[u8]) -> Option<u32> {
    if key.len() != 5 || key[0] != UNDO_PREFIX {
        return None;
    }
    let mut h = [0u8; 4];
    h.copy_from_slice(&key[1..5]);
    Some(u32::from_be_bytes(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utxo_key_round_trip_and_order() {
        let a = UtxoKey {
            script_hash: [7; 32],
            txid: [1; 32],
            vout: 2,
        };
        let b = UtxoKey { vout: 256, ..a };
        assert_eq!(UtxoKey::decode(&a.encode()), Some(a));
        assert!(a.encode() < b.encode(), "vout must sort numerically");
        assert_eq!(UtxoKey::decode(&a.encode()[..68]), None);
        assert_eq!(UtxoKey::decode(&undo_key(5)), None);
    }

    #[test]
    fn script_hash_is_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(script_hash(b"")[..4], [0xe3, 0xb0, 0xc4, 0x42],);
    }

    #[test]
    fn script_range_covers_exactly_one_script() {
        let sh = [0xab; 32];
        let start = script_range_start(&sh);
        let end = script_range_end(&sh);
        let inside = UtxoKey {
            script_hash: sh,
            txid: [0xff; 32],
            vout: u32::MAX,
        }
        .encode();
        let next = UtxoKey {
            script_hash: [0xac; 32],
            txid: [0; 32],
            vout: 0,
        }
        .encode();
        assert!(start.as_slice() <= inside.as_slice() && inside.as_slice() < end.as_slice());
        assert!(next.as_slice() >= end.as_slice());
        let top = script_range_end(&[0xff; 32]);
        assert_eq!(top[0], UTXO_PREFIX + 1);
        assert!(top[1..].iter().all(|b| *b == 0));
    }

    #[test]
    fn undo_keys_sort_by_height() {
        assert!(undo_key(255) < undo_key(256));
        assert_eq!(undo_key_height(&undo_key(123_456)), Some(123_456));
        assert_eq!(undo_key_height(b"x"), None);
    }
}
