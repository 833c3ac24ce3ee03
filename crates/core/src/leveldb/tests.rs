//! Reader tests that need the crate's internals: log reader edge cases, corruption of
//! every kind of file, and random mutations (with and without fixed-up checksums).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusty_leveldb::{Options, WriteBatch, DB};

use super::coding::mask_crc;
use super::log_reader::{LogReader, BLOCK_SIZE};
use super::table::Table;
use super::{LdbError, ReadOnlyDb};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---- log writing (LevelDB's log::Writer) ----

/// Encodes `records` in the log format; returns the bytes and the end offset of each
/// record's last fragment.
fn encode_log(records: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for r in records {
        let mut left: &[u8] = r;
        let mut begin = true;
        loop {
            let room = BLOCK_SIZE - out.len() % BLOCK_SIZE;
            if room < 7 {
                out.extend(std::iter::repeat_n(0u8, room));
                continue;
            }
            let avail = room - 7;
            let n = left.len().min(avail);
            let end = n == left.len();
            let t: u8 = match (begin, end) {
                (true, true) => 1,
                (true, false) => 2,
                (false, false) => 3,
                (false, true) => 4,
            };
            push_physical(&mut out, t, &left[..n]);
            left = &left[n..];
            begin = false;
            if end {
                break;
            }
        }
        ends.push(out.len());
    }
    (out, ends)
}

fn push_physical(out: &mut Vec<u8>, t: u8, payload: &[u8]) {
    let mut body = vec![t];
    body.extend_from_slice(payload);
    out.extend_from_slice(&mask_crc(crc32c::crc32c(&body)).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
}

/// Recomputes the CRC of every physical record whose header still parses.
fn fix_log_crcs(log: &mut [u8]) {
    let mut block = 0;
    while block < log.len() {
        let end = (block + BLOCK_SIZE).min(log.len());
        let mut p = block;
        while p + 7 <= end {
            let len = usize::from(log[p + 4]) | usize::from(log[p + 5]) << 8;
            if p + 7 + len > end {
                break;
            }
            let crc = mask_crc(crc32c::crc32c(&log[p + 6..p + 7 + len]));
            log[p..p + 4].copy_from_slice(&crc.to_le_bytes());
            p += 7 + len;
        }
        block += BLOCK_SIZE;
    }
}

fn read_log(path: &Path) -> super::Result<Vec<Vec<u8>>> {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut r = LogReader::new(&f, path, len);
    let mut out = Vec::new();
    let mut rec = Vec::new();
    while r.read_record(&mut rec)?.is_some() {
        out.push(rec.clone());
    }
    Ok(out)
}

fn log_records(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut sizes = vec![
        0,
        1,
        6,
        7,
        8,
        BLOCK_SIZE - 14,
        BLOCK_SIZE - 7,
        BLOCK_SIZE,
        3 * BLOCK_SIZE + 5,
        100,
    ];
    for _ in 0..30 {
        sizes.push(rng.below(2000) as usize);
    }
    sizes.into_iter().map(|n| rng.bytes(n)).collect()
}

#[test]
fn log_round_trip_across_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(11);
    let records = log_records(&mut rng);
    let (bytes, _) = encode_log(&records);
    let path = tmp.path().join("000001.log");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(read_log(&path).unwrap(), records);
    // Zeros after the end (pre-allocated space) are skipped.
    let mut padded = bytes.clone();
    padded.extend(std::iter::repeat_n(0u8, 3 * BLOCK_SIZE + 100));
    std::fs::write(&path, &padded).unwrap();
    assert_eq!(read_log(&path).unwrap(), records);
}

#[test]
fn log_cut_anywhere_yields_the_complete_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(12);
    let records: Vec<Vec<u8>> = (0..12)
        .map(|i| rng.bytes(if i == 5 { 40_000 } else { 300 + i * 97 }))
        .collect();
    let (bytes, ends) = encode_log(&records);
    let path = tmp.path().join("000001.log");
    let mut cuts: Vec<usize> = (0..bytes.len()).step_by(13).collect();
    cuts.extend(
        ends.iter()
            .flat_map(|&e| [e.saturating_sub(1), e, e + 1, e + 7]),
    );
    for cut in cuts.into_iter().filter(|&c| c <= bytes.len()) {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let got = read_log(&path).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let want = ends.iter().take_while(|&&e| e <= cut).count();
        assert_eq!(got.len(), want, "cut at {cut}");
        assert_eq!(got[..], records[..want]);
    }
}

