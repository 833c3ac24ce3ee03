//! Bitcoin Core's script compression (`ScriptCompression` in `compressor.h`,
//! `CompressScript`/`DecompressScript` in `compressor.cpp`): how the chainstate and the
//! undo files store a scriptPubKey.
//!
//! A VARINT `nSize` comes first. Values 0–5 select a special form with a fixed-size
//! payload: 0 = P2PKH (20-byte hash), 1 = P2SH (20-byte hash), 2/3 = P2PK with that
//! compressed key prefix (32-byte x), 4/5 = P2PK with an *uncompressed* key whose y
//! parity is `nSize & 1` (32-byte x; y is recomputed on the curve). Any other value is
//! `6 + length` of a raw script that follows.

use bitcoin::secp256k1::PublicKey;

use super::{FormatError, Reader, Result};

/// Core's `MAX_SCRIPT_SIZE`: a stored script longer than this is replaced on reading
/// by a lone `OP_RETURN`, as Core's `ScriptCompression::Unser` does.
pub const MAX_SCRIPT_SIZE: usize = 10_000;

/// Number of special `nSize` values (`nSpecialScripts`).
const SPECIAL_SCRIPTS: u64 = 6;

// The opcodes the compressed forms are made of (shared with the synthetic data).
pub(crate) const OP_DUP: u8 = 0x76;
pub(crate) const OP_HASH160: u8 = 0xa9;
pub(crate) const OP_EQUALVERIFY: u8 = 0x88;
pub(crate) const OP_EQUAL: u8 = 0x87;
pub(crate) const OP_CHECKSIG: u8 = 0xac;
pub(crate) const OP_RETURN: u8 = 0x6a;

/// Reads one compressed script, advancing `buf` past it, and returns the full
/// scriptPubKey.
///
/// Errors: truncation, an `nSize` that does not fit Core's `unsigned int`, and a form
/// 4/5 whose x coordinate is not on the curve. (Core silently yields an empty script
/// for the latter; Core's own `CompressScript` never writes such a record, so it can
/// only be corruption, and we report it.)
pub fn read_compressed_script(buf: &mut &[u8]) -> Result<Vec<u8>> {
    let mut r = Reader::new(buf);
    let script = read_from(&mut r)?;
    let consumed = r.offset() as usize;
    *buf = buf.get(consumed..).unwrap_or(&[]);
    Ok(script)
}

fn read_from(r: &mut Reader<'_>) -> Result<Vec<u8>> {
    let n_size = r.varint("compressed script size", u64::from(u32::MAX))?;
    match n_size {
        0 => {
            let hash = r.take(20, "P2PKH hash of compressed script")?;
            let mut script = Vec::with_capacity(25);
            script.extend_from_slice(&[OP_DUP, OP_HASH160, 20]);
            script.extend_from_slice(hash);
            script.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
            Ok(script)
        }
        1 => {
            let hash = r.take(20, "P2SH hash of compressed script")?;
            let mut script = Vec::with_capacity(23);
            script.extend_from_slice(&[OP_HASH160, 20]);
            script.extend_from_slice(hash);
            script.push(OP_EQUAL);
            Ok(script)
        }
        2 | 3 => {
            let x = r.take(32, "P2PK key of compressed script")?;
            let mut script = Vec::with_capacity(35);
            script.extend_from_slice(&[33, n_size as u8]);
            script.extend_from_slice(x);
            script.push(OP_CHECKSIG);
            Ok(script)
        }
        4 | 5 => {
            let x_at = r.offset();
            let x = r.take(32, "P2PK uncompressed key of compressed script")?;
            let mut compressed = [0u8; 33];
            compressed[0] = n_size as u8 - 2;
            compressed[1..].copy_from_slice(x);
            let key = PublicKey::from_slice(&compressed).map_err(|e| FormatError::Invalid {
                what: "P2PK uncompressed key of compressed script",
                offset: x_at,
                detail: format!("x coordinate is not on the secp256k1 curve: {e}"),
            })?;
            let mut script = Vec::with_capacity(67);
            script.push(65);
            script.extend_from_slice(&key.serialize_uncompressed());
            script.push(OP_CHECKSIG);
            Ok(script)
        }
        _ => {
            let len = n_size - SPECIAL_SCRIPTS;
            if len > MAX_SCRIPT_SIZE as u64 {
                // Overly long script: Core keeps a short invalid one and skips the bytes.
                r.skip(len, "oversized raw script")?;
                return Ok(vec![OP_RETURN]);
            }
            // len <= MAX_SCRIPT_SIZE, so it fits in usize.
            Ok(r.take(len as usize, "raw script")?.to_vec())
        }
    }
}

