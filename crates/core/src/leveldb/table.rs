//! Table files (`.ldb`, `.sst`; `doc/table_format.md`, `table/format.cc`).
//!
//! ```text
//! [data block 1] ... [data block N] [meta blocks] [metaindex block] [index block] [footer]
//! block on disk: contents | u8 compression type | fixed32 masked CRC32C(contents + type)
//! footer (48 bytes): metaindex handle | index handle | zero padding to 40 | fixed64 magic
//! handle: varint64 offset | varint64 size (size excludes the 5-byte trailer)
//! ```
//! The index block maps a separator key (>= every key of a data block, < every key of
//! the next) to that block's handle. Filter (meta) blocks are not used.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::block::{BlockCursor, BlockError};
use super::coding::{fixed32, fixed64, get_varint64, mask_crc, split_internal, user_key};
use super::coding::{TYPE_DELETION, TYPE_VALUE};
use super::{LdbError, Result};

pub(crate) const FOOTER_LEN: u64 = 48;
pub(crate) const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
pub(crate) const BLOCK_TRAILER: u64 = 5;
pub(crate) const NO_COMPRESSION: u8 = 0;
const SNAPPY_COMPRESSION: u8 = 1;
/// First read of a scan; grows 4x per read up to `MAX_READAHEAD`.
const INITIAL_READAHEAD: usize = 64 * 1024;
const MAX_READAHEAD: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BlockHandle {
    pub(super) offset: u64,
    pub(super) size: u64,
}

pub(super) fn decode_handle(buf: &[u8], pos: &mut usize) -> Option<BlockHandle> {
    let offset = get_varint64(buf, pos)?;
    let size = get_varint64(buf, pos)?;
    Some(BlockHandle { offset, size })
}

pub(super) fn corrupt(path: &Path, offset: u64, msg: impl Into<String>) -> LdbError {
    LdbError::Corruption {
        path: path.to_path_buf(),
        offset,
        msg: msg.into(),
    }
}

/// `read_exact_at`, with a read past the end reported as a truncated file.
pub(super) fn read_exact(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            corrupt(
                path,
                offset,
                format!("file truncated: cannot read {} bytes here", buf.len()),
            )
        } else {
            LdbError::io(path, Some(offset), e)
        }
    })
}

/// Checks a raw block (contents + 5-byte trailer) read from `offset`; returns its
/// compression type.
pub(super) fn verify_block(path: &Path, offset: u64, raw: &[u8]) -> Result<u8> {
    let n = raw.len().saturating_sub(BLOCK_TRAILER as usize);
    let (Some(&ctype), Some(stored)) = (raw.get(n), fixed32(raw, n + 1)) else {
        return Err(corrupt(path, offset, "block shorter than its trailer"));
    };
    let actual = mask_crc(crc32c::crc32c(&raw[..=n]));
    if actual != stored {
        return Err(corrupt(path, offset, "block checksum mismatch"));
    }
    Ok(ctype)
}

/// Decompresses block contents of type `ctype` into `out`.
pub(super) fn decompress(
    path: &Path,
    offset: u64,
    ctype: u8,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    if ctype != SNAPPY_COMPRESSION {
        return Err(LdbError::Unsupported {
            path: path.to_path_buf(),
            msg: format!("block at offset {offset} has compression type {ctype} (only none and snappy are supported)"),
        });
    }
    let len = snap::raw::decompress_len(data)
        .map_err(|e| corrupt(path, offset, format!("bad snappy block: {e}")))?;
    // Snappy expands at most ~21x (a 3-byte copy yields 64 bytes); refuse larger claims.
    if len > data.len().saturating_mul(24).saturating_add(64) {
        return Err(corrupt(
            path,
            offset,
            format!("snappy block claims {len} bytes"),
        ));
    }
    out.clear();
    out.resize(len, 0);
    let n = snap::raw::Decoder::new()
        .decompress(data, out)
        .map_err(|e| corrupt(path, offset, format!("bad snappy block: {e}")))?;
    out.truncate(n);
    Ok(())
}

/// An open table: its file, its index block (kept for the table's lifetime) and where its
/// data blocks end.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) path: PathBuf,
    file: File,
    index: Vec<u8>,
    index_off: u64,
    /// End of the last data block (its trailer included).
    data_end: u64,
}

