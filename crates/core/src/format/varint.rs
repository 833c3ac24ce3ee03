//! Bitcoin Core's two integer encodings (`serialize.h`).
//!
//! * VARINT (`WriteVarInt`/`ReadVarInt`): MSB-first base-128 where every byte but the
//!   last has its high bit set and one is subtracted from every non-final digit, so
//!   each number has exactly one encoding. Used by the chainstate, the undo files and
//!   the block index.
//! * CompactSize (`WriteCompactSize`/`ReadCompactSize`): the length prefix of vectors
//!   in the network/consensus serialization (one byte below 253, else a marker byte
//!   and 2, 4 or 8 little-endian bytes).

use super::{FormatError, Result};

/// Core's `MAX_SIZE` (`serialize.h`): `ReadCompactSize` rejects any larger length,
/// since no vector in Bitcoin Core's formats can be that long.
pub const MAX_SIZE: u64 = 0x0200_0000;

/// Reads a VARINT whose C++ type is `uint64_t`, advancing `buf` past it.
///
/// Fails on truncation and on values that do not fit 64 bits, exactly where Core's
/// `ReadVarInt` throws "ReadVarInt(): size too large".
pub fn read_varint(buf: &mut &[u8]) -> Result<u64> {
    read_varint_max(buf, u64::MAX)
}

/// Reads a VARINT bounded by `max`, the maximum of the C++ type Core reads it into
/// (`u32::MAX` for `uint32_t`/`unsigned int`, `i32::MAX` for an `int` in
/// `NONNEGATIVE_SIGNED` mode, `u64::MAX` for `uint64_t`). Core's overflow check
/// depends on that type, so a field Core stores as 32 bits must be read with a 32-bit
/// bound to reject what Core rejects. `max` must be of the form 2^k − 1.
pub fn read_varint_max(buf: &mut &[u8], max: u64) -> Result<u64> {
    let mut n: u64 = 0;
    let mut used = 0usize;
    loop {
        let Some(&byte) = buf.get(used) else {
            return Err(FormatError::Truncated {
                what: "VARINT",
                offset: used as u64,
                needed: 1,
            });
        };
        // The same two checks as ReadVarInt, in the same places.
        if n > (max >> 7) {
            return Err(too_large(max, used));
        }
        n = (n << 7) | u64::from(byte & 0x7f);
        used += 1;
        if byte & 0x80 != 0 {
            if n == max {
                return Err(too_large(max, used - 1));
            }
            n += 1;
        } else {
            *buf = buf.get(used..).unwrap_or(&[]);
            return Ok(n);
        }
    }
}

/// The error for a VARINT beyond its field's type; the offset is the start of the
/// VARINT, the detail names the byte where it overflowed.
fn too_large(max: u64, at_byte: usize) -> FormatError {
    FormatError::Invalid {
        what: "VARINT",
        offset: 0,
        detail: format!("value exceeds the field's maximum {max} at its byte {at_byte}"),
    }
}

/// Appends `n` as a VARINT (Core's `WriteVarInt`).
pub fn write_varint(out: &mut Vec<u8>, n: u64) {
    // At most ceil(64 / 7) = 10 digits.
    let mut tmp = [0u8; 10];
    let mut len = 0usize;
    let mut n = n;
    loop {
        let continuation = if len > 0 { 0x80 } else { 0x00 };
        tmp[len] = (n & 0x7f) as u8 | continuation;
        if n <= 0x7f {
            break;
        }
        n = (n >> 7) - 1;
        len += 1;
    }
    out.extend(tmp[..=len].iter().rev());
}

