//! The value stored under each UTXO key: everything a query returns, so a query is
//! answered from the index alone, in one consistent read.

use super::IndexError;

/// Fixed part of a value: amount (8) + height (4) + flags (1).
const FIXED_LEN: usize = 13;
const FLAG_COINBASE: u8 = 1;

/// The coin data of one UTXO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UtxoValue {
    /// Amount in satoshis.
    pub amount: u64,
    /// Height of the block that created the output.
    pub height: u32,
    /// Created by a coinbase transaction (spendable only after 100 blocks).
    pub coinbase: bool,
    /// The full scriptPubKey.
    pub script: Vec<u8>,
}

impl UtxoValue {
    /// Serializes as `amount LE | height LE | flags | script`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(FIXED_LEN + self.script.len());
        out.extend_from_slice(&self.amount.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.push(if self.coinbase { FLAG_COINBASE } else { 0 });
        out.extend_from_slice(&self.script);
    }

    /// Serialized bytes, for one-off use.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FIXED_LEN + self.script.len());
        self.encode(&mut v);
        v
    }

    /// Parses a stored value; a short value or unknown flag means the index is corrupt.
    pub fn decode(bytes: &[u8]) -> Result<UtxoValue, IndexError> {
        let fixed = bytes
            .get(..FIXED_LEN)
            .ok_or_else(|| IndexError::Corrupt(format!("UTXO value of {} bytes", bytes.len())))?;
        let mut amount = [0u8; 8];
        amount.copy_from_slice(&fixed[0..8]);
        let mut height = [0u8; 4];
        height.copy_from_slice(&fixed[8..12]);
        let flags = fixed[12];
        if flags & !FLAG_COINBASE != 0 {
            return Err(IndexError::Corrupt(format!(
                "UTXO value with flags {flags:#x}"
            )));
        }
        Ok(UtxoValue {
            amount: u64::from_le_bytes(amount),
            height: u32::from_le_bytes(height),
            coinbase: flags & FLAG_COINBASE != 0,
            script: bytes[FIXED_LEN..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let v = UtxoValue {
            amount: 5_000_000_000,
            height: 101,
            coinbase: true,
            script: vec![0x51],
        };
        let bytes = v.to_bytes();
        assert_eq!(
            bytes,
            [0x00, 0xf2, 0x05, 0x2a, 0x01, 0, 0, 0, 101, 0, 0, 0, 1, 0x51]
        );
        assert_eq!(UtxoValue::decode(&bytes), Ok(v));
    }

    #[test]
    fn corrupt_values_are_errors() {
        assert!(UtxoValue::decode(&[0; 12]).is_err());
        let mut bad = [0u8; 13];
        bad[12] = 2;
        assert!(UtxoValue::decode(&bad).is_err());
    }
}
