//! Deterministic pseudo-randomness for the generator, with no dependency and no
//! floating point: every draw is integer arithmetic, so a spec generates the same
//! bytes on every platform and every run.

/// SplitMix64's output function: a fast, well-mixing bijection on `u64`. Used both
/// as the step of [`Rng`] and to derive independent streams from (seed, domain,
/// index) triples, which is what makes every coin a pure function of its index.
pub(crate) const fn mix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A SplitMix64 stream. Small and cheap to create, so the generator makes a fresh
/// one per transaction, per script and per block instead of threading one through
/// the whole run (which would make random access impossible).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The stream for item `index` of `domain` under `seed`. Distinct domains keep
    /// e.g. transaction draws and script bytes independent even for equal indices.
    pub(crate) fn for_item(seed: u64, domain: u64, index: u64) -> Rng {
        Rng(mix(seed ^ mix(domain ^ mix(index))))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = self.0;
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (`0` when `n` is 0), by Lemire's multiply-high; the
    /// bias is below 2^-40 for every `n` the generator uses.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform value in `lo..=hi` (`lo` when `hi < lo`).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `ppm` parts per million.
    pub(crate) fn chance(&mut self, ppm: u64) -> bool {
        self.below(1_000_000) < ppm
    }

    /// Index into `weights` drawn proportionally to them (the last index if all are
    /// zero).
    pub(crate) fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// Fills `out` with random bytes.
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// An index in `0..n` with probability roughly proportional to 1/(index+1), the
    /// Zipf-like law of address reuse: index 0 is drawn most, then a long tail. The
    /// bit length is uniform, the value uniform within it.
    pub(crate) fn zipf(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        let bits = 64 - n.leading_zeros(); // bit length of n, at least 2 here
        loop {
            // x + 1 has bit length b, uniform in 1..=bits; x + 1 uniform within it.
            let b = 1 + self.below(u64::from(bits)) as u32;
            let lo = 1u64 << (b - 1);
            let x = lo + self.below(lo) - 1;
            if x < n {
                return x;
            }
        }
    }
}

/// A keyed pseudo-random bijection of `0..n` (a 4-round Feistel network on the
/// smallest even bit width covering `n`, with cycle walking). It lets the generator
/// give *exactly* `k` coins a property (being a whale's) while deciding it for each
/// coin on its own: coin `c` has it iff `permute(c) < k`.
#[derive(Clone, Debug)]
pub(crate) struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    /// The permutation of `0..n` selected by `seed`.
    pub(crate) fn new(n: u64, seed: u64) -> Permutation {
        let bits = (64 - n.leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let mut rng = Rng::for_item(seed, 0x7065_726d, n);
        let keys = [
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        ];
        Permutation { n, half_bits, keys }
    }

    /// The image of `x`, which must be below `n`; it is again below `n`.
    pub(crate) fn permute(&self, x: u64) -> u64 {
        let mut x = x;
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let mut left = (x >> self.half_bits) & mask;
        let mut right = x & mask;
        for key in self.keys {
            let f = mix(right ^ key) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 3, 5, 17, 1000, 4097] {
            let p = Permutation::new(n, 7);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.permute(x);
                assert!(y < n);
                assert!(!seen[y as usize], "n={n}: {y} hit twice");
                seen[y as usize] = true;
            }
        }
    }

    #[test]
    fn draws_stay_in_range() {
        let mut rng = Rng::for_item(1, 2, 3);
        for n in [1u64, 2, 3, 10, 1 << 40] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n);
                assert!(rng.zipf(n) < n);
            }
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.range(5, 5), 5);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[rng.weighted(&[1, 0, 2])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn zipf_favours_small_indices() {
        let mut rng = Rng::for_item(9, 9, 9);
        let mut zero = 0;
        let mut big = 0;
        for _ in 0..100_000 {
            match rng.zipf(1 << 20) {
                0 => zero += 1,
                x if x >= 1 << 19 => big += 1,
                _ => {}
            }
        }
        // Index 0 (bit length 1) has probability 1/21; the top bit length also 1/21
        // but spread over 2^20 values.
        assert!(zero > 4_000 && big > 4_000, "{zero} {big}");
    }
}
