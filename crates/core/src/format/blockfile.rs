//! Reading `blk*.dat` and `rev*.dat` (`node/blockstorage.cpp`).
//!
//! Both files are sequences of records `magic (4) | size (4, LE) | payload (size)`;
//! undo records are followed by a 32-byte checksum. Block index entries point at the
//! payload (`nDataPos`/`nUndoPos`), 8 bytes past the record start. Since Core 28 the
//! files' bytes are XORed with the 8-byte key in `blocks/xor.dat`, by absolute file
//! offset. Files are pre-allocated in chunks, so past the last record there are zero
//! bytes (raw zeros on disk, not XORed).
//!
//! Everything here only reads, and every framing problem is reported with the file's
//! path and the offset of the record.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bitcoin::hashes::{sha256d, Hash, HashEngine};
use bitcoin::BlockHash;

use super::{FormatError, Result};

/// Core's `MAX_BLOCK_SERIALIZED_SIZE`: no valid block is larger, and Core only stores
/// blocks that passed that check.
pub const MAX_BLOCK_SERIALIZED_SIZE: u32 = 4_000_000;

/// Core's `STORAGE_HEADER_BYTES`: magic and size before every payload.
pub const STORAGE_HEADER_BYTES: u32 = 8;

/// Length of the checksum after each undo payload (`UNDO_DATA_DISK_OVERHEAD` minus the
/// header).
pub const UNDO_CHECKSUM_BYTES: u32 = 32;

/// The two kinds of flat files, which share the record framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Block,
    Undo,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Block => "blk",
            Kind::Undo => "rev",
        }
    }

    /// Bytes after the payload that belong to the record.
    fn trailer(self) -> u32 {
        match self {
            Kind::Block => 0,
            Kind::Undo => UNDO_CHECKSUM_BYTES,
        }
    }
}

/// Read access to a `blocks/` directory: knows the network magic and the XOR key, so
/// callers ask for a block or undo payload by its index position and get plain bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockFiles {
    dir: PathBuf,
    magic: [u8; 4],
    xor_key: [u8; 8],
}

