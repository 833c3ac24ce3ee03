//! Turning what people type (addresses, script hex, scripthashes, txids in RPC
//! order) into what the wire carries (scripthashes, internal-order hashes), and
//! back. The wire never reverses bytes; only these helpers do (docs/PROTOCOL.md,
//! "Conventions").

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Network;

/// Why a string is not a target, a hash or hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TargetError {}

/// The scripthash the index is keyed by: SHA-256 of the scriptPubKey, not reversed
/// (unlike Electrum's).
pub fn script_hash(script: &[u8]) -> [u8; 32] {
    Sha256::digest(script).into()
}

/// The scriptPubKey an address pays, refusing an address of another network so a
/// testnet address never queries a mainnet index by accident.
pub fn address_to_script(addr: &str, network: Network) -> Result<Vec<u8>, TargetError> {
    let parsed = bitcoin::Address::from_str(addr)
        .map_err(|e| TargetError(format!("'{addr}' is not an address: {e}")))?;
    let checked = parsed
        .require_network(network.to_bitcoin())
        .map_err(|_| TargetError(format!("'{addr}' is not a {} address", network.name())))?;
    Ok(checked.script_pubkey().to_bytes())
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes of a hex string (either case); an odd length or a non-hex digit is an
/// error naming the input.
pub fn from_hex(s: &str) -> Result<Vec<u8>, TargetError> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let raw = s.as_bytes();
    if raw.len() % 2 != 0 {
        return Err(TargetError(format!(
            "'{s}' has an odd number of hex digits"
        )));
    }
    raw.chunks(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(TargetError(format!("'{s}' is not hex"))),
        })
        .collect()
}

/// A block hash or txid as `bitcoin-cli` prints it (reversed bytes), from the
/// internal order the wire uses.
pub fn display_hash(hash: &[u8; 32]) -> String {
    let mut rev = *hash;
    rev.reverse();
    to_hex(&rev)
}

/// The internal-order bytes of a block hash or txid given as `bitcoin-cli` prints
/// it (64 hex digits, reversed).
pub fn parse_display_hash(s: &str) -> Result<[u8; 32], TargetError> {
    let bytes = from_hex(s)?;
    let mut hash: [u8; 32] = bytes
        .try_into()
        .map_err(|_| TargetError(format!("'{s}' is not 64 hex digits")))?;
    hash.reverse();
    Ok(hash)
}

/// The scripthash a user means by `s`, which may be:
///
/// - `sh:<64 hex>`: a scripthash, as the wire carries it (not reversed);
/// - `script:<hex>`: a scriptPubKey;
/// - `addr:<address>`: an address of `network`;
/// - unprefixed: 64 hex digits are a scripthash, any other even-length hex is a
///   scriptPubKey, anything else an address.
///
/// The one ambiguity is a 32-byte scriptPubKey, which as hex looks like a
/// scripthash: unprefixed it is read as a scripthash; write `script:` to mean the
/// script.
pub fn parse_target(s: &str, network: Network) -> Result<[u8; 32], TargetError> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("sh:") {
        return scripthash_hex(rest);
    }
    if let Some(rest) = s.strip_prefix("script:") {
        return Ok(script_hash(&from_hex(rest)?));
    }
    if let Some(rest) = s.strip_prefix("addr:") {
        return Ok(script_hash(&address_to_script(rest, network)?));
    }
    if s.is_empty() {
        return Err(TargetError(
            "empty target: give an address, a scriptPubKey in hex or a scripthash".into(),
        ));
    }
    let is_hex = s.len() % 2 == 0 && s.bytes().all(|c| c.is_ascii_hexdigit());
    if is_hex && s.len() == 64 {
        return scripthash_hex(s);
    }
    if is_hex {
        return Ok(script_hash(&from_hex(s)?));
    }
    address_to_script(s, network)
        .map(|script| script_hash(&script))
        .map_err(|e| {
            TargetError(format!(
                "{e} (a target is an address, a scriptPubKey in hex or a 64-hex scripthash)"
            ))
        })
}

fn scripthash_hex(s: &str) -> Result<[u8; 32], TargetError> {
    from_hex(s)?
        .try_into()
        .map_err(|_| TargetError(format!("scripthash '{s}' is not 64 hex digits")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHALE: &str = "00142a941deed62839991916d8a04ec99b548ee3f398";

    #[test]
    fn script_hash_is_plain_sha256() {
        // SHA-256 of the empty string, not reversed.
        assert_eq!(
            to_hex(&script_hash(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(from_hex("00ffA1").unwrap(), vec![0, 0xff, 0xa1]);
        assert_eq!(to_hex(&[0, 0xff, 0xa1]), "00ffa1");
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }

    #[test]
    fn display_hashes_are_reversed() {
        let mut h = [0u8; 32];
        h[0] = 0xab;
        let s = display_hash(&h);
        assert!(s.ends_with("ab") && s.starts_with("00"));
        assert_eq!(parse_display_hash(&s).unwrap(), h);
        assert!(parse_display_hash("abcd").is_err());
    }

    #[test]
    fn targets_in_every_form_name_the_same_scripthash() {
        let script = from_hex(WHALE).unwrap();
        let sh = script_hash(&script);
        let net = Network::Regtest;
        let addr = bitcoin::Address::from_script(
            bitcoin::Script::from_bytes(&script),
            bitcoin::Network::Regtest,
        )
        .unwrap()
        .to_string();
        assert!(addr.starts_with("bcrt1q"));
        for form in [
            WHALE.to_string(),
            format!("script:{WHALE}"),
            to_hex(&sh),
            format!("sh:{}", to_hex(&sh)),
            addr.clone(),
            format!("addr:{addr}"),
        ] {
            assert_eq!(parse_target(&form, net).unwrap(), sh, "{form}");
        }
        assert_eq!(address_to_script(&addr, net).unwrap(), script);
    }

    #[test]
    fn a_64_hex_string_is_a_scripthash_unless_marked_as_a_script() {
        let s = "11".repeat(32);
        assert_eq!(parse_target(&s, Network::Main).unwrap(), [0x11; 32]);
        assert_eq!(
            parse_target(&format!("script:{s}"), Network::Main).unwrap(),
            script_hash(&[0x11; 32])
        );
    }

    #[test]
    fn wrong_network_and_garbage_are_refused() {
        let script = from_hex(WHALE).unwrap();
        let main = bitcoin::Address::from_script(
            bitcoin::Script::from_bytes(&script),
            bitcoin::Network::Bitcoin,
        )
        .unwrap()
        .to_string();
        let e = parse_target(&main, Network::Regtest).unwrap_err();
        assert!(e.0.contains("not a regtest address"), "{e}");
        assert!(parse_target("not-an-address", Network::Regtest).is_err());
        assert!(parse_target("sh:abcd", Network::Regtest).is_err());
        assert!(parse_target("", Network::Regtest).is_err());
    }
}
