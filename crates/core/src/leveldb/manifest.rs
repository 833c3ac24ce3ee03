//! `CURRENT` and the MANIFEST (`db/version_set.cc`, `db/version_edit.cc`).
//!
//! `CURRENT` names the live MANIFEST; the MANIFEST is a log (see `log_reader`) of
//! version edits. Replaying every edit gives the live table files of each level, the
//! number of the oldest log still holding data not in a table, and the last sequence.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::coding::{get_length_prefixed, get_varint32, get_varint64};
use super::log_reader::LogReader;
use super::{LdbError, Result, NUM_LEVELS};

pub(crate) const TAG_COMPARATOR: u32 = 1;
pub(crate) const TAG_LOG_NUMBER: u32 = 2;
pub(crate) const TAG_NEXT_FILE: u32 = 3;
pub(crate) const TAG_LAST_SEQUENCE: u32 = 4;
const TAG_COMPACT_POINTER: u32 = 5;
const TAG_DELETED_FILE: u32 = 6;
pub(crate) const TAG_NEW_FILE: u32 = 7;
const TAG_PREV_LOG_NUMBER: u32 = 9;

pub(crate) const BYTEWISE_COMPARATOR: &str = "leveldb.BytewiseComparator";

/// A live table file as the MANIFEST describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileMeta {
    pub(crate) number: u64,
    pub(crate) size: u64,
    /// Smallest and largest internal keys in the file.
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
}

/// The state recovered from the MANIFEST.
#[derive(Debug)]
pub(crate) struct Version {
    pub(crate) manifest: PathBuf,
    pub(crate) log_number: u64,
    pub(crate) prev_log_number: u64,
    pub(crate) next_file: u64,
    pub(crate) last_sequence: u64,
    /// Live files per level, keyed by file number.
    pub(crate) levels: Vec<BTreeMap<u64, FileMeta>>,
}

