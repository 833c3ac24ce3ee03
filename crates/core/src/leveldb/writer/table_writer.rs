//! One table file (`.ldb`, `table/table_builder.cc`), written front to back.
//!
//! ```text
//! [data block 1] ... [data block N] [metaindex block] [index block] [footer]
//! block on disk: contents | u8 type (0 = uncompressed) | fixed32 masked CRC32C(contents + type)
//! footer (48 bytes): metaindex handle | index handle | zero padding to 40 | fixed64 magic
//! ```
//! Data blocks are built in place at the end of one output buffer, which is written to
//! the file whenever it holds `FLUSH_BYTES`; the index block is kept in its own buffer
//! until the table ends. No filter block is written (the metaindex block is empty):
//! LevelDB and rusty-leveldb read such tables and simply skip the filter check.
//!
//! Index keys: rusty-leveldb's `Table::get` only looks into a block when the lookup key is
//! strictly smaller than the block's index key. LevelDB allows the index key to equal the
//! block's last key, and with every entry at sequence 1 and the database's last sequence 1,
//! a lookup key equals the stored key exactly; such a key would not be found if it ended
//! a block. Index keys are therefore always strictly greater than the block's last key:
//! a short user key between the two blocks with the maximum sequence (as LevelDB's
//! `FindShortestSeparator`), or, when no shorter user key fits, the last user key with
//! tag 0 (sequence 0), which sorts after every version of that user key that has a
//! sequence > 0.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::block_builder::{common_prefix, put_varint64, BlockBuilder};
use crate::leveldb::coding::{mask_crc, user_key, MAX_SEQUENCE, TYPE_VALUE};
use crate::leveldb::table::{FOOTER_LEN, NO_COMPRESSION, TABLE_MAGIC};
use crate::leveldb::{LdbError, Result};

/// Output is written to the file in chunks of at least this many bytes.
const FLUSH_BYTES: usize = 1 << 20;
/// Index blocks store every key whole, as LevelDB's (`index_block_options`).
const INDEX_RESTART_INTERVAL: usize = 1;

/// The tag LevelDB uses for seeks: the largest sequence, so it sorts before every stored
/// version of the same user key.
const SEEK_TAG: [u8; 8] = ((MAX_SEQUENCE << 8) | TYPE_VALUE as u64).to_le_bytes();
/// Sequence 0, type 0: sorts after every version of the same user key with sequence > 0.
const AFTER_TAG: [u8; 8] = [0; 8];

/// Where a block is: its offset and its size without the 5-byte trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handle {
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

impl Handle {
    fn encode_to(self, buf: &mut Vec<u8>) {
        put_varint64(buf, self.offset);
        put_varint64(buf, self.size);
    }
}

/// A user key `k` with `a < k < b`, as (length, last byte): `k = a[..len - 1] + [byte]`.
/// `None` when no key of that form exists (`a` is a prefix of `b`, or every byte of `a`
/// after the first difference is 0xff).
fn user_separator(a: &[u8], b: &[u8]) -> Option<(usize, u8)> {
    let diff = common_prefix(a, b);
    let (&x, &y) = (a.get(diff)?, b.get(diff)?);
    if x < 0xff && x + 1 < y {
        return Some((diff + 1, x + 1));
    }
    // a[diff] < b[diff]: keep a[diff] and bump a later byte of a.
    (diff + 1..a.len()).find_map(|j| (a[j] < 0xff).then(|| (j + 1, a[j] + 1)))
}

/// A short user key greater than `a`, as (length, last byte); `None` if `a` is all 0xff.
fn user_successor(a: &[u8]) -> Option<(usize, u8)> {
    a.iter().position(|&c| c < 0xff).map(|j| (j + 1, a[j] + 1))
}

/// Writes into `out` an internal key strictly greater than every version (sequence > 0)
/// of the user key `last` and smaller than every version of `next` (when given; `last`
/// must be smaller than `next`).
pub(crate) fn index_key(out: &mut Vec<u8>, last: &[u8], next: Option<&[u8]>) {
    out.clear();
    let short = match next {
        Some(next) => user_separator(last, next),
        None => user_successor(last),
    };
    match short {
        Some((len, byte)) => {
            out.extend_from_slice(&last[..len - 1]);
            out.push(byte);
            out.extend_from_slice(&SEEK_TAG);
        }
        None => {
            out.extend_from_slice(last);
            out.extend_from_slice(&AFTER_TAG);
        }
    }
}

