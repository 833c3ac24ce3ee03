//! Sorting the scan's entries into key order with bounded memory, so the index can
//! be written as sorted tables instead of through LevelDB's random-insert path.
//!
//! Keys start with `'u'` and a SHA-256, so their first hash byte spreads them evenly
//! over 256 buckets, and bucket order is key order. Entries are appended to their
//! bucket in memory; past the memory budget every bucket is appended to its own
//! spill file. At the end each bucket is loaded, sorted and emitted in turn, the next
//! bucket being sorted on another thread while the current one is written. Memory is
//! the budget plus three buckets (one being written, one queued, one being sorted;
//! a bucket is 1/256 of the index: ~80 MB on mainnet).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crossbeam_channel::bounded;

use super::keys::{UTXO_KEY_LEN, UTXO_PREFIX};

const BUCKETS: usize = 256;

/// Why sorting failed.
#[derive(Debug)]
pub enum SortError {
    Io(String),
    /// An entry that is not a UTXO entry (internal misuse).
    BadEntry(String),
    /// The consumer of sorted entries failed.
    Emit(String),
}

impl std::fmt::Display for SortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SortError::Io(m) => write!(f, "sorting the scan's entries: {m}"),
            SortError::BadEntry(m) => write!(f, "sorting the scan's entries: {m}"),
            SortError::Emit(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for SortError {}

/// Collects UTXO entries in any order and emits them sorted by key.
pub struct BucketSorter {
    spill_dir: PathBuf,
    memory: Vec<Vec<u8>>,
    files: Vec<Option<BufWriter<File>>>,
    buffered: usize,
    budget: usize,
    entries: u64,
}

impl BucketSorter {
    /// `spill_dir` is created when the budget is first exceeded and must be deleted
    /// by the caller afterwards (crash or not).
    pub fn new(spill_dir: &Path, budget_bytes: usize) -> BucketSorter {
        BucketSorter {
            spill_dir: spill_dir.to_path_buf(),
            memory: (0..BUCKETS).map(|_| Vec::new()).collect(),
            files: (0..BUCKETS).map(|_| None).collect(),
            buffered: 0,
            budget: budget_bytes.max(1 << 20),
            entries: 0,
        }
    }

    /// Entries pushed so far.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Adds one entry: a UTXO key and its value (at most 64 KiB; values are
    /// 13 bytes plus a script of at most 10,000).
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), SortError> {
        if key.len() != UTXO_KEY_LEN || key[0] != UTXO_PREFIX || value.len() > u16::MAX as usize {
            return Err(SortError::BadEntry(format!(
                "entry with a {}-byte key and a {}-byte value",
                key.len(),
                value.len()
            )));
        }
        let bucket = &mut self.memory[key[1] as usize];
        bucket.extend_from_slice(key);
        bucket.extend_from_slice(&(value.len() as u16).to_le_bytes());
        bucket.extend_from_slice(value);
        self.buffered += key.len() + 2 + value.len();
        self.entries += 1;
        if self.buffered >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), SortError> {
        std::fs::create_dir_all(&self.spill_dir)
            .map_err(|e| SortError::Io(format!("creating {}: {e}", self.spill_dir.display())))?;
        for (i, bucket) in self.memory.iter_mut().enumerate() {
            if bucket.is_empty() {
                continue;
            }
            let path = bucket_path(&self.spill_dir, i);
            if self.files[i].is_none() {
                let f = File::create(&path).map_err(|e| io_error("creating", &path, e))?;
                self.files[i] = Some(BufWriter::with_capacity(1 << 16, f));
            }
            if let Some(w) = self.files[i].as_mut() {
                w.write_all(bucket)
                    .map_err(|e| io_error("writing", &path, e))?;
            }
            // Release the memory, not just the length: 256 grown buckets would
            // otherwise hold up to twice the budget.
            *bucket = Vec::new();
        }
        self.buffered = 0;
        Ok(())
    }

    /// Emits every entry in key order. `emit` runs on the calling thread; the next
    /// bucket is loaded and sorted on a helper thread meanwhile.
    pub fn finish(
        mut self,
        mut emit: impl FnMut(&[u8], &[u8]) -> Result<(), String>,
    ) -> Result<(), SortError> {
        for (i, f) in self.files.iter_mut().enumerate() {
            if let Some(w) = f.as_mut() {
                let path = bucket_path(&self.spill_dir, i);
                w.flush().map_err(|e| io_error("writing", &path, e))?;
            }
        }
        let has_file: Vec<bool> = self.files.iter().map(|f| f.is_some()).collect();
        drop(std::mem::take(&mut self.files));
        let memory = std::mem::take(&mut self.memory);
        let spill_dir = self.spill_dir.clone();
        std::thread::scope(|scope| {
            let (tx, rx) = bounded::<Result<SortedBucket, SortError>>(1);
            scope.spawn(move || {
                for (i, mem) in memory.into_iter().enumerate() {
                    let sorted = load_bucket(&spill_dir, i, has_file[i], mem).map(sort_bucket);
                    let failed = sorted.is_err();
                    if tx.send(sorted).is_err() || failed {
                        return;
                    }
                }
            });
            for sorted in rx {
                let bucket = sorted?;
                for &(_, at) in &bucket.order {
                    let at = at as usize;
                    let key = &bucket.bytes[at..at + UTXO_KEY_LEN];
                    let len_at = at + UTXO_KEY_LEN;
                    let len = u16::from_le_bytes([bucket.bytes[len_at], bucket.bytes[len_at + 1]])
                        as usize;
                    let value = &bucket.bytes[len_at + 2..len_at + 2 + len];
                    emit(key, value).map_err(SortError::Emit)?;
                }
            }
            Ok(())
        })
    }
}

