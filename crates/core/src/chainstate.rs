//! Bitcoin Core's chainstate (`<datadir>/chainstate`), read strictly read-only: the
//! obfuscation key, the `B` best block, the `H` partial-flush marker, and the `C` coin
//! records split into key ranges for parallel readers.

use std::fmt;
use std::path::{Path, PathBuf};

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

use crate::format::coin::{decode_coin, decode_coin_key, deobfuscate, Coin};
use crate::format::varint::read_compact_size;
use crate::format::FormatError;
use crate::leveldb::{LdbError, ReadOnlyDb};

const OBFUSCATE_KEY: &[u8] = b"\x0e\x00obfuscate_key";
const BEST_BLOCK_KEY: &[u8] = b"B";
const HEAD_BLOCKS_KEY: &[u8] = b"H";
const COIN_PREFIX: u8 = b'C';
/// Key prefix of the pre-0.15 per-transaction format.
const LEGACY_COINS_PREFIX: u8 = b'c';

/// Why a chainstate cannot be used.
#[derive(Debug)]
pub enum ChainstateError {
    /// The LevelDB files could not be read.
    Db(LdbError),
    /// A record is malformed.
    Format { key: Vec<u8>, error: FormatError },
    /// No `B` record: not a chainstate, or one that was never flushed.
    NoBestBlock(PathBuf),
    /// `H` is present: bitcoind was interrupted mid-flush and the records mix two
    /// states. Bitcoin Core itself replays blocks to repair it; we must not scan it.
    PartialFlush { dir: PathBuf, heads: Vec<BlockHash> },
    /// The chainstate predates Bitcoin Core 0.15's per-output format.
    LegacyFormat(PathBuf),
}

impl fmt::Display for ChainstateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainstateError::Db(e) => write!(f, "reading chainstate: {e}"),
            ChainstateError::Format { key, error } => {
                write!(f, "malformed chainstate record {}: {error}", hex(key))
            }
            ChainstateError::NoBestBlock(d) => write!(
                f,
                "{} has no best-block record: not a Bitcoin Core chainstate, or never flushed",
                d.display()
            ),
            ChainstateError::PartialFlush { dir, heads } => write!(
                f,
                "{} was left mid-flush (head blocks {:?}); start bitcoind once so it repairs it, then retry",
                dir.display(),
                heads
            ),
            ChainstateError::LegacyFormat(d) => write!(
                f,
                "{} uses the pre-0.15 chainstate format; upgrade it by running a recent bitcoind",
                d.display()
            ),
        }
    }
}

impl std::error::Error for ChainstateError {}

impl From<LdbError> for ChainstateError {
    fn from(e: LdbError) -> Self {
        ChainstateError::Db(e)
    }
}

/// An open chainstate, consistent with one block (`best_block`).
pub struct Chainstate {
    dir: PathBuf,
    db: ReadOnlyDb,
    obfuscation: Vec<u8>,
    best_block: BlockHash,
}

impl Chainstate {
    /// Opens `dir` read-only and checks it can be scanned: a best block, no partial
    /// flush, the current format.
    pub fn open(dir: &Path) -> Result<Chainstate, ChainstateError> {
        let db = ReadOnlyDb::open(dir)?;
        let obfuscation = match db.get(OBFUSCATE_KEY)? {
            Some(v) => {
                let mut buf = v.as_slice();
                let len = read_compact_size(&mut buf).map_err(|error| ChainstateError::Format {
                    key: OBFUSCATE_KEY.to_vec(),
                    error,
                })?;
                if len as usize != buf.len() {
                    return Err(ChainstateError::Format {
                        key: OBFUSCATE_KEY.to_vec(),
                        error: FormatError::Invalid {
                            offset: 0,
                            what: "obfuscation key",
                            detail: format!("declares {len} bytes, holds {}", buf.len()),
                        },
                    });
                }
                buf.to_vec()
            }
            // Chainstates created before 0.14 have no key: values are stored plain.
            None => Vec::new(),
        };
        let read = |key: &[u8]| -> Result<Option<Vec<u8>>, ChainstateError> {
            Ok(db.get(key)?.map(|mut v| {
                deobfuscate(&mut v, &obfuscation);
                v
            }))
        };
        if let Some(h) = read(HEAD_BLOCKS_KEY)? {
            let heads = parse_hash_vector(&h).map_err(|error| ChainstateError::Format {
                key: HEAD_BLOCKS_KEY.to_vec(),
                error,
            })?;
            return Err(ChainstateError::PartialFlush {
                dir: dir.to_path_buf(),
                heads,
            });
        }
        let best =
            read(BEST_BLOCK_KEY)?.ok_or_else(|| ChainstateError::NoBestBlock(dir.to_path_buf()))?;
        let best_block = BlockHash::from_slice(&best).map_err(|_| ChainstateError::Format {
            key: BEST_BLOCK_KEY.to_vec(),
            error: FormatError::Invalid {
                offset: 0,
                what: "best block",
                detail: format!("{} bytes, expected 32", best.len()),
            },
        })?;
        let mut legacy = db.range(&[LEGACY_COINS_PREFIX], Some(&[LEGACY_COINS_PREFIX + 1]))?;
        if legacy.advance()? {
            return Err(ChainstateError::LegacyFormat(dir.to_path_buf()));
        }
        drop(legacy);
        Ok(Chainstate {
            dir: dir.to_path_buf(),
            db,
            obfuscation,
            best_block,
        })
    }

