//! The scriptPubKey kinds of the synthetic UTXO set, their share of it, and how
//! each kind's scripts are built from random bytes.

use std::sync::OnceLock;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use sha2::{Digest, Sha256};

use super::rng::Rng;

/// The script kinds the generator produces, in the order of [`Kind::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    P2wpkh,
    P2pkh,
    P2tr,
    P2sh,
    P2wsh,
    P2pkCompressed,
    P2pkUncompressed,
    Multisig,
    NonStandard,
}

impl Kind {
    /// Every kind, in the order of [`MIX_PPM`].
    pub(crate) const ALL: [Kind; 9] = [
        Kind::P2wpkh,
        Kind::P2pkh,
        Kind::P2tr,
        Kind::P2sh,
        Kind::P2wsh,
        Kind::P2pkCompressed,
        Kind::P2pkUncompressed,
        Kind::Multisig,
        Kind::NonStandard,
    ];

    /// The name used in [`super::SynthSummary::kinds`].
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::P2wpkh => "p2wpkh",
            Kind::P2pkh => "p2pkh",
            Kind::P2tr => "p2tr",
            Kind::P2sh => "p2sh",
            Kind::P2wsh => "p2wsh",
            Kind::P2pkCompressed => "p2pk_compressed",
            Kind::P2pkUncompressed => "p2pk_uncompressed",
            Kind::Multisig => "multisig_1of2",
            Kind::NonStandard => "nonstandard",
        }
    }
}

/// Target share of each kind among all coins (whales included), parts per million,
/// indexed like [`Kind::ALL`]. Roughly mainnet's mix by UTXO count; the last 5% is
/// split among the rare forms so that every code path of Core's script compression
/// (and the reader's decompression of uncompressed keys) is exercised at scale.
pub(crate) const MIX_PPM: [u64; 9] = [
    450_000, // P2WPKH
    200_000, // P2PKH
    150_000, // P2TR
    100_000, // P2SH
    50_000,  // P2WSH
    15_000,  // P2PK, compressed key
    10_000,  // P2PK, uncompressed key (valid curve point)
    15_000,  // bare 1-of-2 multisig
    10_000,  // non-standard
];

/// How many valid uncompressed keys P2PK outputs choose from. Computing a key costs
/// a scalar multiplication, so a fixed pool is built once and reused.
pub(crate) const KEY_POOL: usize = 1_000;

/// The pool of valid secp256k1 public keys, uncompressed (65 bytes, `04` prefix).
/// Independent of any seed: secret key `i` is SHA-256("opnet-synth key" ‖ i),
/// skipping the (practically impossible) values that are not valid scalars.
pub(crate) fn key_pool() -> &'static [[u8; 65]] {
    static POOL: OnceLock<Vec<[u8; 65]>> = OnceLock::new();
    POOL.get_or_init(|| {
        let secp = Secp256k1::signing_only();
        let mut keys = Vec::with_capacity(KEY_POOL);
        let mut counter = 0u64;
        while keys.len() < KEY_POOL {
            let digest = Sha256::new()
                .chain_update(b"opnet-synth key")
                .chain_update(counter.to_le_bytes())
                .finalize();
            counter += 1;
            if let Ok(secret) = SecretKey::from_slice(&digest) {
                keys.push(PublicKey::from_secret_key(&secp, &secret).serialize_uncompressed());
            }
        }
        keys
    })
}

use crate::format::script::{OP_CHECKSIG, OP_DUP, OP_EQUAL, OP_EQUALVERIFY, OP_HASH160, OP_RETURN};

const OP_0: u8 = 0x00;
const OP_1: u8 = 0x51;
const OP_2: u8 = 0x52;
const OP_SHA256: u8 = 0xa8;
const OP_CHECKMULTISIG: u8 = 0xae;

/// Appends `n` random bytes.
fn random_bytes(rng: &mut Rng, out: &mut Vec<u8>, n: usize) {
    let start = out.len();
    out.resize(start + n, 0);
    rng.fill(&mut out[start..]);
}

/// A 33-byte key with an `02`/`03` prefix and random x. Core stores such keys as
/// they are (it checks only the prefix), so they need not be on the curve.
fn compressed_key(rng: &mut Rng, out: &mut Vec<u8>) {
    out.push(0x02 | (rng.next_u64() & 1) as u8);
    random_bytes(rng, out, 32);
}

