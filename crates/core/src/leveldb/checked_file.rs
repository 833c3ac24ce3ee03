//! Positional reads of a table file that refuse any block whose checksum fails.
//!
//! The index is written by rusty-leveldb, whose table reader passes over a block that
//! fails its checksum (its iterators go on to the next block, `Version::get` goes on to
//! the next table) and reads bloom filter blocks without checking them at all. A range
//! scan or a compaction over a damaged block therefore leaves keys out, and a deletion
//! left out brings a spent output back. Its file reads all come through one
//! `read_at(offset, len)` per block, so checking there catches every damaged block,
//! whichever of its code paths reads it: the caller learns of the failure here even
//! when rusty-leveldb swallows the error it gets.
//!
//! A table is read as: the 48-byte footer; whole blocks with their 5-byte trailer
//! (data, index, metaindex); the filter block without its trailer. The footer and the
//! metaindex (which locates the filter) are checked when the file is opened.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::block::BlockCursor;
use super::coding::{fixed32, fixed64, mask_crc};
use super::table::{
    corrupt, decode_handle, decompress, read_exact, verify_block, BlockHandle, BLOCK_TRAILER,
    FOOTER_LEN, NO_COMPRESSION, TABLE_MAGIC,
};
use super::{LdbError, Result};

/// A table file whose every positional read is checked against the table's layout and
/// its blocks' CRC32C.
#[derive(Debug)]
pub struct CheckedTableFile {
    path: PathBuf,
    file: File,
    pub(super) footer_off: u64,
    /// The filter block, read without its trailer by rusty-leveldb.
    pub(super) filter: Option<BlockHandle>,
}

impl CheckedTableFile {
    /// Opens the table at `path`, checking its footer and its metaindex block.
    pub fn open(path: &Path) -> Result<CheckedTableFile> {
        let file = File::open(path).map_err(|e| LdbError::open_err(path, e))?;
        let size = file
            .metadata()
            .map_err(|e| LdbError::io(path, None, e))?
            .len();
        let Some(footer_off) = size.checked_sub(FOOTER_LEN) else {
            return Err(corrupt(
                path,
                0,
                format!("{size} bytes is too short for a table"),
            ));
        };
        let mut footer = [0u8; FOOTER_LEN as usize];
        read_exact(&file, path, &mut footer, footer_off)?;
        if fixed64(&footer, 40) != Some(TABLE_MAGIC) {
            return Err(corrupt(path, size - 8, "bad table magic number"));
        }
        let mut pos = 0;
        let metaindex = decode_handle(&footer, &mut pos)
            .filter(|_| pos <= 40)
            .filter(|h| block_end(h).is_some_and(|e| e <= footer_off))
            .ok_or_else(|| corrupt(path, footer_off, "bad metaindex handle in the footer"))?;
        let filter = read_filter_handle(&file, path, metaindex)?;
        if filter.is_some_and(|h| block_end(&h).is_none_or(|e| e > footer_off)) {
            return Err(corrupt(
                path,
                metaindex.offset,
                "filter block handle out of range",
            ));
        }
        Ok(CheckedTableFile {
            path: path.to_path_buf(),
            file,
            footer_off,
            filter,
        })
    }

    /// The file's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills `dst` from `offset` and checks it: the footer as it is, the filter block
    /// with its trailer (read here), anything else as a block followed by its trailer.
    /// A short read or a failed checksum is an error, never partial data.
    pub fn read_at(&self, offset: u64, dst: &mut [u8]) -> Result<()> {
        let len = dst.len() as u64;
        read_exact(&self.file, &self.path, dst, offset)?;
        if offset == self.footer_off && len == FOOTER_LEN {
            return Ok(());
        }
        if self.filter == Some(BlockHandle { offset, size: len }) {
            let mut trailer = [0u8; BLOCK_TRAILER as usize];
            read_exact(&self.file, &self.path, &mut trailer, offset + len)?;
            let crc = crc32c::crc32c_append(crc32c::crc32c(dst), &trailer[..1]);
            if fixed32(&trailer, 1) != Some(mask_crc(crc)) {
                return Err(corrupt(
                    &self.path,
                    offset,
                    "filter block checksum mismatch",
                ));
            }
            return Ok(());
        }
        verify_block(&self.path, offset, dst).map(|_| ())
    }
}

/// End of a block with its trailer, or `None` when it overflows.
fn block_end(h: &BlockHandle) -> Option<u64> {
    h.offset.checked_add(h.size)?.checked_add(BLOCK_TRAILER)
}

/// Reads the metaindex block at `h` (checking it) and returns the handle of its
/// `filter.*` entry, if any.
fn read_filter_handle(file: &File, path: &Path, h: BlockHandle) -> Result<Option<BlockHandle>> {
    let len = usize::try_from(h.size + BLOCK_TRAILER)
        .map_err(|_| corrupt(path, h.offset, "metaindex block too large"))?;
    let mut raw = vec![0u8; len];
    read_exact(file, path, &mut raw, h.offset)?;
    let ctype = verify_block(path, h.offset, &raw)?;
    raw.truncate(h.size as usize);
    let mut plain = Vec::new();
    let data = if ctype == NO_COMPRESSION {
        &raw
    } else {
        decompress(path, h.offset, ctype, &raw, &mut plain)?;
        &plain
    };
    let bad = |msg: &'static str| corrupt(path, h.offset, format!("metaindex block: {msg}"));
    let mut c = BlockCursor::new();
    c.init(data).map_err(|e| bad(e.msg))?;
    let mut ok = c.seek_to_first(data).map_err(|e| bad(e.msg))?;
    while ok {
        if c.key().starts_with(b"filter.") {
            let mut p = 0;
            let handle = decode_handle(c.value(data), &mut p)
                .ok_or_else(|| bad("bad filter block handle"))?;
            return Ok(Some(handle));
        }
        ok = c.next(data).map_err(|e| bad(e.msg))?;
    }
    Ok(None)
}