/// Reads a CompactSize, advancing `buf` past it.
///
/// Like Core's `ReadCompactSize` with its default range check: a value written in a
/// longer form than needed is rejected ("non-canonical ReadCompactSize()"), and so is
/// any value above [`MAX_SIZE`] ("ReadCompactSize(): size too large"). Every
/// CompactSize this crate reads is a vector length, where Core applies that check.
pub fn read_compact_size(buf: &mut &[u8]) -> Result<u64> {
    let Some(&first) = buf.first() else {
        return Err(FormatError::Truncated {
            what: "CompactSize",
            offset: 0,
            needed: 1,
        });
    };
    let (value, len, minimum) = match first {
        0..=252 => (u64::from(first), 1usize, 0u64),
        253 => (le_uint(buf, 2)?, 3, 253),
        254 => (le_uint(buf, 4)?, 5, 0x1_0000),
        255 => (le_uint(buf, 8)?, 9, 0x1_0000_0000),
    };
    if value < minimum {
        return Err(FormatError::Invalid {
            what: "CompactSize",
            offset: 0,
            detail: format!("non-canonical encoding of {value} in {len} bytes"),
        });
    }
    if value > MAX_SIZE {
        return Err(FormatError::Invalid {
            what: "CompactSize",
            offset: 0,
            detail: format!("size {value} above MAX_SIZE {MAX_SIZE}"),
        });
    }
    *buf = buf.get(len..).unwrap_or(&[]);
    Ok(value)
}

