//! The range iterator: a merge of the memtable (recovered logs), each level-0 table and
//! each level >= 1 (a concatenation of its tables, opened lazily as the scan reaches them).
//!
//! Sources yield internal keys in order (user key ascending, sequence descending); a binary
//! heap picks the smallest. For each user key the first entry out of the heap is the newest
//! version; it is returned unless it is a deletion, and every older version is skipped.

use std::cmp::Ordering;
use std::collections::btree_map;
use std::ops::Bound;
use std::sync::Arc;

use super::coding::{cmp_internal, seek_key, split_internal, user_key, TYPE_DELETION};
use super::table::{IterBuffers, Table, TableIter};
use super::write_batch::MemEntry;
use super::{LdbError, ReadOnlyDb, Result, TableFile};

/// The tables of one level >= 1, which do not overlap: at most one is open at a time.
pub(crate) struct LevelIter<'a> {
    db: &'a ReadOnlyDb,
    files: &'a [TableFile],
    idx: usize,
    cur: Option<TableIter>,
    spare: IterBuffers,
}

impl<'a> LevelIter<'a> {
    fn new(db: &'a ReadOnlyDb, files: &'a [TableFile]) -> Self {
        LevelIter {
            db,
            files,
            idx: 0,
            cur: None,
            spare: IterBuffers::default(),
        }
    }

    fn close(&mut self) {
        if let Some(c) = self.cur.take() {
            self.spare = c.into_buffers();
        }
    }

    /// True if every key of file `idx` is at or past `end` (or there is no such file).
    fn past_end(&self, idx: usize, end: Option<&[u8]>) -> bool {
        match self.files.get(idx) {
            None => true,
            Some(f) => end.is_some_and(|e| user_key(&f.meta.smallest) >= e),
        }
    }

    fn open(&mut self, idx: usize) -> Result<&mut TableIter> {
        let bufs = match self.cur.take() {
            Some(c) => c.into_buffers(),
            None => std::mem::take(&mut self.spare),
        };
        let file = self.files.get(idx).ok_or(LdbError::IteratorFailed)?;
        let table = self.db.table(file)?;
        self.idx = idx;
        Ok(self.cur.insert(TableIter::new(table, bufs)?))
    }

    fn seek(&mut self, target: &[u8], end: Option<&[u8]>) -> Result<()> {
        let idx = self
            .files
            .partition_point(|f| cmp_internal(&f.meta.largest, target) == Ordering::Less);
        if self.past_end(idx, end) {
            self.close();
            return Ok(());
        }
        let cur = self.open(idx)?;
        cur.seek(target)?;
        if !cur.valid() {
            self.next_file(end)?;
        }
        Ok(())
    }

    fn next_file(&mut self, end: Option<&[u8]>) -> Result<()> {
        loop {
            let idx = self.idx + 1;
            if self.past_end(idx, end) {
                self.idx = idx;
                self.close();
                return Ok(());
            }
            let cur = self.open(idx)?;
            cur.seek_to_first()?;
            if cur.valid() {
                return Ok(());
            }
        }
    }

    #[inline]
    fn next(&mut self, end: Option<&[u8]>) -> Result<()> {
        if let Some(c) = &mut self.cur {
            c.next()?;
            if !c.valid() {
                self.next_file(end)?;
            }
        }
        Ok(())
    }

    #[inline]
    fn current(&self) -> Option<&TableIter> {
        self.cur.as_ref().filter(|c| c.valid())
    }
}

type MemRange<'a> = btree_map::Range<'a, Box<[u8]>, MemEntry>;

// Few sources, used in the hot loop: no boxing.
#[allow(clippy::large_enum_variant)]
enum Source<'a> {
    Mem {
        iter: MemRange<'a>,
        cur: Option<(&'a [u8], &'a MemEntry)>,
    },
    Table(TableIter),
    Level(LevelIter<'a>),
}

impl Source<'_> {
    #[inline]
    fn valid(&self) -> bool {
        match self {
            Source::Mem { cur, .. } => cur.is_some(),
            Source::Table(t) => t.valid(),
            Source::Level(l) => l.current().is_some(),
        }
    }

    /// User key and tag (`seq << 8 | type`) of the current entry.
    #[inline]
    fn key_tag(&self) -> (&[u8], u64) {
        match self {
            Source::Mem {
                cur: Some((k, e)), ..
            } => (k, (e.seq << 8) | u64::from(e.value.is_some())),
            Source::Mem { cur: None, .. } => (&[], 0),
            Source::Table(t) => split_internal(t.key()),
            Source::Level(l) => l
                .current()
                .map_or((&[][..], 0), |t| split_internal(t.key())),
        }
    }

    #[inline]
    fn value(&self) -> &[u8] {
        match self {
            Source::Mem {
                cur: Some((_, e)), ..
            } => e.value.as_deref().unwrap_or(&[]),
            Source::Mem { cur: None, .. } => &[],
            Source::Table(t) => t.value(),
            Source::Level(l) => l.current().map_or(&[][..], |t| t.value()),
        }
    }

    #[inline]
    fn next(&mut self, end: Option<&[u8]>) -> Result<()> {
        match self {
            Source::Mem { iter, cur } => {
                *cur = iter.next().map(|(k, e)| (&**k, e));
                Ok(())
            }
            Source::Table(t) => t.next(),
            Source::Level(l) => l.next(end),
        }
    }
}

