//! Block index records (`CDiskBlockIndex` in `chain.h`): the `b` entries of
//! `blocks/index`, which tell where each block and its undo data live and how far
//! Bitcoin Core validated it.
//!
//! Key: `'b'` | block hash (32 bytes, internal byte order). Value:
//! `VARINT(client version)` (an `int`, `NONNEGATIVE_SIGNED`), `VARINT(nHeight)` (an
//! `int`), `VARINT(nStatus)`, `VARINT(nTx)`, then `VARINT(nFile)` (an `int`) if the
//! status has `BLOCK_HAVE_DATA` or `BLOCK_HAVE_UNDO`, `VARINT(nDataPos)` if
//! `BLOCK_HAVE_DATA`, `VARINT(nUndoPos)` if `BLOCK_HAVE_UNDO`, and the 80-byte header.

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

use super::{FormatError, Reader, Result};

/// The key prefix of block index records (`DB_BLOCK_INDEX`).
pub const DB_BLOCK_INDEX: u8 = b'b';

/// Validity level: unused.
pub const BLOCK_VALID_UNKNOWN: u32 = 0;
/// Validity level 1: reserved (was `BLOCK_VALID_HEADER` before Core 0.21).
pub const BLOCK_VALID_RESERVED: u32 = 1;
/// Validity level: all parent headers found, difficulty and timestamp ok.
pub const BLOCK_VALID_TREE: u32 = 2;
/// Validity level: transactions parsed and statelessly valid (merkle root, sizes).
pub const BLOCK_VALID_TRANSACTIONS: u32 = 3;
/// Validity level: inputs exist and are not overspent; the block was connected once.
pub const BLOCK_VALID_CHAIN: u32 = 4;
/// Validity level: scripts and signatures verified.
pub const BLOCK_VALID_SCRIPTS: u32 = 5;
/// The bits holding the validity level (a number, not a set of flags).
pub const BLOCK_VALID_MASK: u32 = 7;
/// The full block is in `blk{nFile}.dat` at `nDataPos`.
pub const BLOCK_HAVE_DATA: u32 = 8;
/// The block's undo data is in `rev{nFile}.dat` at `nUndoPos`.
pub const BLOCK_HAVE_UNDO: u32 = 16;
/// Both availability bits.
pub const BLOCK_HAVE_MASK: u32 = BLOCK_HAVE_DATA | BLOCK_HAVE_UNDO;
/// The block itself (or, since Core 31, also a descendant of such a block) failed
/// validation or was invalidated with `invalidateblock`.
pub const BLOCK_FAILED_VALID: u32 = 32;
/// The block descends from a failed block. Bitcoin Core 31 stopped setting it
/// (bitcoin/bitcoin#32950 marks descendants `BLOCK_FAILED_VALID` instead and turns
/// this flag into `BLOCK_FAILED_VALID` when loading an older index), but indexes
/// written by earlier versions still carry it.
pub const BLOCK_FAILED_CHILD: u32 = 64;
/// Either failure bit: what every version of Core tests to mean "invalid".
pub const BLOCK_FAILED_MASK: u32 = BLOCK_FAILED_VALID | BLOCK_FAILED_CHILD;
/// The block data was received with witness data (segwit-aware peer).
pub const BLOCK_OPT_WITNESS: u32 = 128;

/// Length of a serialized block header.
const HEADER_SIZE: usize = 80;

/// One decoded `b` record: the facts the sync engine needs to find a block's data
/// and undo records and to know whether Core considers it valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskBlockIndex {
    /// The block hash (from the key, checked against the header).
    pub hash: BlockHash,
    /// Height in its chain (genesis = 0).
    pub height: u32,
    /// `nStatus`: validity level and the `BLOCK_*` flags.
    pub status: u32,
    /// Number of transactions (0 if the block data was never received).
    pub n_tx: u32,
    /// Number of the `blk`/`rev` file pair, present when data or undo is.
    pub file: Option<u32>,
    /// Offset of the block bytes in `blk{file}.dat`, present with `BLOCK_HAVE_DATA`.
    pub data_pos: Option<u32>,
    /// Offset of the undo bytes in `rev{file}.dat`, present with `BLOCK_HAVE_UNDO`.
    pub undo_pos: Option<u32>,
    /// The block header.
    pub header: bitcoin::block::Header,
}

impl DiskBlockIndex {
    /// Whether the block's bytes are in a `blk` file.
    pub fn have_data(&self) -> bool {
        self.status & BLOCK_HAVE_DATA != 0
    }

    /// Whether the block's undo data is in a `rev` file (it was connected once).
    pub fn have_undo(&self) -> bool {
        self.status & BLOCK_HAVE_UNDO != 0
    }

    /// Whether Core considers the block invalid: either failure bit, which covers
    /// indexes written before and after Core 31 dropped `BLOCK_FAILED_CHILD`.
    pub fn failed(&self) -> bool {
        self.status & BLOCK_FAILED_MASK != 0
    }

