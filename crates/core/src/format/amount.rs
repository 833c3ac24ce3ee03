//! Bitcoin Core's amount compression (`compressor.cpp`), used for every amount in the
//! chainstate and the undo files: trailing decimal zeros are folded into a small
//! exponent so round amounts take one or two VARINT bytes.

/// Core's `MAX_MONEY`: 21 million BTC in satoshis. No output of a valid chain holds
/// more, so decoders treat anything larger as corruption.
pub const MAX_MONEY: u64 = 21_000_000 * 100_000_000;

/// Core's `CompressAmount`.
///
/// Core defines it for `0..=MAX_MONEY` only. Above that this uses wrapping 64-bit
/// arithmetic, which is what Core's `uint64_t` arithmetic does too, so the result is
/// the same (meaningless) number Core would produce, and it never panics.
pub fn compress_amount(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut n = n;
    let mut e = 0u64;
    while n % 10 == 0 && e < 9 {
        n /= 10;
        e += 1;
    }
    if e < 9 {
        let d = n % 10;
        n /= 10;
        1u64.wrapping_add(
            n.wrapping_mul(9)
                .wrapping_add(d)
                .wrapping_sub(1)
                .wrapping_mul(10),
        )
        .wrapping_add(e)
    } else {
        1u64.wrapping_add(n.wrapping_sub(1).wrapping_mul(10))
            .wrapping_add(9)
    }
}

/// Core's `DecompressAmount`, the inverse of [`compress_amount`] on `0..=MAX_MONEY`.
///
/// Every `u64` is accepted, as in Core. An input that no amount up to `MAX_MONEY`
/// compresses to yields whatever Core's wrapping `uint64_t` arithmetic yields (for
/// example `u64::MAX` decompresses to 2049638230412174624, far above `MAX_MONEY`):
/// a value callers must range-check against [`MAX_MONEY`], never a panic.
pub fn decompress_amount(x: u64) -> u64 {
    if x == 0 {
        return 0;
    }
    let mut x = x - 1;
    let mut e = x % 10;
    x /= 10;
    let mut n = if e < 9 {
        let d = (x % 9) + 1;
        x /= 9;
        // x <= u64::MAX / 90, so neither step can overflow.
        x * 10 + d
    } else {
        // x <= u64::MAX / 10.
        x + 1
    };
    while e > 0 {
        n = n.wrapping_mul(10);
        e -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::XorShift;

    const COIN: u64 = 100_000_000;
    const CENT: u64 = 1_000_000;

    /// `compress_amounts` in Bitcoin Core's src/test/compress_tests.cpp.
    #[test]
    fn core_test_vectors() {
        let pairs = [
            (0, 0x0),
            (1, 0x1),
            (CENT, 0x7),
            (COIN, 0x9),
            (50 * COIN, 0x32),
            (21_000_000 * COIN, 0x1406f40),
        ];
        for (dec, enc) in pairs {
            assert_eq!(compress_amount(dec), enc, "compress {dec}");
            assert_eq!(decompress_amount(enc), dec, "decompress {enc}");
        }
        assert_eq!(compress_amount(50 * COIN), 50);
        assert_eq!(compress_amount(21_000_000 * COIN), 21_000_000);
    }

    /// The loops of the same Core test: amounts in several ranges round trip, and so
    /// do the first 100,000 compressed values.
    #[test]
    fn core_range_round_trips() {
        let encode = |n: u64| assert_eq!(decompress_amount(compress_amount(n)), n, "{n}");
        (1..=100_000).for_each(encode);
        (1..=10_000).for_each(|i| encode(i * CENT));
        (1..=10_000).for_each(|i| encode(i * COIN));
        (1..=420_000).for_each(|i| encode(i * 50 * COIN));
        for i in 0..100_000u64 {
            assert_eq!(compress_amount(decompress_amount(i)), i, "{i}");
        }
    }

    #[test]
    fn random_amounts_round_trip() {
        let mut rng = XorShift(7);
        for _ in 0..100_000 {
            let n = rng.next_u64() % (MAX_MONEY + 1);
            assert_eq!(decompress_amount(compress_amount(n)), n);
        }
        assert_eq!(decompress_amount(compress_amount(MAX_MONEY)), MAX_MONEY);
    }

    #[test]
    fn hostile_values_do_not_panic() {
        // Same result as Core's wrapping uint64_t arithmetic (computed independently
        // with arbitrary-precision integers reduced mod 2^64).
        assert_eq!(decompress_amount(u64::MAX), 2_049_638_230_412_174_624);
        let mut rng = XorShift(99);
        for _ in 0..100_000 {
            let x = rng.next_u64();
            let _ = decompress_amount(x);
            let _ = compress_amount(x);
        }
        let _ = compress_amount(u64::MAX);
        let _ = compress_amount(u64::MAX - 1);
    }
}