impl Table {
    /// Opens a table of `size` bytes (the size the MANIFEST records), reading its footer
    /// and index block.
    pub(crate) fn open(path: &Path, size: u64) -> Result<Table> {
        let file = File::open(path).map_err(|e| LdbError::open_err(path, e))?;
        if size < FOOTER_LEN {
            return Err(corrupt(
                path,
                0,
                format!("{size} bytes is too short for a table"),
            ));
        }
        let footer_off = size - FOOTER_LEN;
        let mut footer = [0u8; FOOTER_LEN as usize];
        read_exact(&file, path, &mut footer, footer_off)?;
        if fixed64(&footer, 40) != Some(TABLE_MAGIC) {
            return Err(corrupt(path, size - 8, "bad table magic number"));
        }
        let mut pos = 0;
        let handles = decode_handle(&footer, &mut pos)
            .and_then(|m| Some((m, decode_handle(&footer, &mut pos)?)));
        let Some((_metaindex, ih)) = handles.filter(|_| pos <= 40) else {
            return Err(corrupt(path, footer_off, "bad block handle in the footer"));
        };
        let index_end = ih
            .offset
            .checked_add(ih.size)
            .and_then(|e| e.checked_add(BLOCK_TRAILER));
        if index_end.is_none_or(|e| e > footer_off) {
            return Err(corrupt(path, footer_off, "index block handle out of range"));
        }
        let mut raw = vec![0u8; (ih.size + BLOCK_TRAILER) as usize];
        read_exact(&file, path, &mut raw, ih.offset)?;
        let ctype = verify_block(path, ih.offset, &raw)?;
        raw.truncate(ih.size as usize);
        let index = if ctype == NO_COMPRESSION {
            raw
        } else {
            let mut out = Vec::new();
            decompress(path, ih.offset, ctype, &raw, &mut out)?;
            out
        };
        let mut table = Table {
            path: path.to_path_buf(),
            file,
            index,
            index_off: ih.offset,
            data_end: 0,
        };
        // Validate every handle once, so scans can trust them to stay inside the file.
        let mut c = BlockCursor::new();
        c.init(&table.index).map_err(|e| table.index_err(e))?;
        let mut ok = c
            .seek_to_first(&table.index)
            .map_err(|e| table.index_err(e))?;
        let mut data_end = 0;
        while ok {
            let mut p = 0;
            let v = c.value(&table.index);
            let end = decode_handle(v, &mut p)
                .and_then(|h| h.offset.checked_add(h.size)?.checked_add(BLOCK_TRAILER))
                .filter(|&e| e <= ih.offset);
            let Some(end) = end else {
                return Err(corrupt(
                    path,
                    ih.offset,
                    "index entry with a bad data block handle",
                ));
            };
            data_end = data_end.max(end);
            ok = c.next(&table.index).map_err(|e| table.index_err(e))?;
        }
        table.data_end = data_end;
        Ok(table)
    }

    /// (offset, size) of every data block, then of the index block (tests corrupt them).
    #[cfg(test)]
    pub(crate) fn block_handles(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut c = BlockCursor::new();
        if c.init(&self.index).is_ok() {
            let mut ok = c.seek_to_first(&self.index).unwrap_or(false);
            while ok {
                let mut p = 0;
                if let Some(h) = decode_handle(c.value(&self.index), &mut p) {
                    out.push((h.offset, h.size));
                }
                ok = c.next(&self.index).unwrap_or(false);
            }
        }
        out.push((self.index_off, self.index.len() as u64));
        out
    }

    fn index_err(&self, e: BlockError) -> LdbError {
        corrupt(
            &self.path,
            self.index_off,
            format!("index block, byte {}: {}", e.offset, e.msg),
        )
    }

    fn handle_at(&self, index: &BlockCursor) -> Result<BlockHandle> {
        let mut p = 0;
        let h = decode_handle(index.value(&self.index), &mut p).ok_or_else(|| {
            corrupt(
                &self.path,
                self.index_off,
                "bad block handle in the index block",
            )
        })?;
        Ok(h)
    }