/// Appends the 5-byte trailer of the block `buf[start..]` (type 0, masked CRC32C).
fn append_trailer(buf: &mut Vec<u8>, start: usize) {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[start..]), &[NO_COMPRESSION]);
    buf.push(NO_COMPRESSION);
    buf.extend_from_slice(&mask_crc(crc).to_le_bytes());
}

/// Buffers handed from one table to the next, so a new table allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    out: Vec<u8>,
    index: Vec<u8>,
    sep: Vec<u8>,
    handle: Vec<u8>,
    smallest: Vec<u8>,
}

/// What the MANIFEST needs to know about a finished table.
#[derive(Debug, Clone)]
pub(crate) struct FinishedTable {
    pub(crate) number: u64,
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) entries: u64,
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
}

/// Sizes a table is built with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) table_bytes: u64,
    pub(crate) block_bytes: usize,
    pub(crate) restart_interval: usize,
}

/// A table being written.
#[derive(Debug)]
pub(crate) struct TableWriter {
    number: u64,
    path: PathBuf,
    file: File,
    layout: Layout,
    /// Output not yet written to the file; the current data block is at its end.
    out: Vec<u8>,
    /// Bytes already written to the file (the file offset of `out[0]`).
    flushed: u64,
    data: BlockBuilder,
    index: BlockBuilder,
    index_buf: Vec<u8>,
    /// The last finished data block, whose index entry waits for the next key.
    pending: Option<Handle>,
    sep: Vec<u8>,
    handle_buf: Vec<u8>,
    smallest: Vec<u8>,
    entries: u64,
}

impl TableWriter {
    /// Creates `dir/NNNNNN.ldb` (which must not exist).
    pub(crate) fn create(
        dir: &Path,
        number: u64,
        layout: Layout,
        bufs: Buffers,
    ) -> Result<TableWriter> {
        let path = dir.join(format!("{number:06}.ldb"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| LdbError::io(&path, None, e))?;
        let mut out = bufs.out;
        out.clear();
        out.reserve(FLUSH_BYTES + layout.block_bytes.saturating_mul(2).min(1 << 24));
        let mut index_buf = bufs.index;
        index_buf.clear();
        let mut smallest = bufs.smallest;
        smallest.clear();
        Ok(TableWriter {
            number,
            path,
            file,
            layout,
            out,
            flushed: 0,
            data: BlockBuilder::new(layout.restart_interval, 0),
            index: BlockBuilder::new(INDEX_RESTART_INTERVAL, 0),
            index_buf,
            pending: None,
            sep: bufs.sep,
            handle_buf: bufs.handle,
            smallest,
            entries: 0,
        })
    }

    /// Bytes written so far, including buffered output (not the index block).
    pub(crate) fn size(&self) -> u64 {
        self.flushed + self.out.len() as u64
    }

    /// True once the table has reached its target size; checked between blocks only, so
    /// it is true right after a block ended and before the next entry.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.pending.is_some()
            && self.size() + self.index_buf.len() as u64 >= self.layout.table_bytes
    }

    /// The last internal key added.
    #[inline]
    pub(crate) fn last_key(&self) -> &[u8] {
        self.data.last_key()
    }

