//! Table blocks (`table/block.cc`): prefix-compressed entries followed by a restart array.
//!
//! ```text
//! entry:   varint32 shared | varint32 non_shared | varint32 value_len | key delta | value
//! trailer: fixed32 restart[num_restarts] | fixed32 num_restarts
//! ```
//! `BlockCursor` holds only offsets and the current key; the block bytes are passed to
//! each call, so the caller can keep them in whatever buffer suits it.

use std::cmp::Ordering;

use super::coding::{cmp_internal, fixed32, get_varint32};

/// Where and why a block is malformed (offset relative to the block start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockError {
    pub(crate) offset: usize,
    pub(crate) msg: &'static str,
}

pub(crate) type BlockResult<T> = std::result::Result<T, BlockError>;

fn err<T>(offset: usize, msg: &'static str) -> BlockResult<T> {
    Err(BlockError { offset, msg })
}

#[derive(Debug, Default)]
pub(crate) struct BlockCursor {
    /// Offset of the restart array (the end of the entries).
    restarts_off: usize,
    num_restarts: usize,
    /// Offset of the next entry to decode.
    next: usize,
    key: Vec<u8>,
    val_start: usize,
    val_end: usize,
}

/// Decodes the three varints of the entry at `p` (entries end at `limit`):
/// (shared, non_shared, value_len, offset of the key delta).
#[inline(always)]
fn decode_entry_header(
    data: &[u8],
    p: usize,
    limit: usize,
) -> Option<(usize, usize, usize, usize)> {
    let d = data.get(p..limit)?;
    if let [a, b, c, ..] = *d {
        if (a | b | c) < 0x80 {
            return Some((usize::from(a), usize::from(b), usize::from(c), p + 3));
        }
    }
    let mut q = 0;
    let shared = get_varint32(d, &mut q)? as usize;
    let non_shared = get_varint32(d, &mut q)? as usize;
    let value_len = get_varint32(d, &mut q)? as usize;
    Some((shared, non_shared, value_len, p + q))
}

impl BlockCursor {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Points the cursor at a new block (before its first entry), checking its trailer.
    pub(crate) fn init(&mut self, data: &[u8]) -> BlockResult<()> {
        self.key.clear();
        let n = data.len();
        let Some(num) = n.checked_sub(4).and_then(|at| fixed32(data, at)) else {
            return err(0, "block shorter than its restart count");
        };
        let num = num as usize;
        let max = (n - 4) / 4;
        if num > max {
            return err(n - 4, "restart count larger than the block");
        }
        self.num_restarts = num;
        self.restarts_off = n - 4 - 4 * num;
        self.next = 0;
        Ok(())
    }