/// The `width`-byte little-endian integer after the CompactSize marker byte.
fn le_uint(buf: &[u8], width: usize) -> Result<u64> {
    let Some(bytes) = buf.get(1..1 + width) else {
        return Err(FormatError::Truncated {
            what: "CompactSize",
            offset: 1,
            needed: width as u64,
        });
    };
    Ok(bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Appends `n` as a CompactSize (Core's `WriteCompactSize`), always in the shortest
/// form.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    if n < 253 {
        out.push(n as u8);
    } else if n <= u64::from(u16::MAX) {
        out.push(253);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(254);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    } else {
        out.push(255);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::XorShift;

    fn varint(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(&mut out, n);
        out
    }

    fn decode_all(mut bytes: &[u8]) -> Result<u64> {
        let n = read_varint(&mut bytes)?;
        assert!(bytes.is_empty(), "reader left {} bytes", bytes.len());
        Ok(n)
    }

    /// The examples listed in serialize.h above WriteVarInt, plus the extremes.
    #[test]
    fn varint_known_vectors() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x00]),
            (255, &[0x80, 0x7f]),
            (256, &[0x81, 0x00]),
            (16383, &[0xfe, 0x7f]),
            (16384, &[0xff, 0x00]),
            (16511, &[0xff, 0x7f]),
            (65535, &[0x82, 0xfe, 0x7f]),
            (1 << 32, &[0x8e, 0xfe, 0xfe, 0xff, 0x00]),
            (u64::from(u32::MAX), &[0x8e, 0xfe, 0xfe, 0xfe, 0x7f]),
            (
                u64::MAX,
                &[0x80, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x7f],
            ),
        ];
        for &(n, bytes) in cases {
            assert_eq!(varint(n), bytes, "encoding of {n}");
            assert_eq!(decode_all(bytes), Ok(n), "decoding of {bytes:02x?}");
        }
    }

    #[test]
    fn varint_round_trips_across_the_range() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut values: Vec<u64> = (0..64).flat_map(|b| [1u64 << b, (1u64 << b) - 1]).collect();
        values.extend((0..2000).map(|_| rng.next_u64() >> (rng.next_u64() % 64)));
        for n in values {
            assert_eq!(decode_all(&varint(n)), Ok(n), "round trip of {n}");
        }
    }

    #[test]
    fn varint_overflow_is_rejected() {
        // u64::MAX + 1 would need the last digit of u64::MAX's encoding to be 0x80.
        let too_big = [0x80, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xff, 0x00];
        assert!(matches!(
            read_varint(&mut &too_big[..]),
            Err(FormatError::Invalid { .. })
        ));
        // Eleven digits can never fit.
        let eleven = [0x80u8; 10]
            .iter()
            .copied()
            .chain([0x00])
            .collect::<Vec<_>>();
        assert!(matches!(
            read_varint(&mut &eleven[..]),
            Err(FormatError::Invalid { .. })
        ));
        // A 32-bit field rejects 2^32 but accepts u32::MAX.
        let two_pow_32 = varint(1 << 32);
        assert!(matches!(
            read_varint_max(&mut &two_pow_32[..], u64::from(u32::MAX)),
            Err(FormatError::Invalid { .. })
        ));
        let u32_max = varint(u64::from(u32::MAX));
        assert_eq!(
            read_varint_max(&mut &u32_max[..], u64::from(u32::MAX)),
            Ok(u64::from(u32::MAX))
        );
        // An `int` field rejects 2^31 and accepts 2^31 - 1.
        let i32_max = i32::MAX as u64;
        assert!(read_varint_max(&mut &varint(i32_max + 1)[..], i32_max).is_err());
        assert_eq!(
            read_varint_max(&mut &varint(i32_max)[..], i32_max),
            Ok(i32_max)
        );
    }

    #[test]
    fn varint_truncation_and_advance() {
        assert_eq!(
            read_varint(&mut &[][..]),
            Err(FormatError::Truncated {
                what: "VARINT",
                offset: 0,
                needed: 1
            })
        );
        assert_eq!(
            read_varint(&mut &[0x8e, 0xfe][..]),
            Err(FormatError::Truncated {
                what: "VARINT",
                offset: 2,
                needed: 1
            })
        );
        let mut buf: &[u8] = &[0x81, 0x00, 0xaa];
        assert_eq!(read_varint(&mut buf), Ok(256));
        assert_eq!(buf, &[0xaa]);
    }

    fn compact(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_compact_size(&mut out, n);
        out
    }

    #[test]
    fn compact_size_known_vectors() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (252, &[0xfc]),
            (253, &[0xfd, 0xfd, 0x00]),
            (0xffff, &[0xfd, 0xff, 0xff]),
            (0x1_0000, &[0xfe, 0x00, 0x00, 0x01, 0x00]),
            (MAX_SIZE, &[0xfe, 0x00, 0x00, 0x00, 0x02]),
        ];
        for &(n, bytes) in cases {
            assert_eq!(compact(n), bytes, "encoding of {n}");
            let mut buf = bytes;
            assert_eq!(read_compact_size(&mut buf), Ok(n));
            assert!(buf.is_empty());
        }
        assert_eq!(compact(0xffff_ffff), [0xfe, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            compact(0x1_0000_0000),
            [0xff, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn compact_size_rejects_non_canonical_and_oversized() {
        let non_canonical: &[&[u8]] = &[
            &[0xfd, 0xfc, 0x00],
            &[0xfd, 0x00, 0x00],
            &[0xfe, 0xff, 0xff, 0x00, 0x00],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00],
        ];
        for bytes in non_canonical {
            let mut buf = *bytes;
            assert!(
                matches!(
                    read_compact_size(&mut buf),
                    Err(FormatError::Invalid { .. })
                ),
                "{bytes:02x?} accepted"
            );
            assert_eq!(buf, *bytes, "buffer advanced on error");
        }
        let too_large = compact(MAX_SIZE + 1);
        assert!(matches!(
            read_compact_size(&mut &too_large[..]),
            Err(FormatError::Invalid { .. })
        ));
        let huge = compact(u64::MAX);
        assert!(read_compact_size(&mut &huge[..]).is_err());
    }

    #[test]
    fn compact_size_truncated_at_every_prefix() {
        for n in [0u64, 253, 0x1_0000, MAX_SIZE] {
            let full = compact(n);
            crate::format::testutil::all_prefixes_fail(&full, |mut b| read_compact_size(&mut b));
        }
        for n in [128u64, 1 << 32, u64::MAX] {
            let full = varint(n);
            crate::format::testutil::all_prefixes_fail(&full, |mut b| read_varint(&mut b));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(42);
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 12) as usize;
            let bytes = rng.bytes(len);
            let mut a = &bytes[..];
            let mut b = &bytes[..];
            // Whatever is accepted must re-encode to exactly the bytes consumed.
            if let Ok(n) = read_varint(&mut a) {
                assert_eq!(varint(n), &bytes[..bytes.len() - a.len()]);
            }
            if let Ok(n) = read_compact_size(&mut b) {
                assert_eq!(compact(n), &bytes[..bytes.len() - b.len()]);
            }
        }
    }
}