    /// Reads the one block `h` into `raw` (decompressing into `dbuf` if needed) and returns
    /// its contents.
    fn read_block<'b>(
        &self,
        h: BlockHandle,
        raw: &'b mut Vec<u8>,
        dbuf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8]> {
        let end = h
            .offset
            .checked_add(h.size)
            .and_then(|e| e.checked_add(BLOCK_TRAILER));
        if end.is_none_or(|e| e > self.data_end) {
            return Err(corrupt(
                &self.path,
                h.offset,
                "data block handle out of range",
            ));
        }
        raw.clear();
        raw.resize((h.size + BLOCK_TRAILER) as usize, 0);
        read_exact(&self.file, &self.path, raw, h.offset)?;
        let ctype = verify_block(&self.path, h.offset, raw)?;
        raw.truncate(h.size as usize);
        if ctype == NO_COMPRESSION {
            Ok(raw)
        } else {
            decompress(&self.path, h.offset, ctype, raw, dbuf)?;
            Ok(dbuf)
        }
    }

    /// Looks up the newest entry for the user key of `target` (a seek key) in this table.
    /// Returns its tag and value (`None` for a deletion).
    pub(crate) fn get(&self, target: &[u8]) -> Result<Option<(u64, Option<Vec<u8>>)>> {
        let mut index = BlockCursor::new();
        index.init(&self.index).map_err(|e| self.index_err(e))?;
        let mut found = index
            .seek(&self.index, target)
            .map_err(|e| self.index_err(e))?;
        let (mut raw, mut dbuf) = (Vec::new(), Vec::new());
        let mut c = BlockCursor::new();
        while found {
            let h = self.handle_at(&index)?;
            let block = self.read_block(h, &mut raw, &mut dbuf)?;
            let berr = |e: BlockError| {
                corrupt(
                    &self.path,
                    h.offset + e.offset as u64,
                    format!("data block: {}", e.msg),
                )
            };
            c.init(block).map_err(berr)?;
            if c.seek(block, target).map_err(berr)? {
                let (uk, tag) = split_internal(c.key());
                if uk != user_key(target) {
                    return Ok(None);
                }
                return match (tag & 0xff) as u8 {
                    TYPE_VALUE => Ok(Some((tag, Some(c.value(block).to_vec())))),
                    TYPE_DELETION => Ok(Some((tag, None))),
                    t => Err(corrupt(
                        &self.path,
                        h.offset,
                        format!("unknown value type {t}"),
                    )),
                };
            }
            // Every key of that block is smaller: the next block starts after the separator.
            found = index.next(&self.index).map_err(|e| self.index_err(e))?;
        }
        Ok(None)
    }
}

/// Buffers a `TableIter` hands over to the next one (a level scan moves through many
/// tables; this keeps it from allocating per table).
#[derive(Debug, Default)]
pub(crate) struct IterBuffers {
    chunk: Vec<u8>,
    dbuf: Vec<u8>,
    index: BlockCursor,
    data: BlockCursor,
}

/// Iterates a table's entries (internal keys) in order. Reads the data blocks in
/// sequential chunks of up to `MAX_READAHEAD` bytes and verifies each block's CRC.
#[derive(Debug)]
pub(crate) struct TableIter {
    table: Arc<Table>,
    index: BlockCursor,
    data: BlockCursor,
    /// File bytes `[chunk_off, chunk_off + chunk_len)`.
    chunk: Vec<u8>,
    chunk_off: u64,
    chunk_len: usize,
    /// Decompressed contents of the current block when it is compressed.
    dbuf: Vec<u8>,
    /// The current block: `dbuf`, or `chunk[blk_start..blk_end]`.
    blk_in_dbuf: bool,
    blk_start: usize,
    blk_end: usize,
    blk_off: u64,
    readahead: usize,
    valid: bool,
}

#[inline(always)]
fn current_block<'b>(
    chunk: &'b [u8],
    dbuf: &'b [u8],
    in_dbuf: bool,
    start: usize,
    end: usize,
) -> &'b [u8] {
    if in_dbuf {
        dbuf
    } else {
        chunk.get(start..end).unwrap_or(&[])
    }
}

impl TableIter {
    pub(crate) fn new(table: Arc<Table>, bufs: IterBuffers) -> Result<TableIter> {
        let IterBuffers {
            chunk,
            dbuf,
            mut index,
            data,
        } = bufs;
        index.init(&table.index).map_err(|e| table.index_err(e))?;
        Ok(TableIter {
            table,
            index,
            data,
            chunk,
            chunk_off: 0,
            chunk_len: 0,
            dbuf,
            blk_in_dbuf: false,
            blk_start: 0,
            blk_end: 0,
            blk_off: 0,
            readahead: INITIAL_READAHEAD,
            valid: false,
        })
    }

    pub(crate) fn into_buffers(self) -> IterBuffers {
        IterBuffers {
            chunk: self.chunk,
            dbuf: self.dbuf,
            index: self.index,
            data: self.data,
        }
    }

    #[inline]
    pub(crate) fn valid(&self) -> bool {
        self.valid
    }

