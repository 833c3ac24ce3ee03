//! Decoding of the write batches stored in log records (`db/write_batch.cc`):
//! fixed64 sequence, fixed32 count, then `count` records, each a tag byte
//! (1 = put: varstring key, varstring value; 0 = delete: varstring key).
//! The records get sequence numbers seq, seq+1, ... in order.

use std::collections::BTreeMap;
use std::path::Path;

use super::coding::{fixed32, fixed64, get_length_prefixed, TYPE_DELETION, TYPE_VALUE};
use super::{LdbError, Result};

const HEADER: usize = 12;

/// The newest version of a key recovered from the logs.
#[derive(Debug, Clone)]
pub(crate) struct MemEntry {
    pub(crate) seq: u64,
    /// `None` for a deletion.
    pub(crate) value: Option<Box<[u8]>>,
}

/// What the logs hold, newest version per user key.
pub(crate) type MemTable = BTreeMap<Box<[u8]>, MemEntry>;

/// Applies one write batch (a log record that starts at `offset` in `path`) to `mem`.
/// Returns the sequence number of its last record (or the batch's sequence - 1 when empty).
pub(crate) fn apply(batch: &[u8], mem: &mut MemTable, path: &Path, offset: u64) -> Result<u64> {
    let corrupt = |msg: &str| LdbError::Corruption {
        path: path.to_path_buf(),
        offset,
        msg: format!("write batch: {msg}"),
    };
    let seq = fixed64(batch, 0).ok_or_else(|| corrupt("shorter than its 12-byte header"))?;
    let count = fixed32(batch, 8).ok_or_else(|| corrupt("shorter than its 12-byte header"))?;
    let mut pos = HEADER;
    let mut n: u64 = 0;
    while pos < batch.len() {
        let tag = batch[pos];
        pos += 1;
        let this_seq = seq
            .checked_add(n)
            .ok_or_else(|| corrupt("sequence number overflow"))?;
        match tag {
            TYPE_VALUE => {
                let key =
                    get_length_prefixed(batch, &mut pos).ok_or_else(|| corrupt("bad put key"))?;
                let value =
                    get_length_prefixed(batch, &mut pos).ok_or_else(|| corrupt("bad put value"))?;
                insert(mem, key, this_seq, Some(value));
            }
            TYPE_DELETION => {
                let key = get_length_prefixed(batch, &mut pos)
                    .ok_or_else(|| corrupt("bad delete key"))?;
                insert(mem, key, this_seq, None);
            }
            other => return Err(corrupt(&format!("unknown record tag {other}"))),
        }
        n += 1;
    }
    if n != u64::from(count) {
        return Err(corrupt(&format!("header says {count} records, found {n}")));
    }
    Ok((seq + n).saturating_sub(1))
}

fn insert(mem: &mut MemTable, key: &[u8], seq: u64, value: Option<&[u8]>) {
    match mem.get_mut(key) {
        Some(e) if e.seq > seq => {}
        Some(e) => {
            e.seq = seq;
            e.value = value.map(Box::from);
        }
        None => {
            mem.insert(
                Box::from(key),
                MemEntry {
                    seq,
                    value: value.map(Box::from),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64, recs: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
        let mut b = seq.to_le_bytes().to_vec();
        b.extend_from_slice(&(recs.len() as u32).to_le_bytes());
        for (k, v) in recs {
            b.push(if v.is_some() { 1 } else { 0 });
            b.push(k.len() as u8);
            b.extend_from_slice(k);
            if let Some(v) = v {
                b.push(v.len() as u8);
                b.extend_from_slice(v);
            }
        }
        b
    }

    #[test]
    fn applies_in_order() {
        let mut mem = MemTable::new();
        let p = Path::new("x.log");
        let b = batch(
            10,
            &[
                (b"a", Some(b"1")),
                (b"b", Some(b"2")),
                (b"a", None),
                (b"b", Some(b"3")),
            ],
        );
        assert_eq!(apply(&b, &mut mem, p, 0).unwrap(), 13);
        assert_eq!(mem[&b"a"[..]].seq, 12);
        assert!(mem[&b"a"[..]].value.is_none());
        assert_eq!(mem[&b"b"[..]].value.as_deref(), Some(&b"3"[..]));
        // An older batch does not overwrite newer entries.
        let old = batch(1, &[(b"b", Some(b"old"))]);
        apply(&old, &mut mem, p, 0).unwrap();
        assert_eq!(mem[&b"b"[..]].value.as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn rejects_malformed() {
        let mut mem = MemTable::new();
        let p = Path::new("x.log");
        assert!(apply(&[0; 11], &mut mem, p, 0).is_err());
        let mut b = batch(1, &[(b"a", Some(b"1"))]);
        b[8] = 2; // wrong count
        assert!(apply(&b, &mut mem, p, 0).is_err());
        let mut b = batch(1, &[(b"a", Some(b"1"))]);
        b.pop(); // truncated value
        assert!(apply(&b, &mut mem, p, 0).is_err());
        let mut b = batch(1, &[(b"a", Some(b"1"))]);
        b[12] = 7; // unknown tag
        let e = apply(&b, &mut mem, p, 5).unwrap_err().to_string();
        assert!(e.contains("x.log") && e.contains('5'), "{e}");
    }
}