#[test]
fn log_corruption_in_the_middle_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let records: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 3000]).collect();
    let (bytes, ends) = encode_log(&records);
    let path = tmp.path().join("000009.log");
    // A flipped payload byte: checksum mismatch.
    let mut b = bytes.clone();
    b[ends[3] + 100] ^= 1;
    std::fs::write(&path, &b).unwrap();
    let e = read_log(&path).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, LdbError::Corruption { offset, .. } if offset == ends[3] as u64),
        "{msg}"
    );
    assert!(
        msg.contains("000009.log") && msg.contains("checksum"),
        "{msg}"
    );
    // A length reaching past a full block.
    let mut b = bytes.clone();
    b[ends[3] + 5] = 0xff;
    std::fs::write(&path, &b).unwrap();
    assert!(matches!(read_log(&path), Err(LdbError::Corruption { .. })));
    // An unknown record type (with a valid checksum).
    let mut b = bytes.clone();
    b[ends[3] + 6] = 9;
    fix_log_crcs(&mut b);
    std::fs::write(&path, &b).unwrap();
    assert!(read_log(&path)
        .unwrap_err()
        .to_string()
        .contains("unknown log record type"));
    // A MIDDLE without a FIRST.
    let mut b = Vec::new();
    push_physical(&mut b, 3, b"abc");
    std::fs::write(&path, &b).unwrap();
    assert!(read_log(&path).is_err());
}

// ---- databases written by rusty-leveldb ----

fn options(compress: bool) -> Options {
    Options {
        write_buffer_size: 32 * 1024,
        max_file_size: 64 * 1024,
        block_size: 1024,
        compressor: u8::from(compress),
        ..Options::default()
    }
}

/// Writes `ops` random puts/deletes; `close` false leaves the last writes in the log.
fn build(dir: &Path, compress: bool, ops: u64, seed: u64, close: bool) -> Model {
    let mut db = DB::open(dir, options(compress)).unwrap();
    let mut rng = Rng(seed);
    let mut model = Model::new();
    for i in 0..ops {
        let k = format!("key{:06}", rng.below(ops / 2 + 1)).into_bytes();
        if rng.below(5) == 0 {
            db.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let v = rng.bytes((i % 60) as usize);
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    if close {
        db.close().unwrap();
    }
    model
}

fn scan(db: &ReadOnlyDb) -> super::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut it = db.range(b"", None)?;
    let mut out = Vec::new();
    while it.advance()? {
        out.push((it.key().to_vec(), it.value().to_vec()));
    }
    Ok(out)
}

fn as_vec(m: &Model) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn biggest_table(dir: &Path) -> PathBuf {
    files_with(dir, ".ldb")
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

#[test]
fn levels_are_built_and_disjoint() {
    let tmp = tempfile::tempdir().unwrap();
    let model = build(tmp.path(), false, 40_000, 1, false);
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    let deep = db
        .levels
        .iter()
        .skip(1)
        .filter(|l| !l.files.is_empty())
        .count();
    assert!(
        deep >= 2,
        "want tables in 2+ levels, got {:?}",
        db.table_counts()
    );
    assert!(db.levels.iter().skip(1).all(|l| l.disjoint));
    assert!(!db.mem.is_empty(), "the last writes should be in the log");
    assert_eq!(scan(&db).unwrap(), as_vec(&model));
}

#[test]
fn sst_extension_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let model = build(tmp.path(), true, 5_000, 2, true);
    for p in files_with(tmp.path(), ".ldb") {
        std::fs::rename(&p, p.with_extension("sst")).unwrap();
    }
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    assert_eq!(scan(&db).unwrap(), as_vec(&model));
}

#[test]
fn flipped_table_byte_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = build(tmp.path(), false, 20_000, 3, true);
    let victim = biggest_table(tmp.path());
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&victim, &bytes).unwrap();
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    let e = scan(&db).unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("checksum"), "{e}");
    let mut errors = 0;
    for (k, v) in &model {
        match db.get(k) {
            Ok(got) => assert_eq!(got.as_ref(), Some(v), "wrong value, no error"),
            Err(e) => {
                assert!(e.to_string().contains(&name), "{e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 0);
    // An iterator that failed stays failed.
    let mut it = db.range(b"", None).unwrap();
    while let Ok(true) = it.advance() {}
    assert!(matches!(it.advance(), Err(LdbError::IteratorFailed)));
}

#[test]
fn damaged_index_or_footer_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), false, 10_000, 4, true);
    let victim = biggest_table(tmp.path());
    let orig = std::fs::read(&victim).unwrap();
    let len = orig.len();
    // Index block (just before the footer), then the magic number.
    for (at, what) in [(len - 48 - 10, "checksum"), (len - 3, "magic")] {
        let mut b = orig.clone();
        b[at] ^= 0x01;
        std::fs::write(&victim, &b).unwrap();
        let db = ReadOnlyDb::open(tmp.path()).unwrap();
        let e = scan(&db).unwrap_err().to_string();
        assert!(
            e.contains(&*victim.file_name().unwrap().to_string_lossy()) && e.contains(what),
            "{e}"
        );
    }
}