    /// Appends an entry; `ikey` must sort after the previous one.
    #[inline]
    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        if let Some(h) = self.pending.take() {
            self.add_index_entry(h, Some(user_key(ikey)));
        }
        if self.entries == 0 {
            self.smallest.extend_from_slice(ikey);
        }
        self.data.add(&mut self.out, ikey, value);
        self.entries += 1;
        if self.data.size_estimate(&self.out) >= self.layout.block_bytes {
            self.finish_data_block()?;
        }
        Ok(())
    }

    fn add_index_entry(&mut self, h: Handle, next_user: Option<&[u8]>) {
        index_key(&mut self.sep, user_key(self.data.last_key()), next_user);
        self.handle_buf.clear();
        h.encode_to(&mut self.handle_buf);
        self.index
            .add(&mut self.index_buf, &self.sep, &self.handle_buf);
    }

    fn finish_data_block(&mut self) -> Result<()> {
        self.data.finish(&mut self.out);
        let start = self.data.start();
        let h = Handle {
            offset: self.flushed + start as u64,
            size: (self.out.len() - start) as u64,
        };
        append_trailer(&mut self.out, start);
        self.pending = Some(h);
        if self.out.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        self.data.reset(self.out.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all(&self.out)
            .map_err(|e| LdbError::io(&self.path, Some(self.flushed), e))?;
        self.flushed += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }

    /// Appends the block `out[start..]`'s trailer and returns its handle.
    fn seal_block(&mut self, start: usize) -> Handle {
        let h = Handle {
            offset: self.flushed + start as u64,
            size: (self.out.len() - start) as u64,
        };
        append_trailer(&mut self.out, start);
        h
    }

    /// Writes the last data block, the metaindex and index blocks and the footer, and
    /// closes the file (not synced). `next_user` is the first user key of the next table,
    /// if any (it lets the last index key be shorter).
    pub(crate) fn finish(mut self, next_user: Option<&[u8]>) -> Result<(FinishedTable, Buffers)> {
        if self.data.entries() > 0 {
            self.finish_data_block()?;
        }
        if let Some(h) = self.pending.take() {
            self.add_index_entry(h, next_user);
        }
        // An empty metaindex block: no filter.
        let start = self.out.len();
        let mut meta = BlockBuilder::new(1, start);
        meta.finish(&mut self.out);
        let meta_handle = self.seal_block(start);

        self.index.finish(&mut self.index_buf);
        let start = self.out.len();
        self.out.extend_from_slice(&self.index_buf);
        let index_handle = self.seal_block(start);

        let footer_start = self.out.len();
        meta_handle.encode_to(&mut self.out);
        index_handle.encode_to(&mut self.out);
        self.out.resize(footer_start + FOOTER_LEN as usize - 8, 0);
        self.out.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
        self.flush()?;
        self.file
            .flush()
            .map_err(|e| LdbError::io(&self.path, None, e))?;

        let largest = self.data.last_key().to_vec();
        let table = FinishedTable {
            number: self.number,
            path: self.path,
            size: self.flushed,
            entries: self.entries,
            smallest: self.smallest.clone(),
            largest,
        };
        let bufs = Buffers {
            out: self.out,
            index: self.index_buf,
            sep: self.sep,
            handle: self.handle_buf,
            smallest: self.smallest,
        };
        Ok((table, bufs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leveldb::coding::cmp_internal;
    use std::cmp::Ordering;

    fn ikey(u: &[u8], seq: u64) -> Vec<u8> {
        let mut k = u.to_vec();
        k.extend_from_slice(&((seq << 8) | 1).to_le_bytes());
        k
    }

    fn check(a: &[u8], b: Option<&[u8]>) -> Vec<u8> {
        let mut sep = Vec::new();
        index_key(&mut sep, a, b);
        assert!(sep.len() >= 8);
        assert!(sep.len() <= a.len() + 8, "{a:?} {b:?} -> {sep:?}");
        // Strictly after the stored key and every lookup key at sequence >= 1 ...
        for seq in [1, 2, 1000, MAX_SEQUENCE] {
            assert_eq!(cmp_internal(&ikey(a, seq), &sep), Ordering::Less);
        }
        // ... and before every version of the next key.
        if let Some(b) = b {
            for seq in [0, 1, MAX_SEQUENCE] {
                assert_eq!(cmp_internal(&sep, &ikey(b, seq)), Ordering::Less);
            }
        }
        sep
    }

    #[test]
    fn index_keys_separate_strictly() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"abc", b"abe"),
            (b"abc", b"abd"),
            (b"abcxyz", b"abd"),
            (b"ab", b"abc"),
            (b"", b"a"),
            (b"", b"\x00"),
            (b"a\xff\xff", b"b"),
            (b"a\xff\xfe", b"b"),
            (b"\xff\xff", b"\xff\xff\x00"),
            (b"helloworld", b"hellp"),
        ];
        for (a, b) in cases {
            check(a, Some(b));
            check(a, None);
        }
        check(b"\xff\xff\xff", None);
        assert_eq!(&check(b"abc", Some(b"abe"))[..3], b"abd");
        assert_eq!(check(b"abcxyz", Some(b"abd")).len(), 4 + 8);
        assert_eq!(&check(b"abc", None)[..1], b"b");
        // Random 69-byte keys that share prefixes.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut a: Vec<u8> = (0..69).map(|_| next() as u8).collect();
            let mut b = a.clone();
            let at = (next() % 69) as usize;
            for c in &mut b[at..] {
                *c = next() as u8;
            }
            if next() % 4 == 0 {
                for c in &mut a[at + 1..] {
                    *c = 0xff;
                }
            }
            match a.cmp(&b) {
                Ordering::Less => check(&a, Some(&b)),
                Ordering::Greater => check(&b, Some(&a)),
                Ordering::Equal => continue,
            };
        }
    }
}
