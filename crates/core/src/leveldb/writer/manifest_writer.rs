//! The MANIFEST (one version edit, in LevelDB's log format) and `CURRENT`.
//!
//! Log format (`db/log_writer.cc`): 32 KiB blocks; each physical record is a 7-byte
//! header (fixed32 masked CRC32C of type + payload, fixed16 length, u8 type) and the
//! payload. A record that does not fit in the rest of a block is split into FIRST,
//! MIDDLE*, LAST fragments; fewer than 7 bytes left at the end of a block are zero-filled.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::block_builder::{put_length_prefixed, put_varint32, put_varint64};
use super::table_writer::FinishedTable;
use crate::leveldb::coding::mask_crc;
use crate::leveldb::log_reader::{
    BLOCK_SIZE, FIRST_TYPE, FULL_TYPE, HEADER_SIZE, LAST_TYPE, MIDDLE_TYPE,
};
use crate::leveldb::manifest::{
    BYTEWISE_COMPARATOR, TAG_COMPARATOR, TAG_LAST_SEQUENCE, TAG_LOG_NUMBER, TAG_NEW_FILE,
    TAG_NEXT_FILE,
};
use crate::leveldb::{LdbError, Result};

/// Appends log records to a buffer.
#[derive(Debug, Default)]
pub(crate) struct LogWriter {
    pub(crate) out: Vec<u8>,
    /// Offset within the current 32 KiB block.
    block_offset: usize,
}

impl LogWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends one logical record, fragmented across blocks as needed.
    pub(crate) fn add_record(&mut self, mut record: &[u8]) {
        let mut begin = true;
        loop {
            let leftover = BLOCK_SIZE - self.block_offset;
            if leftover < HEADER_SIZE {
                self.out.resize(self.out.len() + leftover, 0);
                self.block_offset = 0;
            }
            let avail = BLOCK_SIZE - self.block_offset - HEADER_SIZE;
            let len = record.len().min(avail);
            let end = len == record.len();
            let rtype = match (begin, end) {
                (true, true) => FULL_TYPE,
                (true, false) => FIRST_TYPE,
                (false, true) => LAST_TYPE,
                (false, false) => MIDDLE_TYPE,
            };
            let (frag, rest) = record.split_at(len);
            let crc = crc32c::crc32c_append(crc32c::crc32c(&[rtype]), frag);
            self.out.extend_from_slice(&mask_crc(crc).to_le_bytes());
            self.out.extend_from_slice(&(len as u16).to_le_bytes());
            self.out.push(rtype);
            self.out.extend_from_slice(frag);
            self.block_offset += HEADER_SIZE + len;
            record = rest;
            begin = false;
            if end {
                return;
            }
        }
    }
}

/// The version edit of a fresh database holding `tables` in `level`.
pub(crate) fn encode_edit(
    level: usize,
    tables: &[FinishedTable],
    next_file: u64,
    last_sequence: u64,
) -> Vec<u8> {
    let mut e = Vec::with_capacity(64 + tables.len() * 180);
    put_varint32(&mut e, TAG_COMPARATOR);
    put_length_prefixed(&mut e, BYTEWISE_COMPARATOR.as_bytes());
    // No log: the database's first open creates one with a new number.
    put_varint32(&mut e, TAG_LOG_NUMBER);
    put_varint64(&mut e, 0);
    put_varint32(&mut e, TAG_NEXT_FILE);
    put_varint64(&mut e, next_file);
    put_varint32(&mut e, TAG_LAST_SEQUENCE);
    put_varint64(&mut e, last_sequence);
    for t in tables {
        put_varint32(&mut e, TAG_NEW_FILE);
        put_varint32(&mut e, level as u32);
        put_varint64(&mut e, t.number);
        put_varint64(&mut e, t.size);
        put_length_prefixed(&mut e, &t.smallest);
        put_length_prefixed(&mut e, &t.largest);
    }
    e
}

/// Creates `path` (which must not exist), writes `bytes` and syncs it.
pub(crate) fn write_new_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| LdbError::io(path, None, e))?;
    f.write_all(bytes)
        .map_err(|e| LdbError::io(path, Some(0), e))?;
    f.sync_all().map_err(|e| LdbError::io(path, None, e))
}

/// Syncs a file or directory that is already written.
pub(crate) fn sync_path(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| LdbError::io(path, None, e))
}

/// Writes `MANIFEST-{number}` holding `edit`, then points `CURRENT` at it through a
/// synced temporary file and a rename, and syncs the directory.
pub(crate) fn install(dir: &Path, manifest_number: u64, edit: &[u8]) -> Result<()> {
    let name = format!("MANIFEST-{manifest_number:06}");
    let mut log = LogWriter::new();
    log.add_record(edit);
    write_new_synced(&dir.join(&name), &log.out)?;
    // The temporary name is the one LevelDB uses for CURRENT (`NNNNNN.dbtmp`).
    let tmp = dir.join(format!("{manifest_number:06}.dbtmp"));
    write_new_synced(&tmp, format!("{name}\n").as_bytes())?;
    let current = dir.join("CURRENT");
    std::fs::rename(&tmp, &current).map_err(|e| LdbError::io(&current, None, e))?;
    sync_path(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leveldb::log_reader::LogReader;

    /// Records of every awkward size, read back by the project's log reader.
    #[test]
    fn records_round_trip_across_blocks() {
        let avail = BLOCK_SIZE - HEADER_SIZE;
        let sizes = [
            0,
            1,
            100,
            avail - 1,
            avail,
            avail + 1,
            avail - HEADER_SIZE,
            avail - HEADER_SIZE + 1,
            3 * BLOCK_SIZE + 17,
            5,
            0,
            70_000,
        ];
        let records: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
            .collect();
        let mut w = LogWriter::new();
        for r in &records {
            w.add_record(r);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, &w.out).unwrap();
        let file = File::open(&path).unwrap();
        let mut reader = LogReader::new(&file, &path, w.out.len() as u64);
        let mut got = Vec::new();
        let mut rec = Vec::new();
        while reader.read_record(&mut rec).unwrap().is_some() {
            got.push(rec.clone());
        }
        assert_eq!(got, records);
        assert!(!reader.torn_tail());
    }

    #[test]
    fn install_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), 1, &encode_edit(6, &[], 2, 0)).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("CURRENT")).unwrap(),
            b"MANIFEST-000001\n"
        );
        assert!(install(dir.path(), 1, &encode_edit(6, &[], 2, 0)).is_err());
    }
}
