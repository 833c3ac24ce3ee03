//! LevelDB's log format (used by `NNNNNN.log` write-ahead logs and by `MANIFEST-NNNNNN`).
//!
//! The file is a sequence of 32 KiB blocks. Each block holds physical records: a 7-byte
//! header (masked CRC32C of type + payload, u16 payload length, u8 type) and the payload.
//! A logical record is one FULL record, or FIRST, MIDDLE*, LAST. Fewer than 7 bytes left
//! in a block are zero padding.
//!
//! The reader follows `db/log_reader.cc` with `paranoid_checks` on (as Bitcoin Core sets
//! it): a checksum mismatch or malformed record is an error, but a record cut short by the
//! end of the file (the writer crashed, or is writing right now) ends the log quietly,
//! together with any fragmented record it belonged to.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::coding::{fixed32, mask_crc};
use super::{LdbError, Result};

pub(crate) const BLOCK_SIZE: usize = 32 * 1024;
pub(crate) const HEADER_SIZE: usize = 7;

const ZERO_TYPE: u8 = 0;
pub(crate) const FULL_TYPE: u8 = 1;
pub(crate) const FIRST_TYPE: u8 = 2;
pub(crate) const MIDDLE_TYPE: u8 = 3;
pub(crate) const LAST_TYPE: u8 = 4;

/// Reads logical records from a log file, up to the length the file had when the reader
/// was created. Reads one 32 KiB block at a time.
pub(crate) struct LogReader<'a> {
    file: &'a File,
    path: &'a Path,
    file_len: u64,
    block: Vec<u8>,
    /// File offset of `block[0]`.
    block_off: u64,
    /// Valid bytes in `block`.
    block_len: usize,
    /// Next unread byte in `block`.
    pos: usize,
    /// Set once the reader has hit the end of the data (cleanly or at a torn record).
    eof: bool,
    /// True when the last read ended at a torn (incomplete) record.
    torn_tail: bool,
}

impl<'a> LogReader<'a> {
    pub(crate) fn new(file: &'a File, path: &'a Path, file_len: u64) -> Self {
        LogReader {
            file,
            path,
            file_len,
            block: vec![0; BLOCK_SIZE],
            block_off: 0,
            block_len: 0,
            pos: 0,
            eof: false,
            torn_tail: false,
        }
    }

    /// True if the log ended with an incomplete record that was dropped.
    pub(crate) fn torn_tail(&self) -> bool {
        self.torn_tail
    }

    fn corruption(&self, offset: u64, msg: impl Into<String>) -> LdbError {
        LdbError::Corruption {
            path: self.path.to_path_buf(),
            offset,
            msg: msg.into(),
        }
    }

    /// Loads the block after the current one. Returns false at the end of the file.
    fn load_next_block(&mut self) -> Result<bool> {
        let next_off = self.block_off + self.block_len as u64;
        if next_off >= self.file_len {
            return Ok(false);
        }
        let n = (self.file_len - next_off).min(BLOCK_SIZE as u64) as usize;
        let buf = self
            .block
            .get_mut(..n)
            .ok_or_else(|| LdbError::Corruption {
                path: self.path.to_path_buf(),
                offset: next_off,
                msg: "log block size".into(),
            })?;
        self.file
            .read_exact_at(buf, next_off)
            .map_err(|e| LdbError::io(self.path, Some(next_off), e))?;
        self.block_off = next_off;
        self.block_len = n;
        self.pos = 0;
        Ok(true)
    }

    /// Reads the next logical record into `out`. Returns the file offset where the record
    /// starts, or `None` at the end of the log.
    pub(crate) fn read_record(&mut self, out: &mut Vec<u8>) -> Result<Option<u64>> {
        out.clear();
        let mut in_fragment = false;
        let mut record_start = 0u64;
        if self.eof {
            return Ok(None);
        }
        loop {
            let left = self.block_len - self.pos;
            if left < HEADER_SIZE {
                // A block trailer (zero padding), or a header cut short by the end of the file.
                let leftover_nonzero = self.block[self.pos..self.block_len].iter().any(|&b| b != 0);
                if !self.load_next_block()? {
                    self.eof = true;
                    if in_fragment || leftover_nonzero {
                        self.torn_tail = true;
                    }
                    return Ok(None);
                }
                continue;
            }
            let hdr_off = self.block_off + self.pos as u64;
            let header = &self.block[self.pos..self.pos + HEADER_SIZE];
            let stored_crc = fixed32(header, 0).unwrap_or(0);
            let length = usize::from(header[4]) | (usize::from(header[5]) << 8);
            let rtype = header[6];
            if HEADER_SIZE + length > left {
                if self.block_len < BLOCK_SIZE {
                    // Only the file's last block can be short.
                    // The writer died (or is still writing) in the middle of this record.
                    self.eof = true;
                    self.torn_tail = true;
                    return Ok(None);
                }
                return Err(self.corruption(hdr_off, format!("bad record length {length}")));
            }
            if rtype == ZERO_TYPE && length == 0 {
                // Pre-allocated zeros: LevelDB skips the rest of the block silently.
                if in_fragment && !out.is_empty() {
                    return Err(self
                        .corruption(hdr_off, "zero record in the middle of a fragmented record"));
                }
                self.pos = self.block_len;
                continue;
            }
            let body = &self.block[self.pos + HEADER_SIZE - 1..self.pos + HEADER_SIZE + length];
            let actual = mask_crc(crc32c::crc32c(body));
            if actual != stored_crc {
                return Err(self.corruption(hdr_off, "log record checksum mismatch"));
            }
            let payload = &self.block[self.pos + HEADER_SIZE..self.pos + HEADER_SIZE + length];
            self.pos += HEADER_SIZE + length;
            match rtype {
                FULL_TYPE => {
                    if in_fragment && !out.is_empty() {
                        return Err(self.corruption(hdr_off, "partial record without end"));
                    }
                    out.clear();
                    out.extend_from_slice(payload);
                    return Ok(Some(hdr_off));
                }
                FIRST_TYPE => {
                    if in_fragment && !out.is_empty() {
                        return Err(self.corruption(hdr_off, "partial record without end"));
                    }
                    out.clear();
                    out.extend_from_slice(payload);
                    in_fragment = true;
                    record_start = hdr_off;
                }
                MIDDLE_TYPE => {
                    if !in_fragment {
                        return Err(self.corruption(hdr_off, "missing start of fragmented record"));
                    }
                    out.extend_from_slice(payload);
                }
                LAST_TYPE => {
                    if !in_fragment {
                        return Err(self.corruption(hdr_off, "missing start of fragmented record"));
                    }
                    out.extend_from_slice(payload);
                    return Ok(Some(record_start));
                }
                other => {
                    return Err(
                        self.corruption(hdr_off, format!("unknown log record type {other}"))
                    );
                }
            }
        }
    }
}
