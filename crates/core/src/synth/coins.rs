//! The coin generator: every coin of the synthetic set as a pure function of the
//! spec and its position, produced in chainstate key order.

use super::rng::{Permutation, Rng};
use super::scripts::{self, Kind, MIX_PPM};
use super::SynthSpec;
use crate::format::coin::Coin;

// Domains of the independent random streams.
const DOMAIN_TX: u64 = 0x7478;
const DOMAIN_UNIQUE_SCRIPT: u64 = 0x7573_0000;
const DOMAIN_REUSED_SCRIPT: u64 = 0x7273_0000;
const DOMAIN_WHALE: u64 = 0x7768;
const DOMAIN_WHALE_PERMUTATION: u64 = 0x7770;

/// Distribution of the number of unspent outputs per transaction (1, 2, 3, 4), ppm:
/// mean 1.59, close to mainnet's ~1.6 UTXOs per txid.
const COINS_PER_TX_PPM: [u64; 4] = [550_000, 350_000, 60_000, 40_000];

/// Share of transactions that are coinbases (all their coins get the flag).
const COINBASE_PPM: u64 = 10_000;

/// Share of non-whale coins paying to a reused script rather than a fresh one.
const REUSE_PPM: u64 = 100_000;

/// Gaps between consecutive unspent vouts of a transaction: mostly adjacent, some
/// spent outputs in between, rarely large vout numbers (two-byte VARINTs).
const VOUT_GAP_PPM: [u64; 4] = [700_000, 200_000, 90_000, 10_000];

/// Amount bands: `[lo, hi)` satoshis and the share of coins in each, ppm. A dust
/// band, the bulk between 10^4 and 10^8, and a thin tail up to 1,000 BTC; within a
/// band the amount is log-uniform. Mean ≈ 0.26 BTC per coin (mainnet: ≈ 0.11).
const AMOUNT_BANDS: [(u64, u64, u64); 5] = [
    (546, 10_000, 200_000),
    (10_000, 1_000_000, 600_000),
    (1_000_000, 100_000_000, 170_000),
    (100_000_000, 1_000_000_000, 29_500),
    (1_000_000_000, 100_000_000_000, 500),
];

/// Benford's law for the leading digit 1..=9 (log10((d+1)/d), ×10^5): drawing the
/// leading digit with these weights and the rest uniformly is log-uniform within a
/// decade to within a few percent, without floating point.
const LEADING_DIGIT: [u64; 9] = [30103, 17609, 12494, 9691, 7918, 6695, 5799, 5115, 4576];

/// One generated coin and the kind of its script (for the summary).
#[derive(Clone, Debug)]
pub(crate) struct GenCoin {
    pub(crate) txid: [u8; 32],
    pub(crate) vout: u32,
    pub(crate) coin: Coin,
    pub(crate) kind: Kind,
}

/// Everything derived from a [`SynthSpec`] once, so that each coin costs only a few
/// hash evaluations.
#[derive(Clone, Debug)]
pub(crate) struct Generator {
    seed: u64,
    n: u64,
    best_height: u32,
    /// 2^64 / n: the txid prefix space per coin.
    step: u64,
    permutation: Permutation,
    /// Cumulative whale counts: coin `c` is whale `j`'s iff
    /// `bounds[j-1] <= permute(c) < bounds[j]`.
    whale_bounds: Vec<u64>,
    whale_scripts: Vec<Vec<u8>>,
    /// Kind weights for non-whale coins, corrected so that the whole set (whales
    /// being P2WPKH) matches [`MIX_PPM`].
    kind_weights: [u64; 9],
    /// Number of reusable scripts per kind.
    reuse_pool: u64,
}