/// Appends `script` in Core's compressed form: one of the special forms when Core's
/// `IsToKeyID`, `IsToScriptID` or `IsToPubKey` matches, else `VARINT(len + 6)` and
/// the raw bytes.
///
/// As in Core, a 33-byte P2PK key only needs the 02/03 prefix (it is stored as is and
/// never decompressed), while a 65-byte key needs the 04 prefix *and* to be a valid
/// curve point, because only then can its y be recomputed from x.
pub fn write_compressed_script(out: &mut Vec<u8>, script: &[u8]) {
    match script {
        [OP_DUP, OP_HASH160, 20, hash @ .., OP_EQUALVERIFY, OP_CHECKSIG] if hash.len() == 20 => {
            out.push(0x00);
            out.extend_from_slice(hash);
        }
        [OP_HASH160, 20, hash @ .., OP_EQUAL] if hash.len() == 20 => {
            out.push(0x01);
            out.extend_from_slice(hash);
        }
        [33, prefix @ (0x02 | 0x03), x @ .., OP_CHECKSIG] if x.len() == 32 => {
            out.push(*prefix);
            out.extend_from_slice(x);
        }
        [65, key @ .., OP_CHECKSIG]
            if key.len() == 65
                && key.first() == Some(&0x04)
                && PublicKey::from_slice(key).is_ok() =>
        {
            let y_parity = key.last().map_or(0, |y| y & 0x01);
            out.push(0x04 | y_parity);
            out.extend_from_slice(key.get(1..33).unwrap_or(&[]));
        }
        _ => {
            super::varint::write_varint(out, script.len() as u64 + SPECIAL_SCRIPTS);
            out.extend_from_slice(script);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::{all_prefixes_fail, hex, XorShift};

    fn compress(script: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_compressed_script(&mut out, script);
        out
    }

    fn decompress_all(bytes: &[u8]) -> Result<Vec<u8>> {
        let mut buf = bytes;
        let script = read_compressed_script(&mut buf)?;
        assert!(buf.is_empty(), "{} bytes left", buf.len());
        Ok(script)
    }

    // Scripts from the fixture's chain.json `script_kinds` (real bitcoind output).
    const P2PKH: &str = "76a914741c4822033d30d3beae2ceb9d351261f06788f788ac";
    const P2SH: &str = "a9146c3a6d48b721b52c62b0f761da554c2ebc96a91087";
    const P2PK_C: &str = "2103f7c6fa83e63c98fff6298bb47b8a17f28ecedf2cb31f0e4b166f80ddc58d31deac";
    const P2PK_C_EVEN: &str =
        "21029ef0bb18f57460a04a539a618d4ba2b3b2b3bbde0997c23a27f1c4ba24e71f6fac";
    const P2PK_U: &str = "41040a7c8a79421b926f74b8bcec9b6ebebf4b8a7d0d174c80ba9b684e8ff242a7d1e10ddbfc920452b6b07c39af156c5df2eda2fcd81e2365ec64f32bc1a7493be2ac";
    const P2PK_U_ODD: &str = "41045b405860f2a36e625ee17f265c2552f46f498be72c9d81437b01f6d5db1e1f79b797e15c518fe73f1273b4459a654e518e9b02affea292ec2f111221d8e87505ac";
    const P2WPKH: &str = "00147dcb3df77deca7f4a9bb898c1888eeab8bc7128e";

    #[test]
    fn special_forms_exact_bytes_and_round_trip() {
        let cases = [
            (P2PKH, format!("00{}", &P2PKH[6..46])),
            (P2SH, format!("01{}", &P2SH[4..44])),
            (P2PK_C, format!("03{}", &P2PK_C[4..68])),
            (P2PK_C_EVEN, format!("02{}", &P2PK_C_EVEN[4..68])),
        ];
        for (script, compressed) in cases {
            let script = hex(script);
            let compressed = hex(&compressed);
            assert_eq!(compress(&script), compressed);
            assert_eq!(decompress_all(&compressed), Ok(script));
        }
    }

    /// `compress_script_to_uncompressed_pubkey_id` in compress_tests.cpp: the first
    /// byte is 0x04 | parity of y, then x; decompression recomputes y on the curve.
    #[test]
    fn uncompressed_p2pk_goes_through_secp256k1() {
        for script_hex in [P2PK_U, P2PK_U_ODD] {
            let script = hex(script_hex);
            let compressed = compress(&script);
            assert_eq!(compressed.len(), 33);
            assert_eq!(compressed[0], 0x04 | (script[65] & 0x01));
            assert_eq!(&compressed[1..], &script[2..34]);
            assert_eq!(decompress_all(&compressed), Ok(script));
        }
        // Both parities are exercised by the two fixture keys.
        assert_eq!(compress(&hex(P2PK_U))[0], 0x04);
        assert_eq!(compress(&hex(P2PK_U_ODD))[0], 0x05);
    }

    /// `compress_p2pk_scripts_not_on_curve`: an x with no curve point is neither
    /// compressed nor decompressed.
    #[test]
    fn point_not_on_curve() {
        // x = 5 is not the x coordinate of any secp256k1 point: 5^3 + 7 = 132 is a
        // quadratic non-residue mod p (Euler's criterion), so y^2 = 132 has no root.
        let mut x = [0u8; 32];
        x[31] = 5;
        let mut compressed = vec![0x02];
        compressed.extend_from_slice(&x);
        assert!(PublicKey::from_slice(&compressed).is_err());

        let mut script = vec![65, 0x04];
        script.extend_from_slice(&x);
        script.extend_from_slice(&[0x11; 32]);
        script.push(OP_CHECKSIG);
        let stored = compress(&script);
        assert_eq!(stored[0], 67 + 6, "stored raw");
        assert_eq!(decompress_all(&stored), Ok(script));

        for kind in [4u8, 5] {
            let mut record = vec![kind];
            record.extend_from_slice(&x);
            assert!(matches!(
                decompress_all(&record),
                Err(FormatError::Invalid { offset: 1, .. })
            ));
        }
        // A 33-byte key is compressed on its prefix alone, as Core does.
        let mut p2pk = vec![33, 0x02];
        p2pk.extend_from_slice(&x);
        p2pk.push(OP_CHECKSIG);
        assert_eq!(compress(&p2pk), compressed);
        assert_eq!(decompress_all(&compressed), Ok(p2pk));
    }

    #[test]
    fn near_misses_are_stored_raw() {
        let p2pkh = hex(P2PKH);
        let p2pk_u = hex(P2PK_U);
        let mut hybrid = p2pk_u.clone();
        hybrid[1] = 0x06;
        let mut no_checksig = hex(P2SH);
        no_checksig[22] = 0x88;
        let near: Vec<Vec<u8>> = vec![
            vec![],
            p2pkh[..24].to_vec(),
            [&p2pkh[..], &[0x00]].concat(),
            no_checksig,
            hybrid,
            hex(P2WPKH),
            vec![0x51],
        ];
        for script in near {
            let stored = compress(&script);
            let mut expected = Vec::new();
            crate::format::varint::write_varint(&mut expected, script.len() as u64 + 6);
            expected.extend_from_slice(&script);
            assert_eq!(stored, expected, "{script:02x?}");
            assert_eq!(decompress_all(&stored), Ok(script));
        }
    }

    #[test]
    fn long_scripts() {
        // Exactly MAX_SCRIPT_SIZE is kept.
        let max = vec![0x61; MAX_SCRIPT_SIZE];
        let stored = compress(&max);
        assert_eq!(&stored[..2], &[0xcd, 0x16], "VARINT(10006)");
        assert_eq!(decompress_all(&stored), Ok(max));
        // One byte more (the fixture's 10,001-byte output) reads back as OP_RETURN,
        // with all its bytes skipped.
        let over = vec![0x61; MAX_SCRIPT_SIZE + 1];
        let mut stored = compress(&over);
        stored.push(0xee);
        let mut buf = &stored[..];
        assert_eq!(read_compressed_script(&mut buf), Ok(vec![OP_RETURN]));
        assert_eq!(buf, &[0xee]);
        // ... but the skipped bytes must be there.
        let truncated = &stored[..stored.len() - 2];
        assert!(matches!(
            decompress_all(truncated),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn size_above_u32_is_rejected() {
        let mut bytes = Vec::new();
        crate::format::varint::write_varint(&mut bytes, 1 << 32);
        assert!(matches!(
            decompress_all(&bytes),
            Err(FormatError::Invalid { .. })
        ));
    }

    #[test]
    fn every_prefix_is_an_error() {
        for script in [P2PKH, P2SH, P2PK_C, P2PK_U, P2WPKH] {
            all_prefixes_fail(&compress(&hex(script)), decompress_all);
        }
        all_prefixes_fail(&compress(&vec![0x61; 300]), decompress_all);
    }

    #[test]
    fn garbage_never_panics_and_accepted_input_is_canonical_or_known() {
        let mut rng = XorShift(0xdead_beef);
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 48) as usize;
            let mut bytes = rng.bytes(len);
            if let Some(first) = bytes.first_mut() {
                *first %= 12;
            }
            let mut buf = &bytes[..];
            if let Ok(script) = read_compressed_script(&mut buf) {
                let consumed = &bytes[..bytes.len() - buf.len()];
                // Re-compressing gives the consumed bytes back, except for raw
                // scripts that happen to look like a special form (Core would never
                // have stored those raw).
                let again = compress(&script);
                if consumed.first().is_some_and(|&b| b < 6) {
                    assert_eq!(again, consumed);
                }
            }
        }
    }
}