    /// The current internal key (at least 8 bytes, type 0 or 1).
    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        self.data.key()
    }

    #[inline]
    pub(crate) fn value(&self) -> &[u8] {
        self.data.value(current_block(
            &self.chunk,
            &self.dbuf,
            self.blk_in_dbuf,
            self.blk_start,
            self.blk_end,
        ))
    }

    fn data_err(&self, e: BlockError) -> LdbError {
        corrupt(
            &self.table.path,
            self.blk_off + e.offset as u64,
            format!("data block: {}", e.msg),
        )
    }

    #[inline]
    fn check_key(&mut self) -> Result<()> {
        let k = self.data.key();
        if k.len() < 8 || k[k.len() - 8] > TYPE_VALUE {
            self.valid = false;
            return Err(corrupt(
                &self.table.path,
                self.blk_off,
                "data block holds a malformed internal key",
            ));
        }
        Ok(())
    }

    /// Makes the block the index cursor points at the current block.
    fn load_block(&mut self) -> Result<()> {
        let h = self.table.handle_at(&self.index)?;
        let path = &self.table.path;
        let need = h.size.checked_add(BLOCK_TRAILER);
        let end = need.and_then(|n| h.offset.checked_add(n));
        let (Some(need), Some(end)) = (need, end) else {
            return Err(corrupt(path, h.offset, "data block handle out of range"));
        };
        if end > self.table.data_end {
            return Err(corrupt(path, h.offset, "data block handle out of range"));
        }
        let chunk_end = self.chunk_off + self.chunk_len as u64;
        if h.offset < self.chunk_off || end > chunk_end {
            // `end <= data_end <= file size`, so this allocation is bounded by the file.
            let want = (need as usize)
                .max(self.readahead)
                .min((self.table.data_end - h.offset) as usize);
            if self.chunk.len() < want {
                self.chunk.resize(want, 0);
            }
            self.chunk_len = 0;
            read_exact(&self.table.file, path, &mut self.chunk[..want], h.offset)?;
            self.chunk_off = h.offset;
            self.chunk_len = want;
            self.readahead = (self.readahead * 4).min(MAX_READAHEAD);
        }
        let start = (h.offset - self.chunk_off) as usize;
        let raw = &self.chunk[start..start + need as usize];
        let ctype = verify_block(path, h.offset, raw)?;
        self.blk_off = h.offset;
        if ctype == NO_COMPRESSION {
            self.blk_in_dbuf = false;
            self.blk_start = start;
            self.blk_end = start + h.size as usize;
        } else {
            decompress(
                path,
                h.offset,
                ctype,
                &raw[..h.size as usize],
                &mut self.dbuf,
            )?;
            self.blk_in_dbuf = true;
        }
        let block = current_block(
            &self.chunk,
            &self.dbuf,
            self.blk_in_dbuf,
            self.blk_start,
            self.blk_end,
        );
        if let Err(e) = self.data.init(block) {
            return Err(self.data_err(e));
        }
        Ok(())
    }

    /// Loads the block the index points at and moves to its first entry; false
    /// when the block is empty.
    fn enter_current_block(&mut self) -> Result<bool> {
        self.load_block()?;
        let block = current_block(
            &self.chunk,
            &self.dbuf,
            self.blk_in_dbuf,
            self.blk_start,
            self.blk_end,
        );
        match self.data.seek_to_first(block) {
            Ok(found) => Ok(found),
            Err(e) => {
                self.valid = false;
                Err(self.data_err(e))
            }
        }
    }

    /// Moves to the first entry of the next non-empty block (or becomes invalid).
    fn next_block(&mut self) -> Result<()> {
        loop {
            let more = self
                .index
                .next(&self.table.index)
                .map_err(|e| self.table.index_err(e))?;
            if !more {
                self.valid = false;
                return Ok(());
            }
            if self.enter_current_block()? {
                self.valid = true;
                return self.check_key();
            }
        }
    }

    pub(crate) fn seek_to_first(&mut self) -> Result<()> {
        self.valid = false;
        let first = self
            .index
            .seek_to_first(&self.table.index)
            .map_err(|e| self.table.index_err(e))?;
        if !first {
            return Ok(());
        }
        if self.enter_current_block()? {
            self.valid = true;
            self.check_key()
        } else {
            self.next_block()
        }
    }

    /// Moves to the first entry whose internal key is >= `target`.
    pub(crate) fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.valid = false;
        let found = self
            .index
            .seek(&self.table.index, target)
            .map_err(|e| self.table.index_err(e))?;
        if !found {
            return Ok(());
        }
        self.load_block()?;
        let block = current_block(
            &self.chunk,
            &self.dbuf,
            self.blk_in_dbuf,
            self.blk_start,
            self.blk_end,
        );
        match self.data.seek(block, target) {
            Ok(true) => {
                self.valid = true;
                self.check_key()
            }
            Ok(false) => self.next_block(),
            Err(e) => Err(self.data_err(e)),
        }
    }

    #[inline]
    pub(crate) fn next(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        let block = current_block(
            &self.chunk,
            &self.dbuf,
            self.blk_in_dbuf,
            self.blk_start,
            self.blk_end,
        );
        match self.data.next(block) {
            Ok(true) => self.check_key(),
            Ok(false) => self.next_block(),
            Err(e) => {
                self.valid = false;
                Err(self.data_err(e))
            }
        }
    }
}