    /// The validity level reached, one of `BLOCK_VALID_UNKNOWN..=BLOCK_VALID_SCRIPTS`
    /// (the value of the low three bits, so it can also be 6 or 7 on corrupt input).
    pub fn valid_level(&self) -> u32 {
        self.status & BLOCK_VALID_MASK
    }

    /// Core's `CBlockIndex::IsValid(level)`: not failed and validated at least that
    /// far.
    pub fn is_valid(&self, level: u32) -> bool {
        !self.failed() && self.valid_level() >= level
    }
}

/// Decodes a block index record from its LevelDB key and value.
///
/// Rejects a key that is not `'b'` + 32 bytes, truncation, trailing bytes, integers
/// beyond their C++ types (`int` fields above `i32::MAX`, `unsigned int` fields above
/// `u32::MAX`), and a header whose hash differs from the key's.
pub fn decode_block_index(key: &[u8], value: &[u8]) -> Result<DiskBlockIndex> {
    let hash = decode_key(key)?;
    let mut r = Reader::new(value);
    let int_max = i32::MAX as u64;
    let uint_max = u64::from(u32::MAX);
    // Every value below is bounded by u32::MAX (or i32::MAX), so the casts are exact.
    let _client_version = r.varint("block index client version", int_max)?;
    let height = r.varint("block index height", int_max)? as u32;
    let status = r.varint("block index status", uint_max)? as u32;
    let n_tx = r.varint("block index transaction count", uint_max)? as u32;
    let file = if status & BLOCK_HAVE_MASK != 0 {
        Some(r.varint("block index file number", int_max)? as u32)
    } else {
        None
    };
    let data_pos = if status & BLOCK_HAVE_DATA != 0 {
        Some(r.varint("block index data position", uint_max)? as u32)
    } else {
        None
    };
    let undo_pos = if status & BLOCK_HAVE_UNDO != 0 {
        Some(r.varint("block index undo position", uint_max)? as u32)
    } else {
        None
    };
    let header_at = r.offset();
    let header_bytes = r.take(HEADER_SIZE, "block index header")?;
    r.finish("block index record")?;
    let header: bitcoin::block::Header =
        bitcoin::consensus::deserialize(header_bytes).map_err(|e| FormatError::Invalid {
            what: "block index header",
            offset: header_at,
            detail: e.to_string(),
        })?;
    if header.block_hash() != hash {
        return Err(FormatError::Invalid {
            what: "block index header",
            offset: header_at,
            detail: format!(
                "header hashes to {} but the key is for {hash}",
                header.block_hash()
            ),
        });
    }
    Ok(DiskBlockIndex {
        hash,
        height,
        status,
        n_tx,
        file,
        data_pos,
        undo_pos,
        header,
    })
}