/// Builds a script of `kind` from `rng`: the same stream gives the same script, so
/// a script is identified by the (seed, domain, index) of its stream.
pub(crate) fn build(kind: Kind, rng: &mut Rng) -> Vec<u8> {
    let mut s = Vec::with_capacity(72);
    match kind {
        Kind::P2wpkh => {
            s.extend_from_slice(&[OP_0, 20]);
            random_bytes(rng, &mut s, 20);
        }
        Kind::P2pkh => {
            s.extend_from_slice(&[OP_DUP, OP_HASH160, 20]);
            random_bytes(rng, &mut s, 20);
            s.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
        }
        Kind::P2tr => {
            s.extend_from_slice(&[OP_1, 32]);
            random_bytes(rng, &mut s, 32);
        }
        Kind::P2sh => {
            s.extend_from_slice(&[OP_HASH160, 20]);
            random_bytes(rng, &mut s, 20);
            s.push(OP_EQUAL);
        }
        Kind::P2wsh => {
            s.extend_from_slice(&[OP_0, 32]);
            random_bytes(rng, &mut s, 32);
        }
        Kind::P2pkCompressed => {
            s.push(33);
            compressed_key(rng, &mut s);
            s.push(OP_CHECKSIG);
        }
        Kind::P2pkUncompressed => {
            let pool = key_pool();
            let key = &pool[rng.below(pool.len() as u64) as usize];
            s.push(65);
            s.extend_from_slice(key);
            s.push(OP_CHECKSIG);
        }
        Kind::Multisig => {
            s.extend_from_slice(&[OP_1, 33]);
            compressed_key(rng, &mut s);
            s.push(33);
            compressed_key(rng, &mut s);
            s.extend_from_slice(&[OP_2, OP_CHECKMULTISIG]);
        }
        Kind::NonStandard => match rng.below(10) {
            // Anyone-can-spend.
            0 => s.push(OP_1),
            // Hash lock.
            1..=4 => {
                s.extend_from_slice(&[OP_SHA256, 32]);
                random_bytes(rng, &mut s, 32);
                s.push(OP_EQUAL);
            }
            // Junk of 1..=300 bytes. Core never stores an output whose script starts
            // with OP_RETURN (it is unspendable), so the first byte avoids it.
            _ => {
                let len = rng.range(1, 300) as usize;
                random_bytes(rng, &mut s, len);
                if s[0] == OP_RETURN {
                    s[0] = OP_1;
                }
            }
        },
    }
    s
}

/// The kind of an arbitrary script, recognised by its template (used to pick a
/// realistic scriptSig/witness for an input spending it).
pub(crate) fn classify(script: &[u8]) -> Kind {
    match script {
        [OP_0, 20, rest @ ..] if rest.len() == 20 => Kind::P2wpkh,
        [OP_0, 32, rest @ ..] if rest.len() == 32 => Kind::P2wsh,
        [OP_1, 32, rest @ ..] if rest.len() == 32 => Kind::P2tr,
        [OP_DUP, OP_HASH160, 20, hash @ .., OP_EQUALVERIFY, OP_CHECKSIG] if hash.len() == 20 => {
            Kind::P2pkh
        }
        [OP_HASH160, 20, hash @ .., OP_EQUAL] if hash.len() == 20 => Kind::P2sh,
        [33, 0x02 | 0x03, key @ .., OP_CHECKSIG] if key.len() == 32 => Kind::P2pkCompressed,
        [65, 0x04, key @ .., OP_CHECKSIG] if key.len() == 64 => Kind::P2pkUncompressed,
        [OP_1, 33, .., OP_2, OP_CHECKMULTISIG] if script.len() == 71 => Kind::Multisig,
        _ => Kind::NonStandard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::script::{read_compressed_script, write_compressed_script};

    #[test]
    fn mix_sums_to_one_million() {
        assert_eq!(MIX_PPM.iter().sum::<u64>(), 1_000_000);
        assert_eq!(Kind::ALL.len(), MIX_PPM.len());
        for (i, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
        }
    }

    #[test]
    fn every_kind_round_trips_through_core_compression() {
        let mut rng = Rng::for_item(1, 1, 1);
        for kind in Kind::ALL {
            for _ in 0..200 {
                let script = build(kind, &mut rng);
                let mut compressed = Vec::new();
                write_compressed_script(&mut compressed, &script);
                let mut buf = &compressed[..];
                assert_eq!(read_compressed_script(&mut buf).as_ref(), Ok(&script));
                assert!(buf.is_empty());
                assert_ne!(script.first(), Some(&OP_RETURN));
                assert_eq!(classify(&script), kind);
                let special = compressed[0] <= 5;
                let expect_special = matches!(
                    kind,
                    Kind::P2pkh | Kind::P2sh | Kind::P2pkCompressed | Kind::P2pkUncompressed
                );
                assert_eq!(special, expect_special, "{kind:?}");
            }
        }
    }

    #[test]
    fn key_pool_keys_are_valid_and_distinct() {
        let pool = key_pool();
        assert_eq!(pool.len(), KEY_POOL);
        let distinct: std::collections::HashSet<_> = pool.iter().collect();
        assert_eq!(distinct.len(), KEY_POOL);
        for key in pool.iter().take(50) {
            assert_eq!(key[0], 0x04);
            assert!(PublicKey::from_slice(key).is_ok());
        }
    }
}