/// A bucket's records and their order: (first 8 bytes after the bucket byte, offset).
struct SortedBucket {
    bytes: Vec<u8>,
    order: Vec<(u64, u32)>,
}

fn load_bucket(
    dir: &Path,
    i: usize,
    has_file: bool,
    mut memory: Vec<u8>,
) -> Result<Vec<u8>, SortError> {
    if !has_file {
        return Ok(memory);
    }
    let path = bucket_path(dir, i);
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io_error("reading", &path, e))?;
    bytes.append(&mut memory);
    // The spill file is no longer needed: free the disk space as we go.
    let _ = std::fs::remove_file(&path);
    Ok(bytes)
}

fn sort_bucket(bytes: Vec<u8>) -> SortedBucket {
    let mut order = Vec::new();
    let mut at = 0usize;
    // Records were written by `push`, so the lengths are trustworthy; a torn spill
    // file cannot reach here because spill files never outlive the process.
    while at + UTXO_KEY_LEN + 2 <= bytes.len() {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&bytes[at + 2..at + 10]);
        order.push((u64::from_be_bytes(prefix), at as u32));
        let len_at = at + UTXO_KEY_LEN;
        let len = u16::from_le_bytes([bytes[len_at], bytes[len_at + 1]]) as usize;
        at = len_at + 2 + len;
    }
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| {
            let (x, y) = (a.1 as usize, b.1 as usize);
            bytes[x..x + UTXO_KEY_LEN].cmp(&bytes[y..y + UTXO_KEY_LEN])
        })
    });
    SortedBucket { bytes, order }
}

fn bucket_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("bucket-{i:03}"))
}

fn io_error(action: &str, path: &Path, e: std::io::Error) -> SortError {
    SortError::Io(format!("{action} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: u64, seed: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                let mut key = vec![UTXO_PREFIX];
                for _ in 0..68 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    key.push(x as u8);
                }
                // Every tenth entry shares a script (the same first 33 bytes).
                if i % 10 == 0 {
                    key[1..33].copy_from_slice(&[0x42; 32]);
                }
                let value = vec![i as u8; 13 + (i % 40) as usize];
                (key, value)
            })
            .collect()
    }

    fn sorted_through(budget: usize, input: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BucketSorter::new(&dir.path().join("spill"), budget);
        for (k, v) in input {
            s.push(k, v).unwrap();
        }
        assert_eq!(s.len(), input.len() as u64);
        let mut out = Vec::new();
        s.finish(|k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn sorts_in_memory_and_through_spill_files_identically() {
        let input = entries(50_000, 7);
        let mut expected = input.clone();
        expected.sort();
        assert_eq!(sorted_through(1 << 30, &input), expected);
        // A 1 MiB budget spills about five times.
        assert_eq!(sorted_through(1 << 20, &input), expected);
    }

    #[test]
    fn rejects_what_is_not_a_utxo_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BucketSorter::new(dir.path(), 1 << 20);
        assert!(s.push(&[UTXO_PREFIX; 10], b"v").is_err());
        assert!(s.push(&[b'r'; UTXO_KEY_LEN], b"v").is_err());
        assert!(s.is_empty());
    }

    #[test]
    fn an_emit_failure_stops_the_sort() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = BucketSorter::new(dir.path(), 1 << 20);
        for (k, v) in entries(1000, 3) {
            s.push(&k, &v).unwrap();
        }
        let mut seen = 0;
        let r = s.finish(|_, _| {
            seen += 1;
            if seen == 10 {
                Err("disk full".into())
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(SortError::Emit(m)) if m == "disk full"));
        assert_eq!(seen, 10);
    }
}