impl Generator {
    /// The generator of `spec`. Whale counts are truncated so their total does not
    /// exceed the number of coins, and heights to Core's 31 bits.
    pub(crate) fn new(spec: &SynthSpec) -> Generator {
        let n = spec.utxos;
        let mut left = n;
        let mut whale_bounds = Vec::with_capacity(spec.whales.len());
        let mut whale_scripts = Vec::with_capacity(spec.whales.len());
        let mut total = 0u64;
        for (j, &count) in spec.whales.iter().enumerate() {
            let count = count.min(left);
            left -= count;
            total += count;
            whale_bounds.push(total);
            let mut rng = Rng::for_item(spec.seed, DOMAIN_WHALE, j as u64);
            whale_scripts.push(scripts::build(Kind::P2wpkh, &mut rng));
        }
        let whales = total;
        let mut kind_weights = [0u64; 9];
        if n > whales {
            for (i, w) in kind_weights.iter_mut().enumerate() {
                // Target count of the kind among all coins, in ppm-coins, minus the
                // whales for P2WPKH, then as a share of the non-whale coins (×10^3
                // keeps precision; the sum is ≈ 10^9).
                let mut target = u128::from(MIX_PPM[i]) * u128::from(n);
                if Kind::ALL[i] == Kind::P2wpkh {
                    target = target.saturating_sub(u128::from(whales) * 1_000_000);
                }
                let share = target * 1_000 / u128::from(n - whales);
                *w = u64::try_from(share).unwrap_or(u64::MAX);
            }
        }
        Generator {
            seed: spec.seed,
            n,
            best_height: spec.best_height.min(i32::MAX as u32),
            step: u64::MAX / n.max(1),
            permutation: Permutation::new(n, spec.seed ^ DOMAIN_WHALE_PERMUTATION),
            whale_bounds,
            whale_scripts,
            kind_weights,
            reuse_pool: (n / 50).max(16),
        }
    }

    /// Number of coins.
    pub(crate) fn len(&self) -> u64 {
        self.n
    }

    /// The whale scripts and their counts, in spec order.
    pub(crate) fn whales(&self) -> Vec<(Vec<u8>, u64)> {
        let mut prev = 0;
        self.whale_scripts
            .iter()
            .zip(&self.whale_bounds)
            .map(|(script, &bound)| {
                let count = bound - prev;
                prev = bound;
                (script.clone(), count)
            })
            .collect()
    }

    /// Appends the coins of the transaction whose first coin is number `first`
    /// (below `len()`), in key order, and returns how many there are.
    pub(crate) fn transaction(&self, first: u64, out: &mut Vec<GenCoin>) -> u64 {
        let mut rng = Rng::for_item(self.seed, DOMAIN_TX, first);
        let k = (1 + rng.weighted(&COINS_PER_TX_PPM) as u64).min(self.n - first);
        // Txid prefixes: this transaction owns [first*step, (first+k)*step), so
        // prefixes increase strictly with `first` and are spread uniformly.
        let prefix = first * self.step + rng.below(self.step * k);
        let mut txid = [0u8; 32];
        txid[..8].copy_from_slice(&prefix.to_be_bytes());
        rng.fill(&mut txid[8..]);
        let coinbase = rng.chance(COINBASE_PPM);
        let height = self.height(&mut rng);
        let mut vout = vout_gap(&mut rng);
        for c in first..first + k {
            let (kind, script) = self.script(c, &mut rng);
            out.push(GenCoin {
                txid,
                vout,
                coin: Coin {
                    amount: amount(&mut rng),
                    height,
                    coinbase,
                    script,
                },
                kind,
            });
            vout += 1 + vout_gap(&mut rng);
        }
        k
    }

    /// Heights in 1..=best (no coin of the genesis block is spendable), skewed to
    /// recent blocks as mainnet's are: 70% with density rising linearly with height
    /// (the larger of two uniform draws), 30% uniform.
    fn height(&self, rng: &mut Rng) -> u32 {
        if self.best_height == 0 {
            return 0;
        }
        let best = u64::from(self.best_height);
        let h = if rng.chance(700_000) {
            rng.range(1, best).max(rng.range(1, best))
        } else {
            rng.range(1, best)
        };
        h as u32
    }

    /// The script of coin `c`: a whale's, a reused one (Zipf-distributed over a
    /// per-kind pool) or a fresh one.
    fn script(&self, c: u64, rng: &mut Rng) -> (Kind, Vec<u8>) {
        if !self.whale_bounds.is_empty() {
            let p = self.permutation.permute(c);
            if let Some(j) = self.whale_bounds.iter().position(|&b| p < b) {
                return (Kind::P2wpkh, self.whale_scripts[j].clone());
            }
        }
        let kind = Kind::ALL[rng.weighted(&self.kind_weights)];
        let mut script_rng = if rng.chance(REUSE_PPM) {
            let id = rng.zipf(self.reuse_pool);
            Rng::for_item(self.seed, DOMAIN_REUSED_SCRIPT + kind as u64, id)
        } else {
            Rng::for_item(self.seed, DOMAIN_UNIQUE_SCRIPT + kind as u64, c)
        };
        (kind, scripts::build(kind, &mut script_rng))
    }
}