#[test]
fn truncated_or_missing_table_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), false, 10_000, 5, true);
    let victim = biggest_table(tmp.path());
    let orig = std::fs::read(&victim).unwrap();
    // Truncated before open: the MANIFEST's size does not match.
    std::fs::write(&victim, &orig[..orig.len() - 10]).unwrap();
    let e = ReadOnlyDb::open(tmp.path()).unwrap_err();
    assert!(
        matches!(e, LdbError::Corruption { .. }) && e.to_string().contains("MANIFEST says"),
        "{e}"
    );
    // Truncated after open (the tables are read lazily).
    std::fs::write(&victim, &orig).unwrap();
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    std::fs::write(&victim, &orig[..orig.len() / 2]).unwrap();
    let e = scan(&db).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    drop(db);
    // Missing.
    std::fs::remove_file(&victim).unwrap();
    let e = ReadOnlyDb::open(tmp.path()).unwrap_err();
    assert!(
        matches!(&e, LdbError::MissingFile { path, .. } if path == &victim),
        "{e}"
    );
}

#[test]
fn bad_current_or_manifest_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path(), false, 3_000, 6, true);
    let dir = tmp.path();
    let current = std::fs::read(dir.join("CURRENT")).unwrap();
    let manifest = dir.join(std::str::from_utf8(&current).unwrap().trim_end());
    let orig = std::fs::read(&manifest).unwrap();

    let mut rng = Rng(99);
    std::fs::write(&manifest, rng.bytes(orig.len())).unwrap();
    let e = ReadOnlyDb::open(dir).unwrap_err();
    assert!(e.to_string().contains("MANIFEST"), "{e}");
    std::fs::write(&manifest, b"").unwrap();
    assert!(ReadOnlyDb::open(dir)
        .unwrap_err()
        .to_string()
        .contains("no log number"));
    // A record that is not a version edit (with a valid checksum).
    let (garbage, _) = encode_log(&[vec![0x55; 40]]);
    std::fs::write(&manifest, garbage).unwrap();
    assert!(ReadOnlyDb::open(dir)
        .unwrap_err()
        .to_string()
        .contains("version edit"));
    // Another comparator.
    let mut edit = vec![1, 11];
    edit.extend_from_slice(b"bitcoin.Foo");
    edit.extend_from_slice(&[2, 1, 3, 2, 4, 0]);
    std::fs::write(&manifest, encode_log(&[edit]).0).unwrap();
    let e = ReadOnlyDb::open(dir).unwrap_err();
    assert!(
        matches!(e, LdbError::Unsupported { .. }) && e.to_string().contains("bitcoin.Foo"),
        "{e}"
    );
    std::fs::write(&manifest, &orig).unwrap();
    assert!(ReadOnlyDb::open(dir).is_ok());

    for bad in [
        &b"MANIFEST-999999\n"[..],
        b"MANIFEST-000001",
        b"../../etc/passwd\n",
        b"MANIFEST-\n",
        b"",
    ] {
        std::fs::write(dir.join("CURRENT"), bad).unwrap();
        let e = ReadOnlyDb::open(dir).unwrap_err();
        assert!(
            e.to_string().contains(if bad.starts_with(b"MANIFEST-9") {
                "MANIFEST-999999"
            } else {
                "CURRENT"
            }),
            "{e}"
        );
    }
    std::fs::remove_file(dir.join("CURRENT")).unwrap();
    assert!(matches!(
        ReadOnlyDb::open(dir),
        Err(LdbError::MissingFile { .. })
    ));
}

