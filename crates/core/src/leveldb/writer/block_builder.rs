//! Varint encoding and the block builder (`table/block_builder.cc`).
//!
//! A block is built in place at the end of a caller-owned buffer, so data blocks go
//! straight into a table's output buffer without an extra copy:
//!
//! ```text
//! entry:   varint32 shared | varint32 non_shared | varint32 value_len | key delta | value
//! trailer: fixed32 restart[num_restarts] | fixed32 num_restarts
//! ```
//! Every `restart_interval`-th entry stores its whole key (shared = 0) and its offset goes
//! into the restart array. An empty block is just `restart[0] = 0, num_restarts = 1`, as
//! LevelDB writes it.

/// Appends `v` as a varint (7 bits per byte, low bits first).
#[inline]
pub(crate) fn put_varint64(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` as a varint32.
#[inline]
pub(crate) fn put_varint32(buf: &mut Vec<u8>, v: u32) {
    put_varint64(buf, u64::from(v));
}

/// Appends a varint32 length followed by the bytes. `s` must be shorter than 4 GiB (the
/// writer checks key lengths before they get here).
#[inline]
pub(crate) fn put_length_prefixed(buf: &mut Vec<u8>, s: &[u8]) {
    put_varint64(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

/// Length of the common prefix of `a` and `b`.
#[inline]
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    // Eight bytes at a time: the first differing byte is the lowest set byte of the XOR.
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let mut wa = [0u8; 8];
        let mut wb = [0u8; 8];
        wa.copy_from_slice(ca);
        wb.copy_from_slice(cb);
        let x = u64::from_le_bytes(wa) ^ u64::from_le_bytes(wb);
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// Builds one block at a time at the end of a caller-owned buffer.
#[derive(Debug)]
pub(crate) struct BlockBuilder {
    restart_interval: usize,
    /// Offset in the buffer where the current block starts.
    start: usize,
    /// Restart offsets, relative to `start`.
    restarts: Vec<u32>,
    /// Entries since the last restart point.
    counter: usize,
    /// Entries in the current block.
    entries: usize,
    /// The last key added (kept across blocks: the table writer needs the last key of a
    /// finished block to compute its index separator).
    last_key: Vec<u8>,
}

impl BlockBuilder {
    /// A builder whose first block starts at offset `start` of the buffer.
    pub(crate) fn new(restart_interval: usize, start: usize) -> Self {
        BlockBuilder {
            restart_interval: restart_interval.max(1),
            start,
            restarts: vec![0],
            counter: 0,
            entries: 0,
            last_key: Vec::new(),
        }
    }

    /// Starts a new block at offset `start` of the buffer (the last key is kept).
    pub(crate) fn reset(&mut self, start: usize) {
        self.start = start;
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.entries = 0;
    }

    /// Offset in the buffer where the current block starts.
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// Entries in the current block.
    #[inline]
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// The last key added, in this block or an earlier one.
    #[inline]
    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// The size the current block will have once finished (without the 5-byte trailer).
    #[inline]
    pub(crate) fn size_estimate(&self, buf: &[u8]) -> usize {
        buf.len() - self.start + 4 * self.restarts.len() + 4
    }

    /// Appends an entry. The caller guarantees that `key` sorts after the previous key of
    /// the block, that its length and the value's fit in a varint32, and that the block
    /// stays under 4 GiB before this entry (restart offsets are fixed32).
    #[inline]
    pub(crate) fn add(&mut self, buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        let shared = if self.entries == 0 {
            0
        } else if self.counter >= self.restart_interval {
            self.restarts.push((buf.len() - self.start) as u32);
            self.counter = 0;
            0
        } else {
            common_prefix(&self.last_key, key)
        };
        let non_shared = key.len() - shared;
        buf.reserve(15 + non_shared + value.len());
        if (shared | non_shared | value.len()) < 0x80 {
            buf.extend_from_slice(&[shared as u8, non_shared as u8, value.len() as u8]);
        } else {
            put_varint64(buf, shared as u64);
            put_varint64(buf, non_shared as u64);
            put_varint64(buf, value.len() as u64);
        }
        buf.extend_from_slice(&key[shared..]);
        buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.counter += 1;
        self.entries += 1;
    }

    /// Appends the restart array; the block is then `buf[start..]`.
    pub(crate) fn finish(&mut self, buf: &mut Vec<u8>) {
        buf.reserve(4 * self.restarts.len() + 4);
        for r in &self.restarts {
            buf.extend_from_slice(&r.to_le_bytes());
        }
        buf.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leveldb::block::tests::build as reference_block;
    use crate::leveldb::block::BlockCursor;
    use crate::leveldb::coding::{get_varint32, get_varint64};

    #[test]
    fn varints_round_trip() {
        let mut buf = Vec::new();
        let values = [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            1 << 35,
            u64::MAX - 1,
            u64::MAX,
        ];
        for v in values {
            put_varint64(&mut buf, v);
        }
        put_varint32(&mut buf, u32::MAX);
        let mut p = 0;
        for v in values {
            assert_eq!(get_varint64(&buf, &mut p), Some(v));
        }
        assert_eq!(get_varint32(&buf, &mut p), Some(u32::MAX));
        assert_eq!(p, buf.len());
    }

    #[test]
    fn common_prefix_lengths() {
        let a: Vec<u8> = (0..40u8).collect();
        for cut in 0..40 {
            let mut b = a.clone();
            b[cut] ^= 0x80;
            assert_eq!(common_prefix(&a, &b), cut);
            assert_eq!(common_prefix(&a, &a[..cut]), cut);
        }
        assert_eq!(common_prefix(&a, &a), 40);
        assert_eq!(common_prefix(b"", b"x"), 0);
    }

    fn ikey(u: &[u8], seq: u64) -> Vec<u8> {
        let mut k = u.to_vec();
        k.extend_from_slice(&((seq << 8) | 1).to_le_bytes());
        k
    }

    /// Byte-identical to a LevelDB block, and read back by the project's reader.
    #[test]
    fn matches_reference_blocks() {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..300u32)
            .map(|i| {
                let mut u = format!("key{:05}", i * 3).into_bytes();
                if i % 7 == 0 {
                    u.extend(std::iter::repeat_n(b'z', 200));
                }
                (ikey(&u, 1), vec![i as u8; (i % 150) as usize])
            })
            .collect();
        for interval in [1, 2, 16, 1000] {
            for n in [0, 1, 2, 17, 300] {
                let prefix = b"junk before the block".to_vec();
                let mut buf = prefix.clone();
                let mut b = BlockBuilder::new(interval, buf.len());
                for (k, v) in &entries[..n] {
                    b.add(&mut buf, k, v);
                }
                let estimate = b.size_estimate(&buf);
                b.finish(&mut buf);
                let block = &buf[prefix.len()..];
                assert_eq!(block.len(), estimate);
                assert_eq!(block, &reference_block(&entries[..n], interval)[..]);
                let mut c = BlockCursor::new();
                c.init(block).unwrap();
                let mut got = Vec::new();
                let mut ok = c.seek_to_first(block).unwrap();
                while ok {
                    got.push((c.key().to_vec(), c.value(block).to_vec()));
                    ok = c.next(block).unwrap();
                }
                assert_eq!(got, entries[..n].to_vec());
            }
        }
    }

    #[test]
    fn reset_starts_a_fresh_block_but_keeps_the_last_key() {
        let mut buf = Vec::new();
        let mut b = BlockBuilder::new(16, 0);
        b.add(&mut buf, &ikey(b"abc", 1), b"1");
        b.finish(&mut buf);
        let first_len = buf.len();
        b.reset(buf.len());
        assert_eq!(b.last_key(), &ikey(b"abc", 1)[..]);
        b.add(&mut buf, &ikey(b"abd", 1), b"2");
        b.finish(&mut buf);
        // The second block's first entry shares nothing with the first block's last key.
        let e = vec![(ikey(b"abd", 1), b"2".to_vec())];
        assert_eq!(&buf[first_len..], &reference_block(&e, 16)[..]);
    }
}