/// The gap before the next unspent vout.
fn vout_gap(rng: &mut Rng) -> u32 {
    match rng.weighted(&VOUT_GAP_PPM) {
        0 => 0,
        1 => 1,
        2 => rng.range(2, 50) as u32,
        _ => rng.range(51, 300) as u32,
    }
}

/// A coin amount from [`AMOUNT_BANDS`]; amounts from 10^4 up are often round (45%
/// rounded down to one or two significant digits), as payments are.
pub(crate) fn amount(rng: &mut Rng) -> u64 {
    let weights = AMOUNT_BANDS.map(|(_, _, ppm)| ppm);
    let (lo, hi, _) = AMOUNT_BANDS[rng.weighted(&weights)];
    let value = log_uniform(rng, lo, hi);
    if value < 10_000 {
        return value;
    }
    let digits = value.ilog10() + 1;
    let keep = match rng.below(100) {
        0..=29 => 2,
        30..=44 => 1,
        _ => return value,
    };
    let unit = 10u64.pow(digits - keep);
    value / unit * unit
}

/// A value in `[lo, hi)` (1 <= lo < hi), approximately log-uniform: a uniform decade,
/// a Benford leading digit, uniform lower digits; out-of-range draws are retried.
fn log_uniform(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    let first_decade = lo.ilog10();
    let last_decade = (hi - 1).ilog10();
    loop {
        let decade = rng.range(u64::from(first_decade), u64::from(last_decade)) as u32;
        let unit = 10u64.pow(decade);
        let digit = 1 + rng.weighted(&LEADING_DIGIT) as u64;
        let value = digit * unit + rng.below(unit);
        if (lo..hi).contains(&value) {
            return value;
        }
    }
}

/// The coins of a spec in key order, generated on the fly (memory is one
/// transaction's worth).
#[derive(Clone, Debug)]
pub(crate) struct Generated {
    generator: Generator,
    /// Number of the first coin of the next transaction.
    next: u64,
    /// Coins of the current transaction, in reverse order (popped from the end).
    pending: Vec<GenCoin>,
}

impl Generated {
    pub(crate) fn new(generator: Generator) -> Generated {
        Generated {
            generator,
            next: 0,
            pending: Vec::with_capacity(4),
        }
    }

    /// The generator behind the sequence.
    pub(crate) fn generator(&self) -> &Generator {
        &self.generator
    }

    fn remaining(&self) -> u64 {
        self.generator.len() - self.next + self.pending.len() as u64
    }
}

impl Iterator for Generated {
    type Item = GenCoin;

    fn next(&mut self) -> Option<GenCoin> {
        if self.pending.is_empty() {
            if self.next >= self.generator.len() {
                return None;
            }
            self.next += self.generator.transaction(self.next, &mut self.pending);
            self.pending.reverse();
        }
        self.pending.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.remaining()).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Generated {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_stay_in_their_bands() {
        let mut rng = Rng::for_item(3, 3, 3);
        let mut sum = 0u128;
        let mut dust = 0;
        for _ in 0..200_000 {
            let a = amount(&mut rng);
            assert!((546..100_000_000_000).contains(&a), "{a}");
            if a < 10_000 {
                dust += 1;
            }
            sum += u128::from(a);
        }
        let mean = sum / 200_000;
        assert!((5_000_000..60_000_000).contains(&mean), "mean {mean}");
        assert!((38_000..42_000).contains(&dust), "dust {dust}");
    }

    #[test]
    fn vouts_and_txids_increase() {
        let spec = SynthSpec::new(5_000, 11);
        let mut last: Option<([u8; 32], u32)> = None;
        let mut count = 0u64;
        for c in Generated::new(Generator::new(&spec)) {
            if let Some((txid, vout)) = last {
                assert!(txid < c.txid || (txid == c.txid && vout < c.vout));
            }
            assert!(
                c.vout < 16_512,
                "vout {} would not sort as a VARINT",
                c.vout
            );
            last = Some((c.txid, c.vout));
            count += 1;
        }
        assert_eq!(count, 5_000);
    }

    #[test]
    fn size_hint_is_exact() {
        let spec = SynthSpec::new(1_000, 5);
        let mut it = Generated::new(Generator::new(&spec));
        assert_eq!(it.len(), 1_000);
        for _ in 0..7 {
            it.next();
        }
        assert_eq!(it.len(), 993);
        assert_eq!(it.count(), 993);
    }
}
