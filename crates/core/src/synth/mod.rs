//! Synthetic Bitcoin Core chainstates and blocks, for benchmarks.
//!
//! The real mainnet UTXO set (~185M coins) is too big to copy around and cannot be
//! shrunk, so benchmarks of the chainstate reader, the index build and block
//! connect/disconnect run on generated data instead: a LevelDB directory in Bitcoin
//! Core's exact chainstate format (obfuscation key, `B` best block, `C` coins) with a
//! mainnet-like mix of scripts, amounts, heights and address reuse, plus blocks that
//! spend some of those coins.
//!
//! Everything is a pure function of the [`SynthSpec`]: [`coins`] regenerates the
//! coins written by [`write_chainstate`] in key order without reading the directory,
//! and memory stays bounded whatever the size (txids are generated already sorted).

mod blocks;
mod chainstate;
mod coins;
mod rng;
mod scripts;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use blocks::make_block;
pub use chainstate::{write_chainstate, write_chainstate_with_progress};

use crate::format::coin::Coin;

/// What to generate. Build it with [`SynthSpec::new`] and adjust fields as needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthSpec {
    /// Number of coins (UTXOs).
    pub utxos: u64,
    /// Seed of every random choice; equal specs generate identical data.
    pub seed: u64,
    /// Height of the best block; coin heights are spread over 1..=best_height.
    /// Core stores heights in 31 bits, so larger values are truncated to that.
    pub best_height: u32,
    /// Coin counts of the "whale" scripts: P2WPKH scripts that receive exactly these
    /// many coins, like mainnet's few addresses holding hundreds of thousands of
    /// UTXOs, which stress per-script code paths. Their total must not exceed
    /// `utxos`.
    pub whales: Vec<u64>,
}

/// The mainnet-like default whale counts, for sets of 5M coins and more.
const DEFAULT_WHALES: [u64; 2] = [150_000, 100_000];

impl SynthSpec {
    /// A spec of `utxos` coins at mainnet height 850,000 with two whales.
    ///
    /// The whales get 150,000 and 100,000 coins unless that would exceed 5% of the
    /// set; then both are scaled down (keeping their 3:2 ratio) to 5% in total, so a
    /// 1M set has whales of 30,000 and 20,000 and a 200K set 6,000 and 4,000. Whales
    /// that round to zero coins (sets below 40 coins) are dropped.
    pub fn new(utxos: u64, seed: u64) -> SynthSpec {
        let default_total: u64 = DEFAULT_WHALES.iter().sum();
        let cap = utxos / 20;
        let whales = if default_total <= cap {
            DEFAULT_WHALES.to_vec()
        } else {
            let first = cap * 3 / 5;
            vec![first, cap * 2 / 5]
        };
        SynthSpec {
            utxos,
            seed,
            best_height: 850_000,
            whales: whales.into_iter().filter(|&w| w > 0).collect(),
        }
    }

    /// Checks what [`write_chainstate`] requires of a spec.
    fn validate(&self) -> Result<(), SynthError> {
        let whales = self
            .whales
            .iter()
            .try_fold(0u64, |acc, &w| acc.checked_add(w));
        match whales {
            Some(total) if total <= self.utxos => {}
            _ => {
                return Err(SynthError::InvalidSpec(format!(
                    "whale counts {:?} exceed the {} coins",
                    self.whales, self.utxos
                )))
            }
        }
        if self.best_height > i32::MAX as u32 {
            return Err(SynthError::InvalidSpec(format!(
                "best height {} does not fit Core's 31-bit heights",
                self.best_height
            )));
        }
        Ok(())
    }
}

/// What [`write_chainstate`] wrote, for benchmark reports and for tests to check a
/// reader's output against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthSummary {
    /// The hash stored under `B` (Core's best block).
    pub best_block: bitcoin::BlockHash,
    /// The spec's best height (not stored in the chainstate; Core keeps it in the
    /// block index).
    pub best_height: u32,
    /// Number of coins written.
    pub utxos: u64,
    /// Sum of their amounts, in satoshis.
    pub total_amount: u64,
    /// Number of coins per script kind (`p2wpkh`, `p2pkh`, `p2tr`, `p2sh`, `p2wsh`,
    /// `p2pk_compressed`, `p2pk_uncompressed`, `multisig_1of2`, `nonstandard`).
    pub kinds: BTreeMap<String, u64>,
    /// The whale scripts and their exact coin counts, in spec order.
    pub whales: Vec<(Vec<u8>, u64)>,
    /// Total size of the files in the directory.
    pub bytes_on_disk: u64,
}

