//! The Bitcoin networks the index can serve, with the facts that tell them apart on
//! disk: block file magic, genesis hash and the datadir subdirectory bitcoind uses.

use std::fmt;
use std::str::FromStr;

use bitcoin::BlockHash;

/// A Bitcoin network. An index, a datadir and a client must all agree on it; every
/// entry point checks, so a mainnet index is never updated from a testnet datadir.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    Main,
    Testnet3,
    Testnet4,
    Signet,
    Regtest,
}

impl Network {
    /// All networks, in the order of their stable numeric id.
    pub const ALL: [Network; 5] = [
        Network::Main,
        Network::Testnet3,
        Network::Testnet4,
        Network::Signet,
        Network::Regtest,
    ];

    /// The name bitcoind uses for `-chain=` (and we use in flags and metadata).
    pub fn name(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Testnet3 => "test",
            Network::Testnet4 => "testnet4",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }

    /// A stable one-byte id, stored in the index metadata and sent on the wire.
    pub fn id(self) -> u8 {
        match self {
            Network::Main => 0,
            Network::Testnet3 => 1,
            Network::Testnet4 => 2,
            Network::Signet => 3,
            Network::Regtest => 4,
        }
    }

    /// Inverse of [`Network::id`]; `None` for an id this build does not know.
    pub fn from_id(id: u8) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.id() == id)
    }

    /// The subdirectory of bitcoind's top datadir that holds this network's files
    /// (`None` for mainnet, which lives in the top directory itself).
    pub fn datadir_subdir(self) -> Option<&'static str> {
        match self {
            Network::Main => None,
            Network::Testnet3 => Some("testnet3"),
            Network::Testnet4 => Some("testnet4"),
            Network::Signet => Some("signet"),
            Network::Regtest => Some("regtest"),
        }
    }

    /// The four bytes that precede every record in `blk*.dat` and `rev*.dat`.
    pub fn magic(self) -> [u8; 4] {
        self.to_bitcoin().magic().to_bytes()
    }

    /// Hash of the genesis block: how a block index proves which network it is.
    pub fn genesis_hash(self) -> BlockHash {
        bitcoin::constants::genesis_block(self.to_bitcoin()).block_hash()
    }

    /// The rust-bitcoin equivalent, for address parsing and consensus constants.
    pub fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Main => bitcoin::Network::Bitcoin,
            Network::Testnet3 => bitcoin::Network::Testnet,
            Network::Testnet4 => bitcoin::Network::Testnet4,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a network name we do not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownNetwork(pub String);

impl fmt::Display for UnknownNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown network '{}' (expected main, test, testnet4, signet or regtest)",
            self.0
        )
    }
}

impl std::error::Error for UnknownNetwork {}

impl FromStr for Network {
    type Err = UnknownNetwork;

    /// Accepts bitcoind's `-chain=` names and the common aliases.
    fn from_str(s: &str) -> Result<Network, UnknownNetwork> {
        match s.to_ascii_lowercase().as_str() {
            "main" | "mainnet" | "bitcoin" => Ok(Network::Main),
            "test" | "testnet" | "testnet3" => Ok(Network::Testnet3),
            "testnet4" => Ok(Network::Testnet4),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            _ => Err(UnknownNetwork(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ids_are_unique() {
        let mut ids = Vec::new();
        for n in Network::ALL {
            assert_eq!(n.name().parse::<Network>(), Ok(n));
            assert_eq!(Network::from_id(n.id()), Some(n));
            ids.push(n.id());
        }
        ids.dedup();
        assert_eq!(ids.len(), Network::ALL.len());
        assert_eq!(Network::from_id(200), None);
        assert!("nonsense".parse::<Network>().is_err());
    }

    #[test]
    fn magics_and_genesis_are_bitcoin_cores() {
        assert_eq!(Network::Main.magic(), [0xf9, 0xbe, 0xb4, 0xd9]);
        assert_eq!(Network::Regtest.magic(), [0xfa, 0xbf, 0xb5, 0xda]);
        assert_eq!(
            Network::Main.genesis_hash().to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert_eq!(
            Network::Regtest.genesis_hash().to_string(),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
    }
}