/// Reads `dir/CURRENT` and returns the path of the MANIFEST it names.
pub(crate) fn read_current(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("CURRENT");
    let mut file = File::open(&path).map_err(|e| LdbError::open_err(&path, e))?;
    let mut buf = Vec::new();
    // CURRENT is one short line; never read more than a page of it.
    (&mut file)
        .take(4096)
        .read_to_end(&mut buf)
        .map_err(|e| LdbError::io(&path, Some(0), e))?;
    let corrupt = |msg: &str| LdbError::Corruption {
        path: path.clone(),
        offset: 0,
        msg: msg.to_string(),
    };
    let Some(line) = buf.strip_suffix(b"\n") else {
        return Err(corrupt("CURRENT does not end with a newline"));
    };
    let name = std::str::from_utf8(line).map_err(|_| corrupt("CURRENT is not text"))?;
    let digits = name
        .strip_prefix("MANIFEST-")
        .ok_or_else(|| corrupt("CURRENT does not name a MANIFEST- file"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(corrupt("CURRENT does not name a MANIFEST- file"));
    }
    Ok(dir.join(name))
}

/// Reads CURRENT and replays the MANIFEST it names.
pub(crate) fn recover(dir: &Path) -> Result<Version> {
    let manifest = read_current(dir)?;
    let file = File::open(&manifest).map_err(|e| LdbError::open_err(&manifest, e))?;
    let len = file
        .metadata()
        .map_err(|e| LdbError::io(&manifest, None, e))?
        .len();
    let mut reader = LogReader::new(&file, &manifest, len);
    let mut record = Vec::new();

    let mut log_number = None;
    let mut prev_log_number = 0;
    let mut next_file = None;
    let mut last_sequence = None;
    let mut levels: Vec<BTreeMap<u64, FileMeta>> = vec![BTreeMap::new(); NUM_LEVELS];

    while let Some(offset) = reader.read_record(&mut record)? {
        let edit = decode_edit(&record).map_err(|msg| LdbError::Corruption {
            path: manifest.clone(),
            offset,
            msg: format!("version edit: {msg}"),
        })?;
        if let Some(cmp) = &edit.comparator {
            if cmp.as_slice() != BYTEWISE_COMPARATOR.as_bytes() {
                return Err(LdbError::Unsupported {
                    path: manifest.clone(),
                    msg: format!(
                        "comparator {:?}; this reader only reads {BYTEWISE_COMPARATOR} databases",
                        String::from_utf8_lossy(cmp)
                    ),
                });
            }
        }
        log_number = edit.log_number.or(log_number);
        prev_log_number = edit.prev_log_number.unwrap_or(prev_log_number);
        next_file = edit.next_file.or(next_file);
        last_sequence = edit.last_sequence.or(last_sequence);
        // As VersionSet::Builder does: deletions first, then additions.
        for (level, number) in edit.deleted {
            if let Some(l) = levels.get_mut(level) {
                l.remove(&number);
            }
        }
        for (level, f) in edit.added {
            if let Some(l) = levels.get_mut(level) {
                l.insert(f.number, f);
            }
        }
    }
    if reader.torn_tail() {
        tracing::warn!(manifest = %manifest.display(), "MANIFEST ends with an incomplete record; ignored");
    }
    let missing = |what: &str| LdbError::Corruption {
        path: manifest.clone(),
        offset: len,
        msg: format!("no {what} entry in the MANIFEST"),
    };
    let log_number = log_number.ok_or_else(|| missing("log number"))?;
    let next_file = next_file.ok_or_else(|| missing("next file number"))?;
    let last_sequence = last_sequence.ok_or_else(|| missing("last sequence"))?;
    Ok(Version {
        manifest,
        log_number,
        prev_log_number,
        next_file,
        last_sequence,
        levels,
    })
}

#[derive(Default)]
struct Edit {
    comparator: Option<Vec<u8>>,
    log_number: Option<u64>,
    prev_log_number: Option<u64>,
    next_file: Option<u64>,
    last_sequence: Option<u64>,
    deleted: Vec<(usize, u64)>,
    added: Vec<(usize, FileMeta)>,
}

fn get_level(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let level = get_varint32(buf, pos)? as usize;
    (level < NUM_LEVELS).then_some(level)
}

fn get_internal_key(buf: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let k = get_length_prefixed(buf, pos)?;
    (k.len() >= 8).then(|| k.to_vec())
}

fn decode_edit(buf: &[u8]) -> std::result::Result<Edit, &'static str> {
    let mut e = Edit::default();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = get_varint32(buf, &mut pos).ok_or("invalid tag")?;
        match tag {
            TAG_COMPARATOR => {
                e.comparator = Some(
                    get_length_prefixed(buf, &mut pos)
                        .ok_or("comparator name")?
                        .to_vec(),
                );
            }
            TAG_LOG_NUMBER => e.log_number = Some(get_varint64(buf, &mut pos).ok_or("log number")?),
            TAG_PREV_LOG_NUMBER => {
                e.prev_log_number = Some(get_varint64(buf, &mut pos).ok_or("previous log number")?)
            }
            TAG_NEXT_FILE => {
                e.next_file = Some(get_varint64(buf, &mut pos).ok_or("next file number")?)
            }
            TAG_LAST_SEQUENCE => {
                e.last_sequence = Some(get_varint64(buf, &mut pos).ok_or("last sequence number")?)
            }
            TAG_COMPACT_POINTER => {
                get_level(buf, &mut pos).ok_or("compaction pointer")?;
                get_internal_key(buf, &mut pos).ok_or("compaction pointer")?;
            }
            TAG_DELETED_FILE => {
                let level = get_level(buf, &mut pos).ok_or("deleted file")?;
                let number = get_varint64(buf, &mut pos).ok_or("deleted file")?;
                e.deleted.push((level, number));
            }
            TAG_NEW_FILE => {
                let level = get_level(buf, &mut pos).ok_or("new-file entry")?;
                let number = get_varint64(buf, &mut pos).ok_or("new-file entry")?;
                let size = get_varint64(buf, &mut pos).ok_or("new-file entry")?;
                let smallest = get_internal_key(buf, &mut pos).ok_or("new-file entry")?;
                let largest = get_internal_key(buf, &mut pos).ok_or("new-file entry")?;
                e.added.push((
                    level,
                    FileMeta {
                        number,
                        size,
                        smallest,
                        largest,
                    },
                ));
            }
            _ => return Err("unknown tag"),
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bitcoin_core_edit() {
        // The second record of a Bitcoin Core chainstate MANIFEST.
        let mut rec = vec![
            0x02, 0x06, 0x09, 0x00, 0x03, 0x07, 0x04, 0xf2, 0x1e, 0x07, 0x00, 0x05, 0x88, 0xfd,
            0x0c,
        ];
        rec.push(0x17);
        rec.extend_from_slice(b"\x0e\x00obfuscate_key");
        rec.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
        rec.push(0x09);
        rec.extend_from_slice(&[0x48, 1, 3, 0, 0, 0, 0, 0, 0]);
        let e = decode_edit(&rec).unwrap();
        assert_eq!(e.log_number, Some(6));
        assert_eq!(e.prev_log_number, Some(0));
        assert_eq!(e.next_file, Some(7));
        assert_eq!(e.last_sequence, Some(3954));
        assert_eq!(e.added.len(), 1);
        assert_eq!(e.added[0].0, 0);
        assert_eq!(e.added[0].1.number, 5);
        assert_eq!(e.added[0].1.size, 212_616);
        // Truncations and bad tags are errors.
        for cut in 1..rec.len() {
            if let Ok(e) = decode_edit(&rec[..cut]) {
                assert!(e.added.is_empty());
            }
        }
        assert!(decode_edit(&[8, 0]).is_err());
        assert!(decode_edit(&[7, 7, 1, 1, 0, 0]).is_err()); // level 7
    }
}