/// Why a chainstate could not be written.
#[derive(Debug)]
pub enum SynthError {
    /// The spec cannot be generated (the message says why).
    InvalidSpec(String),
    /// The target directory exists and is not empty (or is not a directory).
    NotEmpty(PathBuf),
    /// A file system operation failed.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The LevelDB writer failed.
    LevelDb {
        /// What was being done.
        what: &'static str,
        /// The writer's message.
        detail: String,
    },
}

impl fmt::Display for SynthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SynthError::InvalidSpec(why) => write!(f, "invalid synthetic spec: {why}"),
            SynthError::NotEmpty(path) => {
                write!(f, "{} exists and is not an empty directory", path.display())
            }
            SynthError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SynthError::LevelDb { what, detail } => write!(f, "LevelDB {what}: {detail}"),
        }
    }
}

impl std::error::Error for SynthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SynthError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The coins of `spec`, exactly as [`write_chainstate`] writes them, in key order:
/// (txid in internal byte order, vout, coin). Regenerated deterministically, so tests
/// can compare a reader's output to it and benchmarks can pick coins to spend.
/// Memory use is one transaction's coins. Whale counts above `utxos` in total, which
/// [`write_chainstate`] rejects, are truncated here.
pub fn coins(spec: &SynthSpec) -> Coins {
    Coins(coins::Generated::new(coins::Generator::new(spec)))
}

/// Iterator over the coins of a spec (see [`coins`]); it knows its exact length.
#[derive(Clone, Debug)]
pub struct Coins(coins::Generated);

impl Iterator for Coins {
    type Item = ([u8; 32], u32, Coin);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|c| (c.txid, c.vout, c.coin))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Coins {}

/// The best block hash stored for `spec`: derived from the spec, with the trailing
/// (internal order) bytes zeroed so it looks like a mined hash when displayed.
fn best_block_hash(spec: &SynthSpec) -> bitcoin::BlockHash {
    use bitcoin::hashes::{sha256d, Hash};
    let mut data = Vec::with_capacity(48);
    data.extend_from_slice(b"opnet-synth best block");
    data.extend_from_slice(&spec.seed.to_le_bytes());
    data.extend_from_slice(&spec.utxos.to_le_bytes());
    data.extend_from_slice(&spec.best_height.to_le_bytes());
    let mut bytes = sha256d::Hash::hash(&data).to_byte_array();
    bytes[23..].fill(0);
    bitcoin::BlockHash::from_byte_array(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whale_defaults() {
        assert_eq!(SynthSpec::new(16_000_000, 0).whales, [150_000, 100_000]);
        assert_eq!(SynthSpec::new(5_000_000, 0).whales, [150_000, 100_000]);
        assert_eq!(SynthSpec::new(1_000_000, 0).whales, [30_000, 20_000]);
        assert_eq!(SynthSpec::new(200_000, 0).whales, [6_000, 4_000]);
        assert_eq!(SynthSpec::new(39, 0).whales, Vec::<u64>::new());
        assert_eq!(SynthSpec::new(1_000_000, 0).best_height, 850_000);
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let mut spec = SynthSpec::new(10, 1);
        spec.whales = vec![11];
        assert!(matches!(spec.validate(), Err(SynthError::InvalidSpec(_))));
        spec.whales = vec![u64::MAX, 2];
        assert!(spec.validate().is_err());
        spec.whales = vec![10];
        assert!(spec.validate().is_ok());
        spec.best_height = 1 << 31;
        assert!(spec.validate().is_err());
    }

    #[test]
    fn tiny_and_empty_sets() {
        assert_eq!(coins(&SynthSpec::new(0, 1)).count(), 0);
        for n in [1u64, 2, 3, 41] {
            let all: Vec<_> = coins(&SynthSpec::new(n, 1)).collect();
            assert_eq!(all.len() as u64, n);
        }
    }

    #[test]
    fn best_block_looks_mined() {
        let hash = best_block_hash(&SynthSpec::new(1, 2));
        assert!(hash.to_string().starts_with("000000000000000000"), "{hash}");
    }
}