    /// The block whose UTXO set this chainstate holds (Bitcoin Core's `B`).
    pub fn best_block(&self) -> BlockHash {
        self.best_block
    }

    /// Directory it was opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of table and log files: the denominator of scan progress.
    pub fn approximate_size(&self) -> u64 {
        self.db.approximate_size()
    }

    /// Splits the coin keyspace into `n` ranges of equal txid-prefix width (txids are
    /// uniformly distributed, so the ranges hold about equal numbers of coins).
    pub fn key_ranges(n: usize) -> Vec<CoinRange> {
        let n = n.clamp(1, 1 << 16);
        (0..n)
            .map(|i| {
                let lo = (i << 16) / n;
                let hi = ((i + 1) << 16) / n;
                let start = vec![COIN_PREFIX, (lo >> 8) as u8, lo as u8];
                let end = if hi >= 1 << 16 {
                    vec![COIN_PREFIX + 1]
                } else {
                    vec![COIN_PREFIX, (hi >> 8) as u8, hi as u8]
                };
                CoinRange { start, end }
            })
            .collect()
    }

    /// Visits every coin in `range` in key order until `f` returns false. Values
    /// are de-obfuscated and decoded (scripts decompressed).
    pub fn scan(
        &self,
        range: &CoinRange,
        mut f: impl FnMut(&[u8; 32], u32, Coin, usize) -> Result<bool, ChainstateError>,
    ) -> Result<(), ChainstateError> {
        let mut it = self.db.range(&range.start, Some(&range.end))?;
        let mut value = Vec::new();
        while it.advance()? {
            let key = it.key();
            let (txid, vout) = decode_coin_key(key).map_err(|error| ChainstateError::Format {
                key: key.to_vec(),
                error,
            })?;
            value.clear();
            value.extend_from_slice(it.value());
            deobfuscate(&mut value, &self.obfuscation);
            let coin = decode_coin(&value).map_err(|error| ChainstateError::Format {
                key: key.to_vec(),
                error,
            })?;
            if !f(&txid, vout, coin, key.len() + value.len())? {
                break;
            }
        }
        Ok(())
    }
}

/// A half-open range of chainstate coin keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinRange {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

fn parse_hash_vector(bytes: &[u8]) -> Result<Vec<BlockHash>, FormatError> {
    let mut buf = bytes;
    let n = read_compact_size(&mut buf)? as usize;
    if n.saturating_mul(32) != buf.len() {
        return Err(FormatError::Invalid {
            offset: 0,
            what: "head blocks",
            detail: format!("{n} hashes in {} bytes", buf.len()),
        });
    }
    Ok(buf
        .chunks_exact(32)
        .filter_map(|c| BlockHash::from_slice(c).ok())
        .collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_tile_the_coin_keyspace() {
        for n in [1usize, 2, 3, 7, 256, 1000] {
            let r = Chainstate::key_ranges(n);
            assert_eq!(r.len(), n);
            assert_eq!(r[0].start, vec![b'C', 0, 0]);
            assert_eq!(r[n - 1].end, vec![b'D']);
            for w in r.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert!(w[0].start < w[0].end);
            }
        }
    }
}