/// The block hash of a `'b'` key.
fn decode_key(key: &[u8]) -> Result<BlockHash> {
    match key {
        [DB_BLOCK_INDEX, hash @ ..] => {
            let hash: [u8; 32] = hash.try_into().map_err(|_| FormatError::Invalid {
                what: "block index key",
                offset: 1,
                detail: format!("expected a 32-byte hash, found {} bytes", hash.len()),
            })?;
            Ok(BlockHash::from_byte_array(hash))
        }
        [other, ..] => Err(FormatError::Invalid {
            what: "block index key",
            offset: 0,
            detail: format!("expected prefix 0x62 ('b'), found 0x{other:02x}"),
        }),
        [] => Err(FormatError::Truncated {
            what: "block index key",
            offset: 0,
            needed: 33,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::{all_prefixes_fail, XorShift};
    use crate::format::varint::write_varint;

    /// Test-only encoder: what Core's `CDiskBlockIndex` serialization writes.
    fn encode(index: &DiskBlockIndex, client_version: u64) -> (Vec<u8>, Vec<u8>) {
        let mut key = vec![b'b'];
        key.extend_from_slice(index.hash.as_byte_array());
        let mut value = Vec::new();
        write_varint(&mut value, client_version);
        write_varint(&mut value, u64::from(index.height));
        write_varint(&mut value, u64::from(index.status));
        write_varint(&mut value, u64::from(index.n_tx));
        if let Some(file) = index.file {
            write_varint(&mut value, u64::from(file));
        }
        if let Some(pos) = index.data_pos {
            write_varint(&mut value, u64::from(pos));
        }
        if let Some(pos) = index.undo_pos {
            write_varint(&mut value, u64::from(pos));
        }
        value.extend_from_slice(&bitcoin::consensus::serialize(&index.header));
        (key, value)
    }

    /// The regtest genesis header, as every regtest block index holds it.
    fn genesis() -> DiskBlockIndex {
        let header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        DiskBlockIndex {
            hash: header.block_hash(),
            height: 0,
            status: BLOCK_VALID_SCRIPTS | BLOCK_HAVE_DATA,
            n_tx: 1,
            file: Some(0),
            data_pos: Some(8),
            undo_pos: None,
            header,
        }
    }

    #[test]
    fn genesis_record_exact_bytes() {
        let index = genesis();
        // Core writes the fixed DUMMY_VERSION 259900 (chain.h) as client version.
        let (key, value) = encode(&index, 259_900);
        // 259900 = VARINT 8e ed 3c; height 0; status 13; nTx 1; file 0; data
        // position 8; then the header.
        assert_eq!(
            &value[..8],
            &[0x8e, 0xed, 0x3c, 0x00, 0x0d, 0x01, 0x00, 0x08]
        );
        assert_eq!(value.len(), 8 + 80);
        let decoded = decode_block_index(&key, &value).unwrap();
        assert_eq!(decoded, index);
        assert!(decoded.have_data());
        assert!(!decoded.have_undo());
        assert!(!decoded.failed());
        assert_eq!(decoded.valid_level(), BLOCK_VALID_SCRIPTS);
        assert!(decoded.is_valid(BLOCK_VALID_SCRIPTS));
        assert_eq!(
            decoded.hash.to_string(),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
    }

    #[test]
    fn status_flags_select_fields() {
        let base = genesis();
        let variants = [
            (BLOCK_VALID_TREE, None, None, None),
            (
                BLOCK_VALID_TRANSACTIONS | BLOCK_HAVE_DATA,
                Some(3),
                Some(1_234_567),
                None,
            ),
            (
                BLOCK_VALID_SCRIPTS | BLOCK_HAVE_UNDO,
                Some(2),
                None,
                Some(99),
            ),
            (
                BLOCK_VALID_SCRIPTS | BLOCK_HAVE_MASK | BLOCK_OPT_WITNESS,
                Some(i32::MAX as u32),
                Some(u32::MAX),
                Some(u32::MAX),
            ),
            (
                BLOCK_VALID_CHAIN | BLOCK_HAVE_MASK | BLOCK_FAILED_VALID,
                Some(0),
                Some(8),
                Some(8),
            ),
            (BLOCK_VALID_TREE | BLOCK_FAILED_CHILD, None, None, None),
        ];
        for (status, file, data_pos, undo_pos) in variants {
            let index = DiskBlockIndex {
                status,
                file,
                data_pos,
                undo_pos,
                ..base.clone()
            };
            let (key, value) = encode(&index, 0);
            let decoded = decode_block_index(&key, &value).unwrap();
            assert_eq!(decoded, index);
            assert_eq!(decoded.failed(), status & BLOCK_FAILED_MASK != 0);
            assert_eq!(
                decoded.is_valid(BLOCK_VALID_TREE),
                status & BLOCK_FAILED_MASK == 0
            );
            all_prefixes_fail(&value, |v| decode_block_index(&key, v));
        }
    }

    #[test]
    fn rejects_bad_keys_hash_mismatch_and_trailing_bytes() {
        let (key, value) = encode(&genesis(), 0);
        assert!(matches!(
            decode_block_index(&key[..32], &value),
            Err(FormatError::Invalid {
                what: "block index key",
                ..
            })
        ));
        assert!(decode_block_index(&[], &value).is_err());
        let mut wrong_prefix = key.clone();
        wrong_prefix[0] = b'B';
        assert!(decode_block_index(&wrong_prefix, &value).is_err());
        let mut other_hash = key.clone();
        other_hash[5] ^= 1;
        assert!(matches!(
            decode_block_index(&other_hash, &value),
            Err(FormatError::Invalid {
                what: "block index header",
                offset: 6,
                ..
            })
        ));
        let mut trailing = value.clone();
        trailing.push(0);
        assert!(matches!(
            decode_block_index(&key, &trailing),
            Err(FormatError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn rejects_integers_beyond_their_cpp_types() {
        let header = bitcoin::consensus::serialize(&genesis().header);
        let (key, _) = encode(&genesis(), 0);
        // Height 2^31 does not fit Core's `int`.
        let mut value = Vec::new();
        for field in [0u64, 1 << 31, 0, 1] {
            write_varint(&mut value, field);
        }
        value.extend_from_slice(&header);
        assert!(matches!(
            decode_block_index(&key, &value),
            Err(FormatError::Invalid {
                what: "block index height",
                offset: 1,
                ..
            })
        ));
        // nTx 2^32 does not fit `unsigned int`.
        let mut value = Vec::new();
        for field in [0u64, 0, 0, 1 << 32] {
            write_varint(&mut value, field);
        }
        value.extend_from_slice(&header);
        assert!(matches!(
            decode_block_index(&key, &value),
            Err(FormatError::Invalid {
                what: "block index transaction count",
                ..
            })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let (key, value) = encode(&genesis(), 0);
        let mut rng = XorShift(0xb10c);
        for _ in 0..20_000 {
            let mut v = value.clone();
            let flips = 1 + rng.next_u64() % 4;
            for _ in 0..flips {
                let i = (rng.next_u64() % v.len() as u64) as usize;
                v[i] = rng.next_u64() as u8;
            }
            let cut = (rng.next_u64() % (v.len() as u64 + 1)) as usize;
            let _ = decode_block_index(&key, &v[..cut]);
            let random_len = (rng.next_u64() % 100) as usize;
            let random = rng.bytes(random_len);
            let _ = decode_block_index(&key, &random);
            let _ = decode_block_index(&random, &value);
        }
    }
}