#[test]
fn torn_last_log_record_is_the_end_of_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = build(tmp.path(), false, 2_000, 7, false);
    {
        let mut db = DB::open(tmp.path(), options(false)).unwrap();
        db.put(b"key-before-last", b"v").unwrap();
        db.put(b"zzzz-last", &[7u8; 3000]).unwrap();
        db.flush().unwrap();
    }
    model.insert(b"key-before-last".to_vec(), b"v".to_vec());
    let log = files_with(tmp.path(), ".log").pop().unwrap();
    let bytes = std::fs::read(&log).unwrap();
    std::fs::write(&log, &bytes[..bytes.len() - 100]).unwrap();
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    assert_eq!(db.get(b"zzzz-last").unwrap(), None);
    assert_eq!(scan(&db).unwrap(), as_vec(&model));
    // Garbage in the middle of the same log is an error naming it.
    let mut b = bytes.clone();
    b[20] ^= 0xff;
    std::fs::write(&log, &b).unwrap();
    let e = ReadOnlyDb::open(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains(&*log.file_name().unwrap().to_string_lossy()),
        "{e}"
    );
    // A write batch that does not parse (checksum fixed) is an error too.
    let mut b = bytes.clone();
    b[7 + 8] ^= 0x10; // the first batch's count
    fix_log_crcs(&mut b);
    std::fs::write(&log, &b).unwrap();
    assert!(ReadOnlyDb::open(tmp.path())
        .unwrap_err()
        .to_string()
        .contains("write batch"));
}

#[test]
fn write_batches_from_the_log_get_consecutive_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut db = DB::open(tmp.path(), options(false)).unwrap();
        let mut wb = WriteBatch::default();
        wb.put(b"a", b"1");
        wb.put(b"a", b"2");
        wb.delete(b"b");
        wb.put(b"b", b"3");
        db.write(wb, false).unwrap();
        db.put(b"c", b"").unwrap();
        db.delete(b"a").unwrap();
        db.put(b"a", b"4").unwrap();
        db.flush().unwrap();
    }
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    let want = vec![
        (b"a".to_vec(), b"4".to_vec()),
        (b"b".to_vec(), b"3".to_vec()),
        (b"c".to_vec(), vec![]),
    ];
    assert_eq!(scan(&db).unwrap(), want);
    assert_eq!(db.get(b"c").unwrap(), Some(vec![]));
}

// ---- random mutations ----

fn exercise(dir: &Path) {
    let Ok(db) = ReadOnlyDb::open(dir) else {
        return;
    };
    let _ = scan(&db);
    for k in [&b"key000100"[..], b"key001000", b"nope", b""] {
        let _ = db.get(k);
    }
    if let Ok(mut it) = db.range(b"key000500", Some(b"key000900")) {
        while let Ok(true) = it.advance() {}
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    match rng.below(6) {
        0 => {
            let n = rng.below(bytes.len() as u64 + 1) as usize;
            bytes.truncate(n);
        }
        1 => {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            let n = 1 + rng.below(40) as usize;
            let junk = rng.bytes(n);
            bytes.splice(at..at, junk);
        }
        _ => {
            for _ in 0..1 + rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    build(&src, false, 4_000, 8, false);
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".ldb")
                || n.ends_with(".log")
                || n.starts_with("MANIFEST")
                || n == "CURRENT"
        })
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".ldb")) && names.iter().any(|n| n.ends_with(".log")));
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), work.join(e.file_name())).unwrap();
    }
    let mut rng = Rng(0x5eed);
    for i in 0..400 {
        let name = &names[i % names.len()];
        let orig = std::fs::read(src.join(name)).unwrap();
        let mut bytes = orig.clone();
        mutate(&mut rng, &mut bytes);
        if name.ends_with(".log") || name.starts_with("MANIFEST") {
            // Half the time, make the checksums right so the parsers behind them run.
            if rng.below(2) == 0 {
                fix_log_crcs(&mut bytes);
            }
        }
        std::fs::write(work.join(name), &bytes).unwrap();
        exercise(&work);
        std::fs::write(work.join(name), &orig).unwrap();
    }
}

#[test]
fn mutated_blocks_with_valid_checksums_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let model = build(tmp.path(), false, 4_000, 9, true);
    let victim = biggest_table(tmp.path());
    let orig = std::fs::read(&victim).unwrap();
    let handles = Table::open(&victim, orig.len() as u64)
        .unwrap()
        .block_handles();
    assert!(handles.len() > 3);
    let mut rng = Rng(77);
    let mut errors = 0;
    for _ in 0..300 {
        let (off, size) = handles[rng.below(handles.len() as u64) as usize];
        let (off, size) = (off as usize, size as usize);
        let mut bytes = orig.clone();
        let mut block = bytes[off..off + size].to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(size as u64) as usize;
            block[at] ^= 1 << rng.below(8);
        }
        bytes[off..off + size].copy_from_slice(&block);
        let mut body = block.clone();
        body.push(bytes[off + size]);
        let crc = mask_crc(crc32c::crc32c(&body));
        bytes[off + size + 1..off + size + 5].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&victim, &bytes).unwrap();
        let db = Arc::new(ReadOnlyDb::open(tmp.path()).unwrap());
        match scan(&db) {
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                assert!(e.path().is_some());
            }
        }
        for k in model.keys().step_by(97) {
            let _ = db.get(k);
        }
    }
    assert!(errors > 0);
}