    /// The current (internal) key.
    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current value, a slice of `data` (the same block bytes the cursor was moved with).
    #[inline]
    pub(crate) fn value<'d>(&self, data: &'d [u8]) -> &'d [u8] {
        data.get(self.val_start..self.val_end).unwrap_or(&[])
    }

    /// Moves to the first entry.
    pub(crate) fn seek_to_first(&mut self, data: &[u8]) -> BlockResult<bool> {
        self.key.clear();
        self.next = 0;
        self.next(data)
    }

    /// Moves to the next entry. Returns false (and becomes invalid) past the last one.
    #[inline]
    pub(crate) fn next(&mut self, data: &[u8]) -> BlockResult<bool> {
        let p = self.next;
        if p >= self.restarts_off || self.num_restarts == 0 {
            return Ok(false);
        }
        let Some((shared, non_shared, value_len, q)) =
            decode_entry_header(data, p, self.restarts_off)
        else {
            return err(p, "bad entry header");
        };
        let key_end = q.checked_add(non_shared);
        let val_end = key_end.and_then(|k| k.checked_add(value_len));
        let (Some(key_end), Some(val_end)) = (key_end, val_end) else {
            return err(p, "entry length overflow");
        };
        if val_end > self.restarts_off || shared > self.key.len() {
            return err(
                p,
                "entry runs past the block, or shares more than the previous key",
            );
        }
        let Some(delta) = data.get(q..key_end) else {
            return err(p, "entry runs past the block");
        };
        self.key.truncate(shared);
        self.key.extend_from_slice(delta);
        self.val_start = key_end;
        self.val_end = val_end;
        self.next = val_end;
        Ok(true)
    }

    /// The key stored at restart point `i` (which must not share bytes with its predecessor).
    fn restart_key<'d>(&self, data: &'d [u8], i: usize) -> BlockResult<&'d [u8]> {
        let at = self.restarts_off + 4 * i;
        let Some(off) = fixed32(data, at) else {
            return err(at, "restart array out of range");
        };
        let off = off as usize;
        if off >= self.restarts_off {
            return err(at, "restart point past the entries");
        }
        let Some((shared, non_shared, _, q)) = decode_entry_header(data, off, self.restarts_off)
        else {
            return err(off, "bad entry header at a restart point");
        };
        if shared != 0 {
            return err(off, "restart entry shares a prefix");
        }
        match q.checked_add(non_shared).and_then(|e| data.get(q..e)) {
            Some(k) if q + non_shared <= self.restarts_off => Ok(k),
            _ => err(off, "restart key runs past the block"),
        }
    }

    /// Moves to the first entry whose internal key is >= `target`. Returns false (invalid)
    /// when every entry is smaller.
    pub(crate) fn seek(&mut self, data: &[u8], target: &[u8]) -> BlockResult<bool> {
        if self.num_restarts == 0 {
            return Ok(false);
        }
        // The last restart point whose key is < target (or the first one).
        let (mut lo, mut hi) = (0usize, self.num_restarts - 1);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let k = self.restart_key(data, mid)?;
            if k.len() < 8 {
                return err(
                    self.restarts_off + 4 * mid,
                    "internal key shorter than 8 bytes",
                );
            }
            if cmp_internal(k, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let at = self.restarts_off + 4 * lo;
        self.next = fixed32(data, at).map(|v| v as usize).unwrap_or(usize::MAX);
        self.key.clear();
        while self.next(data)? {
            if self.key.len() < 8 {
                return err(self.val_start, "internal key shorter than 8 bytes");
            }
            if cmp_internal(&self.key, target) != Ordering::Less {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a block the way LevelDB's BlockBuilder does.
    pub(crate) fn build(entries: &[(Vec<u8>, Vec<u8>)], restart_interval: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut restarts = vec![];
        let mut last: Vec<u8> = vec![];
        for (i, (k, v)) in entries.iter().enumerate() {
            let shared = if i % restart_interval == 0 {
                restarts.push(out.len() as u32);
                0
            } else {
                k.iter().zip(&last).take_while(|(a, b)| a == b).count()
            };
            for n in [shared, k.len() - shared, v.len()] {
                let mut n = n as u32;
                while n >= 0x80 {
                    out.push((n as u8) | 0x80);
                    n >>= 7;
                }
                out.push(n as u8);
            }
            out.extend_from_slice(&k[shared..]);
            out.extend_from_slice(v);
            last = k.clone();
        }
        if restarts.is_empty() {
            restarts.push(0);
        }
        for r in &restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
        out
    }

    fn ikey(u: &[u8], seq: u64) -> Vec<u8> {
        let mut k = u.to_vec();
        k.extend_from_slice(&((seq << 8) | 1).to_le_bytes());
        k
    }

    #[test]
    fn iterate_and_seek() {
        let entries: Vec<_> = (0..100u32)
            .map(|i| {
                (
                    ikey(format!("key{:05}", i * 2).as_bytes(), 7),
                    vec![i as u8; (i % 200) as usize],
                )
            })
            .collect();
        for interval in [1, 3, 16] {
            let b = build(&entries, interval);
            let mut c = BlockCursor::new();
            c.init(&b).unwrap();
            let mut got = vec![];
            let mut ok = c.seek_to_first(&b).unwrap();
            while ok {
                got.push((c.key().to_vec(), c.value(&b).to_vec()));
                ok = c.next(&b).unwrap();
            }
            assert_eq!(got, entries);
            for i in 0..=200u32 {
                let t = super::super::coding::seek_key(format!("key{i:05}").as_bytes());
                let found = c.seek(&b, &t).unwrap();
                let want = i.div_ceil(2);
                if want >= 100 {
                    assert!(!found);
                } else {
                    assert!(found);
                    assert_eq!(c.key(), &entries[want as usize].0[..]);
                }
            }
        }
    }

    #[test]
    fn malformed_blocks_do_not_panic() {
        let entries: Vec<_> = (0..20u32)
            .map(|i| (ikey(format!("k{i:03}").as_bytes(), 1), vec![1u8; 3]))
            .collect();
        let b = build(&entries, 4);
        let mut c = BlockCursor::new();
        assert!(c.init(&b[..3]).is_err());
        let mut x = 0x1234_5678u32;
        for _ in 0..3000 {
            let mut m = b.clone();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = x as usize % m.len();
            m[at] ^= (x >> 8) as u8 | 1;
            if c.init(&m).is_err() {
                continue;
            }
            let mut ok = c.seek_to_first(&m);
            while let Ok(true) = ok {
                ok = c.next(&m);
            }
            let _ = c.seek(&m, &ikey(b"k010", 5));
        }
    }
}