impl BlockFiles {
    /// Opens `blocks_dir` for a network with record magic `magic`, reading the XOR
    /// key from `xor.dat`. A missing `xor.dat` means no obfuscation (datadirs from
    /// before Core 28, or `-blocksxor=0`); a file that is not exactly 8 bytes is an
    /// error.
    pub fn open(blocks_dir: &Path, magic: [u8; 4]) -> Result<BlockFiles> {
        let xor_path = blocks_dir.join("xor.dat");
        let xor_key = match std::fs::read(&xor_path) {
            Ok(bytes) => {
                <[u8; 8]>::try_from(bytes.as_slice()).map_err(|_| FormatError::BadRecord {
                    path: xor_path.display().to_string(),
                    offset: 0,
                    detail: format!("XOR key file holds {} bytes, expected 8", bytes.len()),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => [0; 8],
            Err(e) => return Err(io_error(&xor_path, &e)),
        };
        Ok(BlockFiles {
            dir: blocks_dir.to_path_buf(),
            magic,
            xor_key,
        })
    }

    /// The directory the files are read from.
    pub fn blocks_dir(&self) -> &Path {
        &self.dir
    }

    /// The XOR key in use (all zeros when the files are not obfuscated).
    pub fn xor_key(&self) -> [u8; 8] {
        self.xor_key
    }

    /// Path of `blk{file:05}.dat`.
    pub fn block_path(&self, file: u32) -> PathBuf {
        self.path(Kind::Block, file)
    }

    /// Path of `rev{file:05}.dat`.
    pub fn undo_path(&self, file: u32) -> PathBuf {
        self.path(Kind::Undo, file)
    }

    fn path(&self, kind: Kind, file: u32) -> PathBuf {
        self.dir.join(format!("{}{file:05}.dat", kind.prefix()))
    }

    /// The raw (de-XORed) bytes of the block whose payload starts at `data_pos` in
    /// `blk{file}.dat`, after checking the record's magic and size.
    pub fn read_block(&self, file: u32, data_pos: u32) -> Result<Vec<u8>> {
        let mut f = OpenFile::open(self.path(Kind::Block, file))?;
        self.read_payload(&mut f, Kind::Block, data_pos)
    }

    /// The undo payload (a `CBlockUndo`, see [`super::decode_block_undo`]) at
    /// `undo_pos` in `rev{file}.dat`, after verifying its checksum.
    ///
    /// `prev_block_hash` must be the hash of the *parent* of the block the undo data
    /// belongs to (its header's `prev_blockhash`): Core's checksum is
    /// double-SHA256(parent hash ‖ payload) (`WriteBlockUndo`/`ReadBlockUndo`).
    pub fn read_undo(
        &self,
        file: u32,
        undo_pos: u32,
        prev_block_hash: &BlockHash,
    ) -> Result<Vec<u8>> {
        let (payload, stored) = self.read_undo_unverified(file, undo_pos)?;
        let computed = undo_checksum(prev_block_hash, &payload);
        if computed != stored {
            return Err(FormatError::BadRecord {
                path: self.path(Kind::Undo, file).display().to_string(),
                offset: u64::from(undo_pos),
                detail: format!(
                    "undo checksum mismatch for parent block {prev_block_hash}: the record belongs to another block or is corrupt"
                ),
            });
        }
        Ok(payload)
    }

    /// The undo payload at `undo_pos` and the checksum stored after it, without
    /// verifying it: for tools that must find out which block a record belongs to.
    pub fn read_undo_unverified(&self, file: u32, undo_pos: u32) -> Result<(Vec<u8>, [u8; 32])> {
        let mut f = OpenFile::open(self.path(Kind::Undo, file))?;
        let payload = self.read_payload(&mut f, Kind::Undo, undo_pos)?;
        // The payload check guaranteed the checksum lies within the file.
        let checksum_at = u64::from(undo_pos) + payload.len() as u64;
        let checksum = f.read_at(checksum_at, UNDO_CHECKSUM_BYTES as usize, &self.xor_key)?;
        let checksum: [u8; 32] = checksum.try_into().map_err(|_| FormatError::BadRecord {
            path: f.path_string(),
            offset: checksum_at,
            detail: "short undo checksum".into(),
        })?;
        Ok((payload, checksum))
    }

    /// Every block record of `blk{file}.dat` in file order, as (payload offset, size).
    /// Stops at the zero-padded tail; a bad magic or a record running past the end
    /// of the file is an error.
    pub fn scan_blocks(&self, file: u32) -> Result<Vec<(u32, u32)>> {
        self.scan(Kind::Block, file)
    }

    /// Every undo record of `rev{file}.dat` in file order, as (payload offset, payload
    /// size); each is followed by its 32-byte checksum. Same rules as
    /// [`BlockFiles::scan_blocks`].
    pub fn scan_undo(&self, file: u32) -> Result<Vec<(u32, u32)>> {
        self.scan(Kind::Undo, file)
    }

    fn scan(&self, kind: Kind, file: u32) -> Result<Vec<(u32, u32)>> {
        let mut f = OpenFile::open(self.path(kind, file))?;
        let mut records = Vec::new();
        let mut pos: u64 = 0;
        while pos < f.len {
            let left = f.len - pos;
            let head_len = left.min(u64::from(STORAGE_HEADER_BYTES)) as usize;
            let raw = f.read_raw_at(pos, head_len)?;
            if raw
                .get(..4.min(head_len))
                .is_some_and(|m| m.iter().all(|&b| b == 0))
            {
                // Pre-allocated space: raw zeros where the next magic would be.
                break;
            }
            let payload_pos = pos + u64::from(STORAGE_HEADER_BYTES);
            let payload_pos = u32::try_from(payload_pos).map_err(|_| FormatError::BadRecord {
                path: f.path_string(),
                offset: pos,
                detail: "record beyond the 4 GiB positions a block index can hold".into(),
            })?;
            let size = self.check_header(&mut f, kind, payload_pos)?;
            records.push((payload_pos, size));
            pos = u64::from(payload_pos) + u64::from(size) + u64::from(kind.trailer());
        }
        Ok(records)
    }

    /// Checks the record header before `payload_pos` and returns the payload size.
    fn check_header(&self, f: &mut OpenFile, kind: Kind, payload_pos: u32) -> Result<u32> {
        let Some(header_pos) = payload_pos.checked_sub(STORAGE_HEADER_BYTES) else {
            return Err(FormatError::BadRecord {
                path: f.path_string(),
                offset: u64::from(payload_pos),
                detail: format!(
                    "payload position {payload_pos} leaves no room for the record header"
                ),
            });
        };
        let header_pos = u64::from(header_pos);
        if header_pos + u64::from(STORAGE_HEADER_BYTES) > f.len {
            return Err(FormatError::BadRecord {
                path: f.path_string(),
                offset: header_pos,
                detail: format!(
                    "record header runs past the end of the file ({} bytes)",
                    f.len
                ),
            });
        }
        let header = f.read_at(header_pos, STORAGE_HEADER_BYTES as usize, &self.xor_key)?;
        let (magic, size) = match header.as_slice() {
            [m0, m1, m2, m3, s0, s1, s2, s3] => (
                [*m0, *m1, *m2, *m3],
                u32::from_le_bytes([*s0, *s1, *s2, *s3]),
            ),
            _ => {
                return Err(FormatError::BadRecord {
                    path: f.path_string(),
                    offset: header_pos,
                    detail: "short record header".into(),
                })
            }
        };
        if magic != self.magic {
            return Err(FormatError::BadRecord {
                path: f.path_string(),
                offset: header_pos,
                detail: format!(
                    "record magic {} is not the network's {} (wrong network, wrong XOR key or not a record start)",
                    hex(&magic),
                    hex(&self.magic)
                ),
            });
        }
        if size == 0 {
            return Err(FormatError::BadRecord {
                path: f.path_string(),
                offset: header_pos,
                detail: "record of size 0".into(),
            });
        }
        if kind == Kind::Block && size > MAX_BLOCK_SERIALIZED_SIZE {
            return Err(FormatError::BadRecord {
                path: f.path_string(),
                offset: header_pos,
                detail: format!(
                    "block size {size} above MAX_BLOCK_SERIALIZED_SIZE {MAX_BLOCK_SERIALIZED_SIZE}"
                ),
            });
        }
        let end = u64::from(payload_pos) + u64::from(size) + u64::from(kind.trailer());
        if end > f.len {
            return Err(FormatError::BadRecord {
                path: f.path_string(),
                offset: header_pos,
                detail: format!(
                    "truncated record: {size}-byte payload at {payload_pos} ends at {end}, past the end of the file ({} bytes)",
                    f.len
                ),
            });
        }
        Ok(size)
    }

    fn read_payload(&self, f: &mut OpenFile, kind: Kind, payload_pos: u32) -> Result<Vec<u8>> {
        let size = self.check_header(f, kind, payload_pos)?;
        f.read_at(u64::from(payload_pos), size as usize, &self.xor_key)
    }
}

/// Core's undo checksum: double-SHA256 of the parent block's hash (internal byte
/// order) followed by the undo payload.
pub fn undo_checksum(prev_block_hash: &BlockHash, undo: &[u8]) -> [u8; 32] {
    let mut engine = sha256d::Hash::engine();
    engine.input(prev_block_hash.as_byte_array());
    engine.input(undo);
    sha256d::Hash::from_engine(engine).to_byte_array()
}

/// An open flat file and its length.
struct OpenFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl OpenFile {
    fn open(path: PathBuf) -> Result<OpenFile> {
        let file = File::open(&path).map_err(|e| io_error(&path, &e))?;
        let len = file.metadata().map_err(|e| io_error(&path, &e))?.len();
        Ok(OpenFile { path, file, len })
    }

    fn path_string(&self) -> String {
        self.path.display().to_string()
    }

    /// `len` bytes at `offset` as stored on disk. Callers check the range first.
    fn read_raw_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| FormatError::Io {
                path: self.path_string(),
                detail: format!("reading {len} bytes at offset {offset}: {e}"),
            })?;
        Ok(buf)
    }

    /// `len` bytes at `offset` with the XOR key removed.
    fn read_at(&mut self, offset: u64, len: usize, key: &[u8; 8]) -> Result<Vec<u8>> {
        let mut buf = self.read_raw_at(offset, len)?;
        if key != &[0; 8] {
            // offset % 8 < 8, so the rotation index is in range.
            let start = (offset % 8) as usize;
            for (byte, k) in buf.iter_mut().zip(key.iter().cycle().skip(start)) {
                *byte ^= k;
            }
        }
        Ok(buf)
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> FormatError {
    FormatError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
    const KEY: [u8; 8] = [0x42, 0x6e, 0xbd, 0x86, 0xce, 0xde, 0x04, 0x4c];

    fn xor(bytes: &mut [u8], start: u64, key: &[u8; 8]) {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b ^= key[((start + i as u64) % 8) as usize];
        }
    }

    /// Writes a file of records (each payload followed by `trailer` bytes of 0x77),
    /// XORed with `key`, plus `padding` raw zero bytes.
    fn write_file(
        path: &Path,
        payloads: &[Vec<u8>],
        trailer: usize,
        padding: usize,
        key: &[u8; 8],
    ) {
        let mut plain = Vec::new();
        for p in payloads {
            plain.extend_from_slice(&MAGIC);
            plain.extend_from_slice(&(p.len() as u32).to_le_bytes());
            plain.extend_from_slice(p);
            plain.extend(std::iter::repeat_n(0x77, trailer));
        }
        xor(&mut plain, 0, key);
        plain.extend(std::iter::repeat_n(0, padding));
        std::fs::write(path, plain).unwrap();
    }

    fn setup(key: Option<&[u8]>) -> (tempfile::TempDir, BlockFiles) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(key) = key {
            std::fs::write(dir.path().join("xor.dat"), key).unwrap();
        }
        let files = BlockFiles::open(dir.path(), MAGIC).unwrap();
        (dir, files)
    }

    #[test]
    fn xor_key_file_rules() {
        let (_d, files) = setup(None);
        assert_eq!(files.xor_key(), [0; 8]);
        let (_d, files) = setup(Some(&KEY));
        assert_eq!(files.xor_key(), KEY);
        for bad in [&[][..], &[1, 2, 3][..], &[0; 9][..]] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("xor.dat"), bad).unwrap();
            assert!(matches!(
                BlockFiles::open(dir.path(), MAGIC),
                Err(FormatError::BadRecord { offset: 0, .. })
            ));
        }
    }

    #[test]
    fn scan_and_read_blocks_with_and_without_xor() {
        for key in [None, Some(KEY)] {
            let (dir, files) = setup(key.as_ref().map(|k| &k[..]));
            let payloads = vec![vec![1u8; 5], vec![2u8; 300], vec![3u8; 1]];
            write_file(
                &dir.path().join("blk00007.dat"),
                &payloads,
                0,
                100,
                &key.unwrap_or([0; 8]),
            );
            let records = files.scan_blocks(7).unwrap();
            assert_eq!(records, vec![(8, 5), (21, 300), (329, 1)]);
            for ((pos, _), payload) in records.iter().zip(&payloads) {
                assert_eq!(&files.read_block(7, *pos).unwrap(), payload);
            }
            // Not a record start.
            assert!(matches!(
                files.read_block(7, 9),
                Err(FormatError::BadRecord { offset: 1, .. })
            ));
            assert!(matches!(
                files.read_block(7, 4),
                Err(FormatError::BadRecord { .. })
            ));
            // Past the end of the file.
            assert!(files.read_block(7, 10_000).is_err());
            // Missing file.
            assert!(matches!(
                files.read_block(8, 8),
                Err(FormatError::Io { .. })
            ));
        }
    }

    #[test]
    fn scan_without_padding_and_empty_file() {
        let (dir, files) = setup(Some(&KEY));
        write_file(&dir.path().join("blk00000.dat"), &[vec![9; 10]], 0, 0, &KEY);
        assert_eq!(files.scan_blocks(0).unwrap(), vec![(8, 10)]);
        write_file(&dir.path().join("blk00001.dat"), &[], 0, 0, &KEY);
        assert_eq!(files.scan_blocks(1).unwrap(), vec![]);
        // Padding shorter than a header.
        write_file(&dir.path().join("blk00002.dat"), &[vec![9; 10]], 0, 3, &KEY);
        assert_eq!(files.scan_blocks(2).unwrap(), vec![(8, 10)]);
    }

    #[test]
    fn scan_reports_truncated_and_bad_records() {
        let (dir, files) = setup(Some(&KEY));
        let path = dir.path().join("blk00000.dat");
        write_file(&path, &[vec![1; 20], vec![2; 20]], 0, 0, &KEY);
        let full = std::fs::read(&path).unwrap();
        // Cut inside the second payload.
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        match files.scan_blocks(0) {
            Err(FormatError::BadRecord {
                path: p,
                offset,
                detail,
            }) => {
                assert!(p.ends_with("blk00000.dat"), "{p}");
                assert_eq!(offset, 28);
                assert!(detail.contains("truncated"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // Cut inside the second header (not zero: an error, not padding).
        std::fs::write(&path, &full[..28 + 6]).unwrap();
        assert!(files.scan_blocks(0).is_err());
        // Garbage where a magic should be.
        let mut garbage = full.clone();
        garbage[28] ^= 0xff;
        std::fs::write(&path, &garbage).unwrap();
        assert!(matches!(
            files.scan_blocks(0),
            Err(FormatError::BadRecord { offset: 28, .. })
        ));
        // Size zero and oversized blocks.
        for size in [0u32, MAX_BLOCK_SERIALIZED_SIZE + 1] {
            let mut plain = MAGIC.to_vec();
            plain.extend_from_slice(&size.to_le_bytes());
            plain.extend_from_slice(&[0u8; 16]);
            xor(&mut plain, 0, &KEY);
            std::fs::write(&path, &plain).unwrap();
            assert!(files.scan_blocks(0).is_err());
            assert!(files.read_block(0, 8).is_err());
        }
        // Wrong network.
        write_file(&path, &[vec![1; 20]], 0, 0, &KEY);
        let other = BlockFiles::open(dir.path(), [0xf9, 0xbe, 0xb4, 0xd9]).unwrap();
        assert!(other.scan_blocks(0).is_err());
        assert!(other.read_block(0, 8).is_err());
    }

    #[test]
    fn undo_records_and_checksums() {
        let (dir, files) = setup(Some(&KEY));
        let prev = BlockHash::from_byte_array([0x5a; 32]);
        let payload = vec![0x01, 0x01, 0x00, 0x01, 0x07, 0x51];
        let checksum = undo_checksum(&prev, &payload);
        let mut plain = Vec::new();
        plain.extend_from_slice(&MAGIC);
        plain.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        plain.extend_from_slice(&payload);
        plain.extend_from_slice(&checksum);
        xor(&mut plain, 0, &KEY);
        plain.extend_from_slice(&[0; 64]);
        std::fs::write(dir.path().join("rev00003.dat"), &plain).unwrap();

        assert_eq!(files.scan_undo(3).unwrap(), vec![(8, 6)]);
        assert_eq!(files.read_undo(3, 8, &prev).unwrap(), payload);
        assert_eq!(
            files.read_undo_unverified(3, 8).unwrap(),
            (payload.clone(), checksum)
        );
        let other = BlockHash::from_byte_array([0x5b; 32]);
        assert!(matches!(
            files.read_undo(3, 8, &other),
            Err(FormatError::BadRecord { offset: 8, .. })
        ));
        // The checksum must fit in the file.
        let cut = &plain[..8 + 6 + 31];
        std::fs::write(dir.path().join("rev00004.dat"), cut).unwrap();
        assert!(files.read_undo(4, 8, &prev).is_err());
        assert!(files.scan_undo(4).is_err());
    }

    /// double-SHA256 of 32 zero bytes followed by nothing, computed independently:
    /// sha256(sha256(0^32)).
    #[test]
    fn checksum_known_vector() {
        let zero = BlockHash::from_byte_array([0; 32]);
        assert_eq!(
            hex(&undo_checksum(&zero, &[])),
            "2b32db6c2c0a6235fb1397e8225ea85e0f0e6e8c7b126d0016ccbde0e667151e"
        );
    }
}