#[test]
fn narrow_ranges_open_few_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let model = build(tmp.path(), false, 80_000, 10, true);
    let db = ReadOnlyDb::open(tmp.path()).unwrap();
    let total: usize = db.table_counts().iter().sum();
    let opened = |db: &ReadOnlyDb| db.tables.inner.lock().unwrap().map.len();
    assert_eq!(opened(&db), 0, "open() reads no table");
    let keys: Vec<&Vec<u8>> = model.keys().collect();
    let (start, end) = (keys[keys.len() / 2], keys[keys.len() / 2 + 20]);
    let mut it = db.range(start, Some(end)).unwrap();
    let mut n = 0;
    while it.advance().unwrap() {
        n += 1;
    }
    assert_eq!(n, 20);
    // At most the level-0 tables, one per deeper level, and one more if the range
    // crosses a table boundary.
    let deep = db
        .levels
        .iter()
        .skip(1)
        .filter(|l| !l.files.is_empty())
        .count();
    let limit = db.levels[0].files.len() + deep + 1;
    assert!(
        total > limit,
        "want more tables ({total}) than a narrow range may open ({limit})"
    );
    assert!(
        opened(&db) <= limit,
        "opened {} of {total} tables",
        opened(&db)
    );
    let _ = db.get(start).unwrap();
    assert!(opened(&db) <= limit + 2);
}

// ---- checked reads of rusty-leveldb's tables (the index's file layer) ----

/// Flips one bit of `path` at `at`.
fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x10;
    std::fs::write(path, &b).unwrap();
}

#[test]
fn checked_table_reads_pass_good_blocks_and_refuse_a_flipped_bit_in_data_or_filter() {
    for compress in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path(), compress, 3000, 0xc4ec, true);
        let tables = files_with(tmp.path(), ".ldb");
        assert!(!tables.is_empty());
        for path in &tables {
            let size = std::fs::metadata(path).unwrap().len();
            let mut blocks = Table::open(path, size).unwrap().block_handles();
            // The last is the index block, with its decompressed length.
            blocks.pop();
            let file = super::CheckedTableFile::open(path).unwrap();
            let filter = file.filter.expect("rusty-leveldb writes a bloom filter");
            // What rusty-leveldb reads: the footer, every block with its trailer, the
            // filter without it.
            let mut footer = [0u8; 48];
            file.read_at(size - 48, &mut footer).unwrap();
            assert_eq!(file.footer_off, size - 48);
            for &(off, len) in &blocks {
                let mut buf = vec![0u8; len as usize + 5];
                file.read_at(off, &mut buf).unwrap();
            }
            let mut fbuf = vec![0u8; filter.size as usize];
            file.read_at(filter.offset, &mut fbuf).unwrap();
            // A read that is not a whole block is refused, not served.
            let (off, len) = blocks[0];
            let mut part = vec![0u8; len as usize];
            assert!(file.read_at(off, &mut part).is_err());
            drop(file);

            // A flipped bit in the first data block, then in the filter.
            flip(path, off + len / 2);
            let file = super::CheckedTableFile::open(path).unwrap();
            let mut buf = vec![0u8; len as usize + 5];
            let err = file.read_at(off, &mut buf).unwrap_err().to_string();
            assert!(err.contains("block checksum mismatch"), "{err}");
            flip(path, off + len / 2);
            flip(path, filter.offset + filter.size / 2);
            let file = super::CheckedTableFile::open(path).unwrap();
            let err = file
                .read_at(filter.offset, &mut fbuf)
                .unwrap_err()
                .to_string();
            assert!(err.contains("filter block checksum mismatch"), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
            flip(path, filter.offset + filter.size / 2);
            // The filter's trailer itself.
            flip(path, filter.offset + filter.size + 2);
            let file = super::CheckedTableFile::open(path).unwrap();
            assert!(file.read_at(filter.offset, &mut fbuf).is_err());
            flip(path, filter.offset + filter.size + 2);
            // A truncated table: the footer is gone, the open fails.
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.set_len(size - 1).unwrap();
            drop(f);
            let err = super::CheckedTableFile::open(path).unwrap_err().to_string();
            assert!(err.contains("bad table magic number"), "{err}");
        }
    }
}