/// `a` sorts before `b`: smaller user key, or the same user key with a newer sequence.
#[inline]
fn less(sources: &[Source<'_>], a: usize, b: usize) -> bool {
    let (ka, ta) = sources[a].key_tag();
    let (kb, tb) = sources[b].key_tag();
    match ka.cmp(kb) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => ta > tb || (ta == tb && a < b),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Positioned,
    Done,
    Failed,
}

/// Iterates the live entries of a key range; see [`ReadOnlyDb::range`].
pub struct RangeIter<'a> {
    sources: Vec<Source<'a>>,
    /// Indices of the valid sources, a min-heap under `less`.
    heap: Vec<usize>,
    end: Option<Vec<u8>>,
    /// The user key of the current entry (or of the last one skipped).
    key: Vec<u8>,
    have_key: bool,
    state: State,
}

impl<'a> RangeIter<'a> {
    pub(crate) fn new(
        db: &'a ReadOnlyDb,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<RangeIter<'a>> {
        let mut it = RangeIter {
            sources: Vec::new(),
            heap: Vec::new(),
            end: end.map(<[u8]>::to_vec),
            key: Vec::new(),
            have_key: false,
            state: State::Ready,
        };
        if end.is_some_and(|e| e <= start) {
            it.state = State::Done;
            return Ok(it);
        }
        let target = seek_key(start);
        let end_bound = end.map_or(Bound::Unbounded, Bound::Excluded);
        let mut iter = db.mem.range::<[u8], _>((Bound::Included(start), end_bound));
        let cur = iter.next().map(|(k, e)| (&**k, e));
        it.sources.push(Source::Mem { iter, cur });
        for level in &db.levels {
            if level.disjoint {
                let mut l = LevelIter::new(db, &level.files);
                l.seek(&target, end)?;
                it.sources.push(Source::Level(l));
            } else {
                for f in &level.files {
                    let overlaps = user_key(&f.meta.largest) >= start
                        && end.is_none_or(|e| user_key(&f.meta.smallest) < e);
                    if overlaps {
                        let table: Arc<Table> = db.table(f)?;
                        let mut t = TableIter::new(table, IterBuffers::default())?;
                        t.seek(&target)?;
                        it.sources.push(Source::Table(t));
                    }
                }
            }
        }
        for i in 0..it.sources.len() {
            if it.sources[i].valid() {
                it.heap.push(i);
                it.sift_up(it.heap.len() - 1);
            }
        }
        Ok(it)
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if less(&self.sources, self.heap[i], self.heap[parent]) {
                self.heap.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                return;
            }
            let r = l + 1;
            let c = if r < n && less(&self.sources, self.heap[r], self.heap[l]) {
                r
            } else {
                l
            };
            if less(&self.sources, self.heap[c], self.heap[i]) {
                self.heap.swap(i, c);
                i = c;
            } else {
                return;
            }
        }
    }

    /// Advances the source on top of the heap and restores the heap.
    #[inline]
    fn step_top(&mut self) -> Result<()> {
        let Some(&top) = self.heap.first() else {
            return Ok(());
        };
        let src = &mut self.sources[top];
        if let Err(e) = src.next(self.end.as_deref()) {
            self.state = State::Failed;
            return Err(e);
        }
        if !src.valid() {
            let last = self.heap.pop().unwrap_or(top);
            if let Some(first) = self.heap.first_mut() {
                *first = last;
            }
        }
        if self.heap.len() > 1 {
            self.sift_down(0);
        }
        Ok(())
    }

    /// Advances to the next live entry; Ok(false) at the end.
    pub fn advance(&mut self) -> Result<bool> {
        match self.state {
            State::Done => return Ok(false),
            State::Failed => return Err(LdbError::IteratorFailed),
            State::Positioned => self.step_top()?,
            State::Ready => {}
        }
        loop {
            let Some(&top) = self.heap.first() else {
                self.state = State::Done;
                return Ok(false);
            };
            let (uk, tag) = self.sources[top].key_tag();
            if self.have_key && uk == self.key.as_slice() {
                // An older version of the key just returned or skipped.
                self.step_top()?;
                continue;
            }
            if let Some(end) = &self.end {
                if uk >= end.as_slice() {
                    self.state = State::Done;
                    return Ok(false);
                }
            }
            self.key.clear();
            self.key.extend_from_slice(uk);
            self.have_key = true;
            if (tag & 0xff) as u8 == TYPE_DELETION {
                self.step_top()?;
                continue;
            }
            self.state = State::Positioned;
            return Ok(true);
        }
    }

    /// The current user key; valid after `advance()` returned true.
    #[inline]
    pub fn key(&self) -> &[u8] {
        if self.state == State::Positioned {
            &self.key
        } else {
            &[]
        }
    }

    /// The current value; valid after `advance()` returned true.
    #[inline]
    pub fn value(&self) -> &[u8] {
        match (self.state, self.heap.first()) {
            (State::Positioned, Some(&top)) => self.sources.get(top).map_or(&[][..], |s| s.value()),
            _ => &[],
        }
    }
}

impl std::fmt::Debug for RangeIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeIter")
            .field("sources", &self.sources.len())
            .field("state", &self.state)
            .field("key", &self.key())
            .finish()
    }
}
