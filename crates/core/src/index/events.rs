//! The persisted block-event log (`'e' | event number (BE)`), written in the same
//! atomic batch as the block it describes. It is what lets a client that was away
//! be replayed the blocks it missed, disconnects of a losing branch included, after
//! a restart of the server too (docs/PROTOCOL.md §7.1).

use super::IndexError;

/// Prefix of event records.
pub const EVENT_PREFIX: u8 = b'e';
/// Key of the event-number reservation: numbers handed to mempool events are
/// reserved ahead in blocks, so a restart never reuses one (see `EventClock`).
pub const SEQ_RESERVATION_KEY: &[u8] = b"mseqres";

const RECORD_LEN: usize = 1 + 8 + 4 + 32 + 32 + 4 + 4 + 4 + 4;

/// Which change of the index an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Connected,
    Disconnected,
    /// The index was rebuilt from a chainstate: what came before cannot be replayed
    /// into it.
    Rebuilt,
}

impl EventKind {
    fn to_byte(self) -> u8 {
        match self {
            EventKind::Connected => 1,
            EventKind::Disconnected => 2,
            EventKind::Rebuilt => 3,
        }
    }

    fn from_byte(b: u8) -> Option<EventKind> {
        match b {
            1 => Some(EventKind::Connected),
            2 => Some(EventKind::Disconnected),
            3 => Some(EventKind::Rebuilt),
            _ => None,
        }
    }
}

/// One logged block event: what a replay sends, without the per-UTXO detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub kind: EventKind,
    pub seq: u64,
    /// The block connected or disconnected (the new tip for `Rebuilt`).
    pub height: u32,
    pub hash: [u8; 32],
    /// Its parent (the new tip after a disconnect).
    pub prev_hash: [u8; 32],
    /// Header timestamp (connects; 0 otherwise).
    pub time: u32,
    /// Transactions in the block (connects; 0 otherwise).
    pub tx_count: u32,
    /// UTXOs that appeared and disappeared.
    pub added: u32,
    pub removed: u32,
}

impl EventRecord {
    /// Fixed layout: `kind | seq LE | height LE | hash | prev | time | txs | added | removed`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.push(self.kind.to_byte());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.time.to_le_bytes());
        out.extend_from_slice(&self.tx_count.to_le_bytes());
        out.extend_from_slice(&self.added.to_le_bytes());
        out.extend_from_slice(&self.removed.to_le_bytes());
        out
    }

    /// Parses a stored record; anything else than the fixed layout is corruption.
    pub fn decode(bytes: &[u8]) -> Result<EventRecord, IndexError> {
        if bytes.len() != RECORD_LEN {
            return Err(IndexError::Corrupt(format!(
                "event record of {} bytes",
                bytes.len()
            )));
        }
        let kind = EventKind::from_byte(bytes[0])
            .ok_or_else(|| IndexError::Corrupt(format!("event kind {}", bytes[0])))?;
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[i..i + 4]);
            u32::from_le_bytes(b)
        };
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[1..9]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[13..45]);
        let mut prev_hash = [0u8; 32];
        prev_hash.copy_from_slice(&bytes[45..77]);
        Ok(EventRecord {
            kind,
            seq: u64::from_le_bytes(seq),
            height: u32_at(9),
            hash,
            prev_hash,
            time: u32_at(77),
            tx_count: u32_at(81),
            added: u32_at(85),
            removed: u32_at(89),
        })
    }
}

/// Key of the event numbered `seq`.
pub fn event_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT_PREFIX;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Event number of an event key, `None` when the key is not one.
pub fn event_key_seq(key: &[u8]) -> Option<u64> {
    if key.len() != 9 || key[0] != EVENT_PREFIX {
        return None;
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&key[1..]);
    Some(u64::from_be_bytes(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EventRecord {
        EventRecord {
            kind: EventKind::Disconnected,
            seq: 0x0102_0304_0506_0708,
            height: 812_345,
            hash: [0xab; 32],
            prev_hash: [0xcd; 32],
            time: 1_700_000_000,
            tx_count: 3_456,
            added: 7,
            removed: 9,
        }
    }

    #[test]
    fn record_round_trips_and_rejects_other_lengths_and_kinds() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(bytes.len(), RECORD_LEN);
        assert_eq!(EventRecord::decode(&bytes), Ok(r));
        for n in 0..bytes.len() {
            assert!(EventRecord::decode(&bytes[..n]).is_err());
        }
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(EventRecord::decode(&bad).is_err());
        let mut long = bytes;
        long.push(0);
        assert!(EventRecord::decode(&long).is_err());
    }

    #[test]
    fn keys_sort_by_event_number() {
        assert!(event_key(255) < event_key(256));
        assert_eq!(event_key_seq(&event_key(u64::MAX)), Some(u64::MAX));
        assert_eq!(event_key_seq(b"mstate"), None);
    }
}
