//! The index's metadata record: which schema and network it belongs to, which block
//! its UTXO entries reflect, and running totals. Written in the same atomic batch as
//! every block's changes, so it can never disagree with the entries.

use super::IndexError;
use crate::network::Network;

/// Layout version of keys, values, undo records and this record. An index of another
/// version is refused, never reinterpreted.
pub const SCHEMA_VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"OPNI";
const ENCODED_LEN: usize = 4 + 4 + 1 + 1 + (4 + 32) * 2 + 8 * 3;

/// Where the index stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Entries equal the UTXO set at `tip`.
    Ready,
    /// A reorg went deeper than the undo log; the entries must be rebuilt.
    Stale,
}

impl SyncState {
    fn to_byte(self) -> u8 {
        match self {
            SyncState::Ready => 1,
            SyncState::Stale => 2,
        }
    }

    fn from_byte(b: u8) -> Option<SyncState> {
        match b {
            1 => Some(SyncState::Ready),
            2 => Some(SyncState::Stale),
            _ => None,
        }
    }
}

/// A block identified by height and hash (internal byte order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlockRef {
    pub height: u32,
    pub hash: [u8; 32],
}

/// The metadata record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexMeta {
    pub network: Network,
    pub state: SyncState,
    /// The block the entries reflect (meaningful when `Ready`).
    pub tip: BlockRef,
    /// The chainstate best block (`B`) the index was scanned from.
    pub snapshot: BlockRef,
    /// Number of UTXO entries.
    pub utxo_count: u64,
    /// Sum of their amounts in satoshis.
    pub total_amount: u64,
    /// Last event sequence number handed out; it never goes backwards, across restarts.
    pub event_seq: u64,
}

impl IndexMeta {
    /// Serializes as `"OPNI" | schema | network | state | tip | snapshot | totals`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
        out.push(self.network.id());
        out.push(self.state.to_byte());
        for b in [&self.tip, &self.snapshot] {
            out.extend_from_slice(&b.height.to_le_bytes());
            out.extend_from_slice(&b.hash);
        }
        out.extend_from_slice(&self.utxo_count.to_le_bytes());
        out.extend_from_slice(&self.total_amount.to_le_bytes());
        out.extend_from_slice(&self.event_seq.to_le_bytes());
        out
    }

    /// Parses the record, refusing another schema version or network first, with a
    /// message that says what to do.
    pub fn decode(bytes: &[u8], expected: Network) -> Result<IndexMeta, IndexError> {
        if bytes.len() < 10 || &bytes[..4] != MAGIC {
            return Err(IndexError::Corrupt(
                "metadata record is not an OPNet index".into(),
            ));
        }
        let schema = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if schema != SCHEMA_VERSION {
            return Err(IndexError::SchemaMismatch {
                found: schema,
                expected: SCHEMA_VERSION,
            });
        }
        let network = Network::from_id(bytes[8])
            .ok_or_else(|| IndexError::Corrupt(format!("unknown network id {}", bytes[8])))?;
        if network != expected {
            return Err(IndexError::NetworkMismatch {
                found: network,
                expected,
            });
        }
        if bytes.len() != ENCODED_LEN {
            return Err(IndexError::Corrupt(format!(
                "metadata record of {} bytes, expected {ENCODED_LEN}",
                bytes.len()
            )));
        }
        let state = SyncState::from_byte(bytes[9])
            .ok_or_else(|| IndexError::Corrupt(format!("unknown sync state {}", bytes[9])))?;
        let mut at = 10;
        let mut block = || {
            let mut h = [0u8; 4];
            h.copy_from_slice(&bytes[at..at + 4]);
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&bytes[at + 4..at + 36]);
            at += 36;
            BlockRef {
                height: u32::from_le_bytes(h),
                hash,
            }
        };
        let tip = block();
        let snapshot = block();
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        Ok(IndexMeta {
            network,
            state,
            tip,
            snapshot,
            utxo_count: u64_at(82),
            total_amount: u64_at(90),
            event_seq: u64_at(98),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IndexMeta {
        IndexMeta {
            network: Network::Regtest,
            state: SyncState::Ready,
            tip: BlockRef {
                height: 170,
                hash: [3; 32],
            },
            snapshot: BlockRef {
                height: 150,
                hash: [4; 32],
            },
            utxo_count: 9_000,
            total_amount: 123_456_789,
            event_seq: 42,
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(bytes.len(), ENCODED_LEN);
        assert_eq!(IndexMeta::decode(&bytes, Network::Regtest), Ok(m));
    }

    #[test]
    fn other_network_or_schema_is_refused() {
        let bytes = sample().encode();
        assert_eq!(
            IndexMeta::decode(&bytes, Network::Main),
            Err(IndexError::NetworkMismatch {
                found: Network::Regtest,
                expected: Network::Main
            })
        );
        let mut other = bytes.clone();
        other[4..8].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            IndexMeta::decode(&other, Network::Regtest),
            Err(IndexError::SchemaMismatch {
                found: 7,
                expected: SCHEMA_VERSION
            })
        );
        for n in 0..bytes.len() {
            assert!(IndexMeta::decode(&bytes[..n], Network::Regtest).is_err());
        }
    }
}
