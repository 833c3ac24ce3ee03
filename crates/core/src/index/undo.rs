//! The undo record kept for each recent block: what a disconnect must remove and
//! restore, so a reorg is undone exactly from the index's own data.

use super::entry::UtxoValue;
use super::keys::{UtxoKey, UTXO_KEY_LEN};
use super::IndexError;

const UNDO_VERSION: u8 = 1;

/// What connecting one block changed in the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoRecord {
    pub height: u32,
    /// Hash of the block (internal byte order).
    pub block_hash: [u8; 32],
    /// Hash of its parent: the index tip after the block is disconnected.
    pub prev_hash: [u8; 32],
    /// Keys the block added (outputs still unspent at the end of the block) with
    /// their amounts, so a disconnect keeps the running totals without reading them.
    pub created: Vec<(UtxoKey, u64)>,
    /// Entries the block spent, with their full values so they are restored as they were.
    pub spent: Vec<(UtxoKey, UtxoValue)>,
}

impl UndoRecord {
    /// Serializes: version | height | hash | prev | n created | (key, amount)... | n spent |
    /// (key, value length u32, value)...
    pub fn encode(&self) -> Vec<u8> {
        let spent_len: usize = self
            .spent
            .iter()
            .map(|(_, v)| UTXO_KEY_LEN + 4 + 13 + v.script.len())
            .sum();
        let mut out = Vec::with_capacity(
            1 + 4 + 64 + 8 + self.created.len() * (UTXO_KEY_LEN + 8) + spent_len,
        );
        out.push(UNDO_VERSION);
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.block_hash);
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&(self.created.len() as u32).to_le_bytes());
        for (k, amount) in &self.created {
            out.extend_from_slice(&k.encode());
            out.extend_from_slice(&amount.to_le_bytes());
        }
        out.extend_from_slice(&(self.spent.len() as u32).to_le_bytes());
        let mut value = Vec::new();
        for (k, v) in &self.spent {
            out.extend_from_slice(&k.encode());
            value.clear();
            v.encode(&mut value);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(&value);
        }
        out
    }

    /// Parses a stored record; any inconsistency is reported as corruption.
    pub fn decode(bytes: &[u8]) -> Result<UndoRecord, IndexError> {
        let mut r = Reader { buf: bytes };
        let version = r.take(1)?[0];
        if version != UNDO_VERSION {
            return Err(IndexError::Corrupt(format!(
                "undo record version {version}"
            )));
        }
        let height = r.u32()?;
        let block_hash = r.hash()?;
        let prev_hash = r.hash()?;
        let n_created = r.count(UTXO_KEY_LEN + 8)?;
        let mut created = Vec::with_capacity(n_created);
        for _ in 0..n_created {
            let key = r.key()?;
            created.push((key, r.u64()?));
        }
        let n_spent = r.count(UTXO_KEY_LEN + 4 + 13)?;
        let mut spent = Vec::with_capacity(n_spent);
        for _ in 0..n_spent {
            let key = r.key()?;
            let len = r.u32()? as usize;
            let value = UtxoValue::decode(r.take(len)?)?;
            spent.push((key, value));
        }
        if !r.buf.is_empty() {
            return Err(IndexError::Corrupt(format!(
                "undo record of height {height} has {} trailing bytes",
                r.buf.len()
            )));
        }
        Ok(UndoRecord {
            height,
            block_hash,
            prev_hash,
            created,
            spent,
        })
    }
}

/// A bounds-checked cursor over a stored record.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if self.buf.len() < n {
            return Err(IndexError::Corrupt("undo record truncated".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, IndexError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, IndexError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn hash(&mut self) -> Result<[u8; 32], IndexError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32)?);
        Ok(b)
    }

    /// Reads an element count and checks the remaining bytes could hold that many
    /// elements of at least `min_size` bytes, so a corrupt count cannot allocate.
    fn count(&mut self, min_size: usize) -> Result<usize, IndexError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err(IndexError::Corrupt(format!(
                "undo record claims {n} entries"
            )));
        }
        Ok(n)
    }

    fn key(&mut self) -> Result<UtxoKey, IndexError> {
        let bytes = self.take(UTXO_KEY_LEN)?;
        UtxoKey::decode(bytes).ok_or_else(|| IndexError::Corrupt("bad key in undo record".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UndoRecord {
        let k = |b: u8, vout: u32| UtxoKey {
            script_hash: [b; 32],
            txid: [b.wrapping_add(1); 32],
            vout,
        };
        UndoRecord {
            height: 170,
            block_hash: [9; 32],
            prev_hash: [8; 32],
            created: vec![(k(1, 0), 5_000), (k(2, 7), 1)],
            spent: vec![(
                k(3, 1),
                UtxoValue {
                    amount: 1234,
                    height: 12,
                    coinbase: false,
                    script: vec![0x00, 0x14, 1, 2, 3],
                },
            )],
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(UndoRecord::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(UndoRecord::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(UndoRecord::decode(&longer).is_err());
        let mut huge = bytes;
        huge[69..73].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(UndoRecord::decode(&huge).is_err());
    }
}
